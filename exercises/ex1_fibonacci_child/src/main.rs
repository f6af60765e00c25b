//! Lab step 1: a parent with a worker child. Read README.md beside this file.
//!
//! `ex1_fibonacci_child N [--sleep SECS]`
//!
//! When finished, this program forks one child. The child prints fib(0)
//! through fib(N) on one line and exits with status 0; the parent waits for
//! it (`waitpid`) and reports how it ended. With `--sleep` the child sleeps
//! first, so that both processes can be found with `ps ax`.
//!
//! ```text
//! parent 4242: forked child 4243
//! child 4243 (parent 4242): 0 1 1 2 3 5
//! parent 4242: child 4243 exited with status 0
//! ```
//!
//! Bad input (missing, non-numeric, negative or too large N; a bad
//! `--sleep`) prints one line on stderr and exits with status 2.
//! SIGINT or SIGTERM to the parent kills the child, reaps it, reports it,
//! and exits with 128 + the signal number.
//!
//! Every line it prints, word for word: README.md, "Output, exactly".
//!
//! Check your work: `cargo xtask grade ex1`. Stuck? `cargo xtask hint ex1`.

// TODO: delete this line when you are done; the warnings it hides will help.
#![allow(unused)]

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, getpid, getppid, ForkResult, Pid};

const PROGRAM: &str = "ex1_fibonacci_child";
const USAGE: &str = "usage: ex1_fibonacci_child N [--sleep SECS]";

/// fib(186) is the largest Fibonacci number that fits in a `u128`.
const MAX_N: u32 = 186;

/// The longest `--sleep` accepted.
const MAX_SLEEP_SECS: f64 = 3600.0;

#[derive(Debug)]
struct Args {
    n: u32,
    sleep: Duration,
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{PROGRAM}: {message} ({USAGE})");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("{PROGRAM}: {message}");
            ExitCode::from(1)
        }
    }
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut n = None;
    let mut sleep = Duration::ZERO;
    while let Some(arg) = argv.next() {
        if let Some(value) = arg.strip_prefix("--sleep=") {
            sleep = parse_seconds(value)?;
        } else if arg == "--sleep" {
            let value = argv.next().ok_or("--sleep needs a number of seconds")?;
            sleep = parse_seconds(&value)?;
        } else if arg.starts_with("--") {
            return Err(format!("unknown option {arg:?}"));
        } else if n.is_some() {
            return Err(format!("unexpected extra argument {arg:?}"));
        } else {
            n = Some(parse_n(&arg)?);
        }
    }
    let n = n.ok_or("missing N, the index of the last Fibonacci number")?;
    Ok(Args { n, sleep })
}

/// Turns the text of N into a number from 0 to MAX_N, or explains what is
/// wrong with it: negative, not a whole number, or too large.
fn parse_n(text: &str) -> Result<u32, String> {
    // TODO: reject "-3" ("N must not be negative"), "abc" and "1.5"
    // ("N must be a non-negative integer") and anything above MAX_N
    // ("N must be at most 186"), with the text that was given.
    todo!("parse and check N")
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("--sleep needs a number of seconds, got {text:?}"))?;
    if !(0.0..=MAX_SLEEP_SECS).contains(&secs) {
        return Err(format!(
            "--sleep must be between 0 and {MAX_SLEEP_SECS} seconds, got {text}"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// fib(0) through fib(n). Exact for every n up to [`MAX_N`].
fn fibonacci(n: u32) -> Vec<u128> {
    // TODO: compute the sequence. Mind the last step: fib(n + 1) is not
    // needed, and for n = 186 it does not fit in a u128.
    todo!("compute fib(0..=n)")
}

fn run(args: &Args) -> Result<ExitCode, String> {
    // TODO: block SIGCHLD, SIGINT and SIGTERM *before* forking (a SigSet and
    // `thread_swap_mask`), so that the parent can wait for them with
    // `SigSet::wait` without missing one that arrives early.

    // TODO: flush stdout, then fork. Write a `// SAFETY:` comment saying why
    // the child may call what it calls.
    //
    // In the child: restore the old signal mask, then call `run_child`.
    // In the parent: call `run_parent`.
    todo!("block signals and fork")
}

fn run_child(args: &Args) -> ! {
    // TODO: if asked, announce the sleep ("child PID (parent PPID):
    // sleeping 0.2 s (try `ps ax` now)") and sleep. Then print
    // "child PID (parent PPID): 0 1 1 2 ..." on one line, flush, and leave
    // with `_exit` (not `exit`, not by returning: why?).
    todo!("the child's work")
}

fn run_parent(child: Pid, awaited: &SigSet) -> Result<ExitCode, String> {
    // TODO: print "parent PID: forked child CHILD", then wait for one of
    // the blocked signals.
    // - SIGCHLD: `waitpid` with WNOHANG; if the child has ended, report it.
    // - SIGINT or SIGTERM: kill the child, reap it, report it, and exit
    //   with 128 + the signal number.
    todo!("wait for the child")
}

/// Prints how the child ended and turns it into the parent's exit status.
fn report(me: Pid, child: Pid, status: WaitStatus, interrupted_by: Option<Signal>) -> ExitCode {
    // TODO: "parent PID: child CHILD exited with status 0", or
    // "parent PID: child CHILD was killed by SIGKILL"; then, if interrupted,
    // "parent PID: stopped by SIGTERM".
    todo!("report how the child ended")
}
