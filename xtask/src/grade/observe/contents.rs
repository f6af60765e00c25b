//! The bytes a read or write moved, read from (and, to perturb, written
//! into) the tracee's memory.

use super::*;

impl Worker {
    /// The buffers a read or write call moved data through: (address,
    /// length) pairs.
    #[cfg(target_arch = "x86_64")]
    pub(super) fn buffers(
        &self,
        pid: Pid,
        nr: i64,
        args: &[u64; 6],
        moved: u64,
    ) -> Vec<(u64, u64)> {
        use nix::libc;
        let [_, a1, a2, ..] = *args;
        match nr {
            libc::SYS_readv
            | libc::SYS_preadv
            | libc::SYS_preadv2
            | libc::SYS_writev
            | libc::SYS_pwritev
            | libc::SYS_pwritev2
            | libc::SYS_vmsplice => read_iovecs(pid, a1, a2),
            // msghdr: msg_iov at 16, msg_iovlen at 24.
            libc::SYS_sendmsg | libc::SYS_recvmsg => iovecs(pid, a1 + 16, a1 + 24),
            libc::SYS_recvmmsg => iovecs(pid, a1 + 16, a1 + 24),
            _ => vec![(a1, moved)],
        }
    }

    /// Applies the case's replacements to data a started program read;
    /// the altered bytes, if any changed.
    pub(super) fn alter(&self, pid: Pid, buffers: &[(u64, u64)], data: &[u8]) -> Option<Vec<u8>> {
        let mut altered = data.to_vec();
        for (from, to) in &self.perturb.replace {
            if from.is_empty() || from.len() != to.len() {
                continue;
            }
            let mut at = 0;
            while let Some(found) = altered[at..].windows(from.len()).position(|w| w == from) {
                let start = at + found;
                altered[start..start + to.len()].copy_from_slice(to);
                at = start + to.len();
            }
        }
        if altered == data {
            return None;
        }
        scatter(pid, buffers, &altered);
        Some(altered)
    }
}
