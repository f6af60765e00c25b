//! Demo: what is inside a wait status.
//!
//! `cargo run -p ex6_exit_statuses --example exit_status_bits`
//!
//! `waitpid` answers with one small integer. Each child below ends in a
//! different way, and the parent prints that integer in hex, decodes it by
//! hand with the C macros (`WIFEXITED` and friends, which the libc crate
//! provides as functions), and shows nix's `WaitStatus` for it. On Linux
//! the integer is laid out like this:
//!
//! ```text
//! exited with code N         0xNN00   high byte N, low byte 0
//! killed by signal S         0x00SS   low 7 bits S; 0x80 added if a core was dumped
//! stopped by signal S        0xSS7f   only reported with WUNTRACED
//! continued                  0xffff   only reported with WCONTINUED
//! ```
//!
//! What to watch for:
//! - `_exit(256)` reports status 0 and `_exit(-1)` reports 255: only the
//!   low 8 bits of an exit code survive;
//! - a killed process has no exit code at all, only a signal;
//! - `abort()` dies of SIGABRT, whose default action dumps core. Whether a
//!   core is really written (and the 0x80 bit set) depends on the core size
//!   limit: run `ulimit -c unlimited` in this terminal first to see it, and
//!   remove the `core` file it leaves (`cat /proc/sys/kernel/core_pattern`
//!   says where cores go);
//! - one child stops itself: the parent sees it stopped, continues it, sees
//!   it continued, then sees it exit. A stopped child is still alive.

use nix::errno::Errno;
use nix::libc;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::WaitStatus;
use nix::unistd::{fork, getpid, ForkResult, Pid};

/// How a child ends.
#[derive(Clone, Copy, Debug)]
enum Ending {
    Exit(i32),
    Raise(Signal),
    Abort,
    StopThenExit,
}

/// The child's whole life: async-signal-safe calls only, then gone.
fn live_and_end(ending: Ending) -> ! {
    // SAFETY: `_exit`, `raise` and `abort` are async-signal-safe.
    unsafe {
        match ending {
            Ending::Exit(code) => libc::_exit(code),
            Ending::Raise(signal) => {
                libc::raise(signal as libc::c_int);
            }
            Ending::Abort => libc::abort(),
            Ending::StopThenExit => {
                libc::raise(libc::SIGSTOP);
                // Here once the parent sends SIGCONT.
                libc::_exit(0)
            }
        }
        // Not reached unless the signal was caught or ignored.
        libc::_exit(99)
    }
}

/// The integer decoded the way C code does it.
fn by_hand(raw: i32) -> String {
    if libc::WIFEXITED(raw) {
        format!("WIFEXITED, WEXITSTATUS = {}", libc::WEXITSTATUS(raw))
    } else if libc::WIFSIGNALED(raw) {
        format!(
            "WIFSIGNALED, WTERMSIG = {}, WCOREDUMP = {}",
            libc::WTERMSIG(raw),
            libc::WCOREDUMP(raw)
        )
    } else if libc::WIFSTOPPED(raw) {
        format!("WIFSTOPPED, WSTOPSIG = {}", libc::WSTOPSIG(raw))
    } else if libc::WIFCONTINUED(raw) {
        "WIFCONTINUED".to_string()
    } else {
        "something else".to_string()
    }
}

/// `waitpid` that keeps the raw integer (nix's own decodes it and drops it).
fn wait_raw(child: Pid) -> Result<i32, Errno> {
    let mut raw = 0;
    loop {
        // SAFETY: waits for our own child, writing into `raw`.
        let got =
            unsafe { libc::waitpid(child.as_raw(), &mut raw, libc::WUNTRACED | libc::WCONTINUED) };
        if got == child.as_raw() {
            return Ok(raw);
        }
        let error = Errno::last();
        if error != Errno::EINTR {
            return Err(error);
        }
    }
}

fn main() -> Result<(), Errno> {
    let me = getpid();
    let endings = [
        Ending::Exit(0),
        Ending::Exit(3),
        Ending::Exit(256),
        Ending::Exit(-1),
        Ending::Raise(Signal::SIGTERM),
        Ending::Abort,
        Ending::StopThenExit,
    ];
    for ending in endings {
        // SAFETY: one thread here, and the child only calls
        // async-signal-safe functions before it ends (`live_and_end`).
        let child = match unsafe { fork() }? {
            ForkResult::Child => live_and_end(ending),
            ForkResult::Parent { child } => child,
        };
        println!("parent {me}: child {child} will end with {ending:?}");
        // Until the child is gone: a stop or a continue is not the end.
        loop {
            let raw = wait_raw(child)?;
            let status = WaitStatus::from_raw(child, raw)?;
            println!("  raw {raw:#06x}  {:<46}  {status:?}", by_hand(raw));
            match status {
                WaitStatus::Stopped(..) => kill(child, Signal::SIGCONT)?,
                WaitStatus::Exited(..) | WaitStatus::Signaled(..) => break,
                _ => {}
            }
        }
    }
    Ok(())
}
