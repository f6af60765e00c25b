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
    // TODO: one arm per kind of report, in the words of README.md,
    // "Output, exactly": `exited with status N`, `was killed by SIGNAME`
    // (` (core dumped)` added when the kernel's bit says so), `was stopped
    // by SIGNAME`, `was continued`. `Signal::as_str` gives `SIGTERM`.
    // Anything else: `None`.
    todo!("describe a wait status in words")
}

/// Whether the report is the child's last: after it the child is gone
/// (reaped), and waiting for it again fails with ECHILD.
pub fn is_final(status: WaitStatus) -> bool {
    // TODO: which of the four kinds leave nothing to wait for?
    todo!("tell a last report from a stop or a continue")
}
