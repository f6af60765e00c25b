//! Lab step 1: a parent with a worker child.
//!
//! `ex1_fibonacci_child N [--sleep SECS]`
//!
//! The parent forks one child. The child prints fib(0) through fib(N) on one
//! line and exits; the parent waits for it and reports how it ended. With
//! `--sleep` the child sleeps first, so both processes can be found with
//! `ps ax` while they are alive.
//!
//! ```text
//! parent 4242: forked child 4243
//! child 4243 (parent 4242): 0 1 1 2 3 5
//! parent 4242: child 4243 exited with status 0
//! ```
//!
//! The first two lines may come in either order: after `fork` both processes
//! run at once. The report always comes last, because the parent only writes
//! it once `waitpid` has told it the child is gone.

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

/// The longest `--sleep` accepted: long enough for `ps`, short enough that a
/// typo such as `--sleep 1e9` does not leave a process behind for decades.
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

fn parse_n(text: &str) -> Result<u32, String> {
    if text.starts_with('-') && text[1..].chars().all(|c| c.is_ascii_digit()) && text.len() > 1 {
        return Err(format!("N must not be negative, got {text}"));
    }
    if text.is_empty() || !text.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("N must be a non-negative integer, got {text:?}"));
    }
    match text.parse::<u32>() {
        Ok(n) if n <= MAX_N => Ok(n),
        _ => Err(format!(
            "N must be at most {MAX_N}, got {text} (fib({}) does not fit in 128 bits)",
            MAX_N + 1
        )),
    }
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
    let (mut a, mut b) = (0u128, 1u128);
    let mut numbers = Vec::with_capacity(n as usize + 1);
    for _ in 0..=n {
        numbers.push(a);
        // `checked_add` keeps the last step from overflowing: fib(n + 1) is
        // computed but never printed, and for n = 186 it does not fit.
        (a, b) = (b, a.checked_add(b).unwrap_or(0));
    }
    numbers
}

fn run(args: &Args) -> Result<ExitCode, String> {
    // Block the signals the parent waits for *before* forking. Blocked
    // signals stay pending, so `sigwait` below cannot miss a SIGCHLD that
    // arrives before the parent gets there.
    let mut awaited = SigSet::empty();
    awaited.add(Signal::SIGCHLD);
    awaited.add(Signal::SIGINT);
    awaited.add(Signal::SIGTERM);
    let previous_mask = awaited
        .thread_swap_mask(SigmaskHow::SIG_BLOCK)
        .map_err(|e| format!("cannot block signals: {e}"))?;

    // Flush anything buffered now, or the child would inherit a copy of it
    // and both processes would print it.
    std::io::stdout().flush().ok();

    // SAFETY: this program never starts a thread, so the child is an exact
    // copy of a single-threaded process: no lock is held by a thread that
    // does not exist in the child, and it may call any function, `println!`
    // and allocation included. It leaves with `_exit`, never by returning.
    match unsafe { fork() } {
        Err(e) => Err(format!("fork failed: {e}")),
        Ok(ForkResult::Child) => {
            // Unblock again so that Ctrl-C and SIGTERM end the child as usual.
            let _ = previous_mask.thread_set_mask();
            run_child(args)
        }
        Ok(ForkResult::Parent { child }) => run_parent(child, &awaited),
    }
}

fn run_child(args: &Args) -> ! {
    let me = getpid();
    let parent = getppid();
    let mut out = std::io::stdout().lock();
    if !args.sleep.is_zero() {
        let _ = writeln!(
            out,
            "child {me} (parent {parent}): sleeping {:.1} s (try `ps ax` now)",
            args.sleep.as_secs_f64()
        );
        let _ = out.flush();
        std::thread::sleep(args.sleep);
    }
    let numbers: Vec<String> = fibonacci(args.n).iter().map(u128::to_string).collect();
    // One line, one `write`: the parent prints to the same stdout at the
    // same time, and `writeln!` with arguments may write in pieces, which
    // the parent's line could then split. Up to PIPE_BUF (4096) bytes, one
    // write to a pipe is never interleaved with another; fib(0..=186) is
    // about 3.9 KB.
    let line = format!("child {me} (parent {parent}): {}\n", numbers.join(" "));
    let written = out.write_all(line.as_bytes()).and_then(|()| out.flush());
    // `_exit` rather than `exit`: the child must not run the parent's
    // exit-time cleanup a second time. Its output is already flushed.
    let status = if written.is_ok() { 0 } else { 1 };
    unsafe { nix::libc::_exit(status) }
}

fn run_parent(child: Pid, awaited: &SigSet) -> Result<ExitCode, String> {
    let me = getpid();
    println!("parent {me}: forked child {child}");
    loop {
        let signal = awaited.wait().map_err(|e| format!("sigwait failed: {e}"))?;
        if signal == Signal::SIGCHLD {
            // SIGCHLD may also come for a stop or continue; WNOHANG keeps us
            // from blocking when the child has not actually ended.
            match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => continue,
                Ok(status) => return Ok(report(me, child, status, None)),
                Err(e) => return Err(format!("waitpid failed: {e}")),
            }
        }
        // SIGINT or SIGTERM: take the child down with us, so it is neither
        // orphaned nor left a zombie, then say what happened.
        let _ = kill(child, Signal::SIGKILL);
        let status = waitpid(child, None).map_err(|e| format!("waitpid failed: {e}"))?;
        return Ok(report(me, child, status, Some(signal)));
    }
}

/// Prints how the child ended and turns it into the parent's exit status.
fn report(me: Pid, child: Pid, status: WaitStatus, interrupted_by: Option<Signal>) -> ExitCode {
    let child_ok = match status {
        WaitStatus::Exited(_, code) => {
            println!("parent {me}: child {child} exited with status {code}");
            code == 0
        }
        WaitStatus::Signaled(_, signal, core_dumped) => {
            let core = if core_dumped { " (core dumped)" } else { "" };
            println!("parent {me}: child {child} was killed by {signal}{core}");
            false
        }
        other => {
            println!("parent {me}: child {child} ended oddly: {other:?}");
            false
        }
    };
    match interrupted_by {
        Some(signal) => {
            println!("parent {me}: stopped by {signal}");
            ExitCode::from(128 + signal as u8)
        }
        None if child_ok => ExitCode::SUCCESS,
        None => ExitCode::from(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_numbers_are_right() {
        assert_eq!(fibonacci(0), vec![0]);
        assert_eq!(fibonacci(6), vec![0, 1, 1, 2, 3, 5, 8]);
    }

    #[test]
    fn largest_n_is_exact() {
        let last = *fibonacci(MAX_N).last().unwrap();
        assert_eq!(last, 332_825_110_087_067_562_321_196_029_789_634_457_848);
    }

    #[test]
    fn numbers_are_checked() {
        assert!(parse_n("186").is_ok());
        assert!(parse_n("187").unwrap_err().contains("at most 186"));
        assert!(parse_n("-3").unwrap_err().contains("negative"));
        assert!(parse_n("abc").unwrap_err().contains("non-negative integer"));
        assert!(parse_n("").is_err());
        assert!(parse_seconds("nan").is_err());
        assert!(parse_seconds("-1").is_err());
        assert_eq!(parse_seconds("0.25"), Ok(Duration::from_millis(250)));
    }
}
