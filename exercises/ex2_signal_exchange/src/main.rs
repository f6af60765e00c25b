//! Lab step 2: a signal exchange. Read README.md beside this file.
//!
//! `ex2_signal_exchange [--delay SECS]` (default 5 seconds)
//!
//! When finished, the parent forks a child and waits. After the delay the
//! child sends SIGUSR1 to its parent. The parent checks who sent it (the
//! kernel says so in the signal's siginfo), kills the child with SIGTERM,
//! reaps it and reports how it died. Exit status 0.
//!
//! ```text
//! parent 4242: forked child 4243, waiting for SIGUSR1
//! child 4243 (parent 4242): sending SIGUSR1 to my parent in 5.0 s
//! child 4243 (parent 4242): sending SIGUSR1 now
//! parent 4242: got SIGUSR1 from process 4243, my child
//! parent 4242: sending SIGTERM to child 4243
//! parent 4242: child 4243 was killed by SIGTERM
//! ```
//!
//! A SIGUSR1 from any other process is reported and ignored:
//! `parent 4242: ignoring SIGUSR1 from process 999: it is not my child`.
//! If the child dies first: `parent 4242: child 4243 ended before it
//! signalled`, then the usual report, exit status 1. SIGINT or SIGTERM to
//! the parent: SIGKILL the child, reap and report it, print
//! `parent 4242: stopped by SIGINT`, exit with 128 + the signal number.
//!
//! Every line it prints, word for word: README.md, "Output, exactly".
//!
//! Check your work: `cargo xtask grade ex2`. Stuck? `cargo xtask hint ex2`.

// TODO: delete this line when you are done; the warnings it hides will help.
#![allow(unused)]

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use nix::sys::signal::{kill, signal, SigHandler, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, getpid, getppid, pause, ForkResult, Pid};
use signal_hook::consts::{SIGCHLD, SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::exfiltrator::WithOrigin;
use signal_hook::iterator::SignalsInfo;

const PROGRAM: &str = "ex2_signal_exchange";
const USAGE: &str = "usage: ex2_signal_exchange [--delay SECS]";
const DEFAULT_DELAY: Duration = Duration::from_secs(5);
const MAX_DELAY_SECS: f64 = 3600.0;

/// Every signal the parent hooks. The child puts them all back to their
/// default action, so that it can be killed like any other process.
const HOOKED: [Signal; 4] = [
    Signal::SIGUSR1,
    Signal::SIGCHLD,
    Signal::SIGINT,
    Signal::SIGTERM,
];

fn main() -> ExitCode {
    let delay = match parse_args(std::env::args().skip(1)) {
        Ok(delay) => delay,
        Err(message) => {
            eprintln!("{PROGRAM}: {message} ({USAGE})");
            return ExitCode::from(2);
        }
    };
    match run(delay) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("{PROGRAM}: {message}");
            ExitCode::from(1)
        }
    }
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Duration, String> {
    let mut delay = DEFAULT_DELAY;
    while let Some(arg) = argv.next() {
        if let Some(value) = arg.strip_prefix("--delay=") {
            delay = parse_seconds(value)?;
        } else if arg == "--delay" {
            let value = argv.next().ok_or("--delay needs a number of seconds")?;
            delay = parse_seconds(&value)?;
        } else {
            return Err(format!("unexpected argument {arg:?}"));
        }
    }
    Ok(delay)
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("--delay needs a number of seconds, got {text:?}"))?;
    if !(0.0..=MAX_DELAY_SECS).contains(&secs) {
        return Err(format!(
            "--delay must be between 0 and {MAX_DELAY_SECS} seconds, got {text}"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn run(delay: Duration) -> Result<ExitCode, String> {
    // TODO: hook SIGUSR1, SIGCHLD, SIGINT and SIGTERM with
    // `SignalsInfo::<WithOrigin>::new`. Do it *before* forking: what would
    // SIGUSR1's default action do to a parent that is not ready yet?

    // TODO: flush stdout and fork, with a `// SAFETY:` comment. The child
    // runs `run_child`, the parent `run_parent`.
    todo!("hook the signals, then fork")
}

fn run_child(delay: Duration) -> ! {
    // TODO: put every signal in HOOKED back to its default action (the
    // parent's handlers came with the fork), announce the delay, sleep,
    // print "sending SIGUSR1 now" *before* sending it (why?), send it to
    // the parent, then wait to be killed.
    todo!("the child's side of the exchange")
}

fn run_parent(child: Pid, signals: &mut SignalsInfo<WithOrigin>) -> Result<ExitCode, String> {
    // TODO: announce, then handle signals as they come (`signals.forever()`):
    // - SIGUSR1 from the child (`origin.process`): SIGTERM it, reap it,
    //   report; from anyone else: say so and keep waiting;
    // - SIGCHLD: the child may have died early (`waitpid` with WNOHANG);
    // - SIGINT, SIGTERM: SIGKILL the child, reap it, report, and stop.
    todo!("the parent's side of the exchange")
}

/// Prints how the child ended. Success means it died of `expected`.
fn report(me: Pid, child: Pid, status: WaitStatus, expected: Signal) -> ExitCode {
    // TODO: "parent PID: child CHILD was killed by SIGTERM" (or "exited
    // with status N"); success only if it died of `expected`.
    todo!("report how the child ended")
}
