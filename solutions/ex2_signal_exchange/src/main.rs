//! Lab step 2: a signal exchange between a parent and its child.
//!
//! `ex2_signal_exchange [--delay SECS]` (default 5 seconds)
//!
//! The parent forks a child and waits. After the delay the child sends
//! SIGUSR1 to its parent. The parent checks who sent it (the kernel says so
//! in the signal's `siginfo`), kills the child with SIGTERM, reaps it and
//! reports how it died.
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
//! The first two lines may come in either order. Every later line is caused
//! by the one before it, so their order is fixed.

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
    // Hook the signals *before* forking. A child with a delay of 0 may send
    // SIGUSR1 at once, and SIGUSR1's default action would kill the parent.
    // signal-hook's handler only records the signal and its siginfo and
    // writes a byte to a socket: async-signal-safe, unlike printing.
    let mut signals = SignalsInfo::<WithOrigin>::new([SIGUSR1, SIGCHLD, SIGINT, SIGTERM])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;

    // Anything still buffered would be printed twice, once by each process.
    std::io::stdout().flush().ok();

    // SAFETY: no thread has been started (signal-hook's iterator does not
    // start one), so the child is a copy of a single-threaded process and
    // may call any function. It only returns through `_exit`.
    match unsafe { fork() } {
        Err(e) => Err(format!("fork failed: {e}")),
        Ok(ForkResult::Child) => run_child(delay),
        Ok(ForkResult::Parent { child }) => run_parent(child, &mut signals),
    }
}

fn run_child(delay: Duration) -> ! {
    // The handlers came with the fork. Put back the default actions: the
    // parent's SIGTERM must kill us, and Ctrl-C must too.
    for hooked in HOOKED {
        // SAFETY: installing SIG_DFL runs no code of ours in a handler.
        let _ = unsafe { signal(hooked, SigHandler::SigDfl) };
    }
    let me = getpid();
    let parent = getppid();
    // If the parent dies, do not linger as an orphan waiting for a SIGTERM
    // that will never come. The check after it closes the race in which the
    // parent died before the request was made.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
        if getppid() != parent {
            unsafe { nix::libc::_exit(1) }
        }
    }

    println!(
        "child {me} (parent {parent}): sending SIGUSR1 to my parent in {:.1} s",
        delay.as_secs_f64()
    );
    std::thread::sleep(delay);
    // Print *before* signalling: once the signal is sent, the parent may kill
    // us at any moment, and a line printed afterwards could be lost.
    println!("child {me} (parent {parent}): sending SIGUSR1 now");
    let _ = std::io::stdout().flush();
    if kill(parent, Signal::SIGUSR1).is_err() {
        unsafe { nix::libc::_exit(1) }
    }
    // Wait to be killed. `pause` returns only when a handler ran, and we
    // have none, so this loop is just belt and braces.
    loop {
        pause();
    }
}

fn run_parent(child: Pid, signals: &mut SignalsInfo<WithOrigin>) -> Result<ExitCode, String> {
    let me = getpid();
    println!("parent {me}: forked child {child}, waiting for SIGUSR1");
    for origin in signals.forever() {
        match origin.signal {
            SIGUSR1 => {
                // The kernel fills in the sender's PID; we do not have to
                // assume it was the child.
                let sender = origin.process.map(|p| p.pid);
                if sender != Some(child.as_raw()) {
                    let who = sender.map_or("the kernel".to_string(), |p| format!("process {p}"));
                    println!("parent {me}: ignoring SIGUSR1 from {who}: it is not my child");
                    continue;
                }
                println!("parent {me}: got SIGUSR1 from process {child}, my child");
                println!("parent {me}: sending SIGTERM to child {child}");
                kill(child, Signal::SIGTERM).map_err(|e| format!("kill failed: {e}"))?;
                let status = waitpid(child, None).map_err(|e| format!("waitpid failed: {e}"))?;
                return Ok(report(me, child, status, Signal::SIGTERM));
            }
            SIGCHLD => match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
                // A stop or continue also raises SIGCHLD; keep waiting.
                Ok(WaitStatus::StillAlive) => continue,
                Ok(status) => {
                    println!("parent {me}: child {child} ended before it signalled");
                    report(me, child, status, Signal::SIGTERM);
                    return Ok(ExitCode::from(1));
                }
                Err(e) => return Err(format!("waitpid failed: {e}")),
            },
            interrupt => {
                // Ctrl-C or SIGTERM: leave no orphan behind.
                let _ = kill(child, Signal::SIGKILL);
                let status = waitpid(child, None).map_err(|e| format!("waitpid failed: {e}"))?;
                report(me, child, status, Signal::SIGKILL);
                let name = Signal::try_from(interrupt).map_or("a signal", Signal::as_str);
                println!("parent {me}: stopped by {name}");
                return Ok(ExitCode::from(128 + interrupt as u8));
            }
        }
    }
    Err("the signal iterator closed unexpectedly".to_string())
}

/// Prints how the child ended. Success means it died of `expected`.
fn report(me: Pid, child: Pid, status: WaitStatus, expected: Signal) -> ExitCode {
    match status {
        WaitStatus::Signaled(_, signal, _) => {
            println!("parent {me}: child {child} was killed by {signal}");
            if signal == expected {
                return ExitCode::SUCCESS;
            }
        }
        WaitStatus::Exited(_, code) => {
            println!("parent {me}: child {child} exited with status {code}");
        }
        other => println!("parent {me}: child {child} ended oddly: {other:?}"),
    }
    ExitCode::from(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_is_checked() {
        let parse = |args: &[&str]| parse_args(args.iter().map(|s| s.to_string()));
        assert_eq!(parse(&[]), Ok(DEFAULT_DELAY));
        assert_eq!(parse(&["--delay", "0.5"]), Ok(Duration::from_millis(500)));
        assert_eq!(parse(&["--delay=0"]), Ok(Duration::ZERO));
        assert!(parse(&["--delay", "-1"]).is_err());
        assert!(parse(&["--delay", "soon"]).is_err());
        assert!(parse(&["--delay"]).is_err());
        assert!(parse(&["--dleay", "1"]).is_err());
    }
}
