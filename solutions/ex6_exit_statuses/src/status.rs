//! How a command ended, in words, exactly as `waitpid` reported it.
//!
//! The kernel keeps a child's status as one small integer; `waitpid` hands
//! it back and nix decodes it into a [`WaitStatus`]. Each report is one of:
//!
//! - `Exited(pid, code)`: the program called `exit(code)` (or returned
//!   from `main`). Only the low 8 bits survive, so `exit(256)` is 0.
//! - `Signaled(pid, signal, core_dumped)`: a signal ended it. The third
//!   field is the kernel's own "core dumped" bit: whether it wrote a core
//!   image, which depends on the signal *and* on `RLIMIT_CORE` (`ulimit -c`).
//! - `Stopped(pid, signal)`: only with `WUNTRACED`: a stop signal froze it.
//!   It is still alive and still our child.
//! - `Continued(pid)`: only with `WCONTINUED`: a SIGCONT woke it again.
//!
//! The rest (`PtraceEvent`, `PtraceSyscall`, `StillAlive`) never reach this
//! shell: it does not trace, and it only asks with `WNOHANG` when a
//! SIGCHLD said there is news.

use nix::sys::wait::WaitStatus;

/// The words after `child PID ` in the shell's report, or `None` for a
/// status that is not a command's change of state.
pub fn describe(status: WaitStatus) -> Option<String> {
    Some(match status {
        WaitStatus::Exited(_, code) => format!("exited with status {code}"),
        WaitStatus::Signaled(_, signal, core_dumped) => {
            let core = if core_dumped { " (core dumped)" } else { "" };
            format!("was killed by {}{core}", signal.as_str())
        }
        WaitStatus::Stopped(_, signal) => format!("was stopped by {}", signal.as_str()),
        WaitStatus::Continued(_) => "was continued".to_string(),
        _ => return None,
    })
}

/// Whether the report is the child's last: after it the child is gone
/// (reaped), and waiting for it again fails with ECHILD.
pub fn is_final(status: WaitStatus) -> bool {
    matches!(status, WaitStatus::Exited(..) | WaitStatus::Signaled(..))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;
    use nix::unistd::Pid;

    #[test]
    fn every_kind_of_report_reads_as_the_sheet_writes_it() {
        let pid = Pid::from_raw(4243);
        let cases = [
            (WaitStatus::Exited(pid, 0), "exited with status 0"),
            (WaitStatus::Exited(pid, 127), "exited with status 127"),
            (
                WaitStatus::Signaled(pid, Signal::SIGTERM, false),
                "was killed by SIGTERM",
            ),
            (
                WaitStatus::Signaled(pid, Signal::SIGSEGV, true),
                "was killed by SIGSEGV (core dumped)",
            ),
            (
                WaitStatus::Stopped(pid, Signal::SIGSTOP),
                "was stopped by SIGSTOP",
            ),
            (WaitStatus::Continued(pid), "was continued"),
        ];
        for (status, words) in cases {
            assert_eq!(describe(status).as_deref(), Some(words), "{status:?}");
        }
        assert_eq!(describe(WaitStatus::StillAlive), None);
    }

    #[test]
    fn only_an_exit_or_a_killing_ends_a_child() {
        let pid = Pid::from_raw(1);
        assert!(is_final(WaitStatus::Exited(pid, 3)));
        assert!(is_final(WaitStatus::Signaled(pid, Signal::SIGKILL, false)));
        assert!(!is_final(WaitStatus::Stopped(pid, Signal::SIGTSTP)));
        assert!(!is_final(WaitStatus::Continued(pid)));
    }
}
