//! A watched call that failed because of a limit the kernel enforced:
//! told by the kernel's answer and the process's own accounting.

use super::*;

/// The limit the kernel enforced in answering a watched call `result`,
/// if that is why the call failed: told by the error (and for memory, by
/// the process's own accounting against its limits), never by the program.
#[cfg(target_arch = "x86_64")]
pub(super) fn refused_by_limit(tid: i32, entry: &Entry, result: i64) -> Option<Limit> {
    use nix::libc;
    let nr = entry.nr;
    let [a0, a1, a2, a3, ..] = entry.args;
    if nr == libc::SYS_brk {
        // brk answers with the break it left: short of the one asked for,
        // the growth was refused.
        let now = result as u64;
        return (result > 0 && a0 > now).then(|| memory_refused(tid, a0 - now, true))?;
    }
    let errno = if (-4095..0).contains(&result) {
        -result as i32
    } else {
        return None;
    };
    match nr {
        _ if calls::is(nr, Family::Fork) => (errno == libc::EAGAIN).then_some(Limit::Processes),
        libc::SYS_mmap if errno == libc::ENOMEM => {
            // Private writable memory counts against RLIMIT_DATA, every
            // mapping against RLIMIT_AS.
            let prot = a2 as i32;
            let flags = a3 as i32;
            let data = prot & libc::PROT_WRITE != 0
                && flags & (libc::MAP_SHARED | libc::MAP_GROWSDOWN) == 0;
            memory_refused(tid, a1, data)
        }
        libc::SYS_mremap if errno == libc::ENOMEM => {
            memory_refused(tid, a2.saturating_sub(a1), true)
        }
        libc::SYS_mprotect if errno == libc::ENOMEM => memory_refused(tid, a1, true),
        libc::SYS_open
        | libc::SYS_openat
        | libc::SYS_openat2
        | libc::SYS_creat
        | libc::SYS_pipe
        | libc::SYS_pipe2
        | libc::SYS_socket
        | libc::SYS_socketpair
        | libc::SYS_dup
        | libc::SYS_fcntl
            if errno == libc::EMFILE =>
        {
            Some(Limit::OpenFiles)
        }
        _ if calls::writes(nr) && errno == libc::EFBIG => {
            soft_limit(tid, "Max file size").map(|_| Limit::FileSize)
        }
        _ if calls::writes(nr) && errno == libc::ENOSPC => Some(Limit::Disk),
        _ => None,
    }
}

/// Whether `requested` more bytes of memory pass the process's limits:
/// `RLIMIT_DATA` for private writable memory (`data`), else `RLIMIT_AS`,
/// against the kernel's own counts (`VmData`, `VmSize`). Any other
/// ENOMEM (no room to grow in place, too many mappings) is no limit.
pub(super) fn memory_refused(tid: i32, requested: u64, data: bool) -> Option<Limit> {
    let over = |count: &str, limit: &str| match (kib_field(tid, count), soft_limit(tid, limit)) {
        (Some(used), Some(limit)) => used.saturating_add(requested) > limit,
        _ => false,
    };
    if data && over("VmData:", "Max data size") {
        Some(Limit::Memory)
    } else if over("VmSize:", "Max address space") {
        Some(Limit::AddressSpace)
    } else {
        None
    }
}

/// A `/proc/<pid>/status` field given in kB, in bytes.
pub(super) fn kib_field(pid: i32, field: &str) -> Option<u64> {
    let status = std::fs::read(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = String::from_utf8_lossy(&status)
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// The soft limit of a resource of `pid` (as `/proc/<pid>/limits` names
/// it), if it has one.
pub(super) fn soft_limit(pid: i32, name: &str) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    limits
        .lines()
        .find_map(|l| l.strip_prefix(name))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// How many descriptors `pid` has open (see [`as_tracees`]).
pub(super) fn open_descriptors(pid: i32) -> usize {
    as_tracees(|| std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count())).unwrap_or(0)
}
