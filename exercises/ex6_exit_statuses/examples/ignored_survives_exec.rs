//! Demo: which signal settings a program inherits through `exec`.
//!
//! `cargo run -p ex6_exit_statuses --example ignored_survives_exec`
//!
//! Four rounds. Each forks a child that execs `sleep 1`, sends it SIGINT
//! once the exec has happened, and reports how it ended:
//!
//! 1. The parent ignores SIGINT, as a shell does. The child inherits that,
//!    and `exec` keeps it: `sleep` never sees the SIGINT, and exits 0.
//! 2. Same parent, but the child puts SIGINT back to its default action
//!    before `exec`: SIGINT kills `sleep`. This is what your shell must do.
//! 3. The parent *catches* SIGINT with a handler. `exec` cannot keep a
//!    handler (its code is gone with the old program), so it resets it to
//!    the default: SIGINT kills `sleep`.
//! 4. The child *blocks* SIGINT before `exec`. The signal mask survives
//!    `exec` too: the SIGINT stays pending, and `sleep` exits 0 unaware.
//!
//! How the parent knows the exec has happened: a pipe whose write end is
//! close-on-exec (os_pipe makes them so). The child holds that end until
//! `exec` closes it, so the parent's read returns end of file exactly then.
//! Without it the SIGINT could reach the child before its reset in round 2.

use std::ffi::{c_char, CString};
use std::io::Read;
use std::sync::atomic::AtomicBool;

use nix::libc;
use nix::sys::signal::{kill, signal, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, getpid, ForkResult};

/// What the child does to SIGINT between `fork` and `exec`.
#[derive(Clone, Copy)]
enum InChild {
    Nothing,
    ResetToDefault,
    Block,
}

/// Set by the handler of rounds 3 and 4 (the parent never receives a
/// SIGINT here unless you press Ctrl-C).
static CAUGHT: AtomicBool = AtomicBool::new(false);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let me = getpid();
    // Made before any fork: the child must not allocate.
    let words = [CString::new("sleep")?, CString::new("1")?];
    let argv: [*const c_char; 3] = [words[0].as_ptr(), words[1].as_ptr(), std::ptr::null()];

    let rounds = [
        ("parent ignores SIGINT", InChild::Nothing),
        (
            "parent ignores SIGINT, child resets it",
            InChild::ResetToDefault,
        ),
        ("parent catches SIGINT", InChild::Nothing),
        ("parent catches SIGINT, child blocks it", InChild::Block),
    ];
    for (round, (what, in_child)) in rounds.into_iter().enumerate() {
        if round == 0 {
            // SAFETY: SIG_IGN runs no code of ours.
            unsafe { signal(Signal::SIGINT, SigHandler::SigIgn) }?;
        }
        if round == 2 {
            signal_hook::flag::register(signal_hook::consts::SIGINT, &CAUGHT)?;
        }
        println!("round {}: {what}", round + 1);

        let (mut exec_done, exec_signal) = os_pipe::pipe()?;
        // SAFETY: one thread. The child calls only async-signal-safe
        // functions (sigaction, sigprocmask, execvp on the array made above,
        // _exit) before it becomes `sleep`.
        match unsafe { fork() }? {
            ForkResult::Child => unsafe {
                match in_child {
                    InChild::Nothing => {}
                    InChild::ResetToDefault => {
                        let _ = signal(Signal::SIGINT, SigHandler::SigDfl);
                    }
                    InChild::Block => {
                        let mut only_int = SigSet::empty();
                        only_int.add(Signal::SIGINT);
                        let _ = only_int.thread_block();
                    }
                }
                libc::execvp(argv[0], argv.as_ptr());
                libc::_exit(127)
            },
            ForkResult::Parent { child } => {
                // Our copy of the write end would keep the pipe open forever.
                drop(exec_signal);
                let _ = exec_done.read(&mut [0u8; 1])?; // end of file: exec'd
                println!("  parent {me}: child {child} now runs sleep; sending it SIGINT");
                kill(child, Signal::SIGINT)?;
                let ended = match waitpid(child, None)? {
                    WaitStatus::Exited(_, code) => format!("exited with status {code}"),
                    WaitStatus::Signaled(_, sig, _) => format!("was killed by {}", sig.as_str()),
                    other => format!("{other:?}"),
                };
                println!("  parent {me}: child {child} {ended}");
            }
        }
    }
    Ok(())
}
