//! Demo: a deadline for a child, the classic way: `alarm` and SIGALRM.
//!
//! `cargo run -p ex7_pipeline_deadline --example alarm_deadline`
//!
//! Two rounds. In each, the parent forks a child that execs `sleep`, sets
//! an alarm for 1 s, and waits for whichever signal comes first: SIGCHLD
//! (the child ended) or SIGALRM (time is up). First `sleep 0.3`, then
//! `sleep 30`. Both signals come through signal-hook's iterator: its
//! handler only records them, and the loop below does the work.
//!
//! What to watch for:
//! - `sleep 0.3` ends first: the parent cancels the alarm, and
//!   `alarm::cancel` says how many whole seconds were left (1: it rounds).
//! - `sleep 30` does not: SIGALRM comes at 1.00 s, the parent sends
//!   SIGTERM to the child and reaps it. The kill is safe because the child
//!   is not reaped yet: until then its PID cannot be given to anyone else.
//! - what `alarm` cannot do: it counts whole seconds, a process has only
//!   one, and its news is a signal, which `poll` cannot watch by itself.
//!   `setitimer(ITIMER_REAL)` gives microseconds, but the same one
//!   SIGALRM. Compare `timerfd_poll`, which the step uses.

use std::error::Error;
use std::ffi::{c_char, CString};
use std::io::Write;
use std::time::Instant;

use nix::libc;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{alarm, fork, getpid, ForkResult, Pid};
use signal_hook::consts::{SIGALRM, SIGCHLD};
use signal_hook::iterator::Signals;

/// Forks a child that execs `argv` (prepared, null-terminated).
fn spawn(argv: &[*const c_char]) -> Result<Pid, Box<dyn Error>> {
    std::io::stdout().flush()?;
    // SAFETY: one thread; the child calls only execvp and _exit. No
    // handler of ours can run in it before the exec: the alarm is set after
    // the fork (and a child does not inherit one), and the child has no
    // children of its own to bring it a SIGCHLD.
    match unsafe { fork() }? {
        ForkResult::Child => unsafe {
            libc::execvp(argv[0], argv.as_ptr());
            libc::_exit(127)
        },
        ForkResult::Parent { child } => Ok(child),
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let me = getpid();
    // Hooked before any fork: a child that ends at once must still find
    // the SIGCHLD handler in place, or the loop below would never wake.
    let mut signals = Signals::new([SIGALRM, SIGCHLD])?;

    for seconds in ["0.3", "30"] {
        let words = [CString::new("sleep")?, CString::new(seconds)?];
        let mut argv: Vec<*const c_char> = words.iter().map(|w| w.as_ptr()).collect();
        argv.push(std::ptr::null());

        let start = Instant::now();
        let child = spawn(&argv)?;
        alarm::set(1);
        println!("parent {me}: child {child} runs sleep {seconds}; alarm set for 1 s");

        'waiting: for signal in signals.forever() {
            let at = start.elapsed().as_secs_f64();
            match signal {
                SIGCHLD => match waitpid(child, Some(WaitPidFlag::WNOHANG))? {
                    // A SIGCHLD left over from an earlier round, or a stop.
                    WaitStatus::StillAlive => continue,
                    status => {
                        let left = alarm::cancel().unwrap_or(0);
                        println!("parent {me}: at {at:.2} s child {status:?}; alarm cancelled with {left} s left");
                        break 'waiting;
                    }
                },
                SIGALRM => {
                    println!("parent {me}: SIGALRM at {at:.2} s: SIGTERM to child {child}");
                    let _ = kill(child, Signal::SIGTERM);
                    // `sleep` keeps the default action for SIGTERM: it dies,
                    // so this wait ends.
                    println!("parent {me}: child {:?}", waitpid(child, None)?);
                    break 'waiting;
                }
                _ => {}
            }
        }
    }
    Ok(())
}
