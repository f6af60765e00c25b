//! Lab step 8: threads, blocking waits, and a lock.
//!
//! `ex8_threads_lock [--waiters N] [--threads T] [--increments K] [--primes-below P] [--yield]`
//!
//! Part 1, blocking I/O in threads. N waiter threads each block in `poll` on
//! a pipe of their own, using no CPU, while the main thread computes (it
//! counts the primes below P). Then the main thread wakes each waiter in
//! turn by writing one byte into its pipe, and joins it.
//!
//! Part 2, a shared counter. T threads add 1 to a shared counter K times
//! each, three times over:
//!
//! - **racy**: a load, then a store of that value plus one. Safe Rust lets
//!   you write it with an atomic (no undefined behaviour), but it is still
//!   a race: between the load and the store another thread may have added
//!   its own ones, and the store throws them away.
//! - **atomic**: one `fetch_add`, which the CPU makes indivisible.
//! - **locked**: a `Mutex<u64>`: the load and the store happen with the
//!   lock held, so no other thread's update can fall between them.
//!
//! With `--yield`, each thread gives up the CPU between its load and its
//! store (in the locked version too, while holding the lock): on one CPU
//! that makes every other thread run exactly there, so the racy counter
//! loses updates every time, and the locked one still loses none.
//!
//! ```text
//! main 4242: 3 waiters blocked in poll, computing
//! main 4242: 17984 primes below 200000, while the waiters waited
//! waiter 1 (thread 4243): woken by main
//! waiter 2 (thread 4244): woken by main
//! waiter 3 (thread 4245): woken by main
//! counter racy: 61023 of 400000, 338977 lost
//! counter atomic: 400000 of 400000, 0 lost
//! counter locked: 400000 of 400000, 0 lost
//! ```
//!
//! SIGINT or SIGTERM during the computation: the waiters are woken and
//! joined, `main PID: stopped by SIGINT`, exit 128 + the signal.

use std::io::Write;
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::unistd::{getpid, gettid};
use signal_hook::consts::{SIGINT, SIGTERM};

const PROGRAM: &str = "ex8_threads_lock";
const USAGE: &str = "usage: ex8_threads_lock [--waiters N] [--threads T] [--increments K] [--primes-below P] [--yield]";

/// Limits that keep a typo from starting a thousand threads.
const MAX_WAITERS: u64 = 64;
const MAX_THREADS: u64 = 64;
const MAX_INCREMENTS: u64 = 100_000_000;
const MAX_PRIMES_BELOW: u64 = 1 << 40;

#[derive(Debug, PartialEq)]
struct Args {
    waiters: u64,
    threads: u64,
    increments: u64,
    primes_below: u64,
    yield_between: bool,
    /// Also say how long each counter took (for `cargo xtask bench`).
    timing: bool,
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
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("{PROGRAM}: {message}");
            ExitCode::from(1)
        }
    }
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args {
        waiters: 3,
        threads: 4,
        increments: 100_000,
        primes_below: 200_000,
        yield_between: false,
        timing: false,
    };
    while let Some(arg) = argv.next() {
        let (field, most, least) = match arg.as_str() {
            "--yield" => {
                args.yield_between = true;
                continue;
            }
            "--timing" => {
                args.timing = true;
                continue;
            }
            "--waiters" => (&mut args.waiters, MAX_WAITERS, 0),
            "--threads" => (&mut args.threads, MAX_THREADS, 1),
            "--increments" => (&mut args.increments, MAX_INCREMENTS, 1),
            "--primes-below" => (&mut args.primes_below, MAX_PRIMES_BELOW, 0),
            other => return Err(format!("unexpected argument {other:?}")),
        };
        let value = argv.next().ok_or(format!("{arg} needs a number"))?;
        *field = match value.parse::<u64>() {
            Ok(n) if (least..=most).contains(&n) => n,
            _ => {
                return Err(format!(
                    "{arg} needs a whole number from {least} to {most}, got {value:?}"
                ))
            }
        };
    }
    Ok(args)
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn run(args: &Args) -> Result<u8, String> {
    let me = getpid();
    // The handler only sets the flag (signal-hook's flag module): the
    // computation looks at it between numbers.
    let stop = Arc::new(AtomicBool::new(false));
    let stopped_by = Arc::new(AtomicUsize::new(0));
    for signal in [SIGINT, SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .and_then(|_| {
                signal_hook::flag::register_usize(signal, Arc::clone(&stopped_by), signal as usize)
            })
            .map_err(|e| format!("cannot hook signal {signal}: {e}"))?;
    }

    let waiters = start_waiters(args.waiters)?;
    let plural = if args.waiters == 1 { "" } else { "s" };
    say(&format!(
        "main {me}: {} waiter{plural} blocked in poll, computing",
        args.waiters
    ));
    let primes = count_primes_below(args.primes_below, &stop);
    let interrupted = stop.load(Ordering::SeqCst);
    if let Some(primes) = primes.filter(|_| !interrupted) {
        say(&format!(
            "main {me}: {primes} primes below {}, while the waiters waited",
            args.primes_below
        ));
    }
    for (n, waiter) in waiters.into_iter().enumerate() {
        let tid = waiter.wake_and_join()?;
        say(&format!("waiter {} (thread {tid}): woken by main", n + 1));
    }
    if interrupted {
        let signal = stopped_by.load(Ordering::SeqCst) as i32;
        let name = nix::sys::signal::Signal::try_from(signal)
            .map(|s| s.as_str())
            .unwrap_or("a signal");
        say(&format!("main {me}: stopped by {name}"));
        return Ok(128 + signal as u8);
    }

    let wanted = args.threads * args.increments;
    for kind in [Counter::Racy, Counter::Atomic, Counter::Locked] {
        // A signal during a long count is seen between counters.
        if stop.load(Ordering::SeqCst) {
            let signal = stopped_by.load(Ordering::SeqCst) as i32;
            let name = nix::sys::signal::Signal::try_from(signal)
                .map(|s| s.as_str())
                .unwrap_or("a signal");
            say(&format!("main {me}: stopped by {name}"));
            return Ok(128 + signal as u8);
        }
        let started = std::time::Instant::now();
        let got = count(kind, args.threads, args.increments, args.yield_between);
        let took = started.elapsed();
        let timing = if args.timing {
            format!(
                " in {:.1} ms ({:.1} M updates/s)",
                took.as_secs_f64() * 1e3,
                wanted as f64 / took.as_secs_f64().max(1e-9) / 1e6
            )
        } else {
            String::new()
        };
        say(&format!(
            "counter {}: {got} of {wanted}, {} lost{timing}",
            kind.name(),
            wanted - got
        ));
    }
    Ok(0)
}

/// A waiter thread and the write end of its pipe.
struct Waiter {
    wake: os_pipe::PipeWriter,
    thread: thread::JoinHandle<Result<i32, String>>,
}

impl Waiter {
    /// One byte into its pipe, then its end: it returns its thread's ID.
    fn wake_and_join(mut self) -> Result<i32, String> {
        self.wake
            .write_all(b"!")
            .map_err(|e| format!("cannot wake a waiter: {e}"))?;
        // Our end goes now: had the byte been lost, the waiter would
        // still see end of file, and never block us forever.
        drop(self.wake);
        self.thread
            .join()
            .map_err(|_| "a waiter thread panicked".to_string())?
    }
}

/// Starts `n` threads, each blocked in `poll` on its own pipe until main
/// writes to it. A thread blocked in a system call uses no CPU: the main
/// thread has the machine to itself meanwhile.
fn start_waiters(n: u64) -> Result<Vec<Waiter>, String> {
    let mut waiters = Vec::new();
    for _ in 0..n {
        let (reader, wake) = os_pipe::pipe().map_err(|e| format!("pipe: {e}"))?;
        let thread = thread::Builder::new()
            .spawn(move || -> Result<i32, String> {
                loop {
                    let mut fds = [PollFd::new(reader.as_fd(), PollFlags::POLLIN)];
                    match poll(&mut fds, PollTimeout::NONE) {
                        Ok(_) => break,
                        Err(Errno::EINTR) => {}
                        Err(e) => return Err(format!("poll failed: {e}")),
                    }
                }
                let mut byte = [0u8; 1];
                let _ = nix::unistd::read(reader.as_fd(), &mut byte);
                Ok(gettid().as_raw())
            })
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        waiters.push(Waiter { wake, thread });
    }
    Ok(waiters)
}

/// The primes below `n` (trial division: slow on purpose, it is the
/// work), or `None` if asked to stop first.
fn count_primes_below(n: u64, stop: &AtomicBool) -> Option<u64> {
    let mut primes = 0;
    for candidate in 2..n {
        if candidate % 1024 == 0 && stop.load(Ordering::Relaxed) {
            return None;
        }
        let mut divisor = 2;
        let mut prime = true;
        while divisor * divisor <= candidate {
            if candidate % divisor == 0 {
                prime = false;
                break;
            }
            divisor += 1;
        }
        primes += prime as u64;
    }
    Some(primes)
}

#[derive(Clone, Copy)]
enum Counter {
    Racy,
    Atomic,
    Locked,
}

impl Counter {
    fn name(self) -> &'static str {
        match self {
            Counter::Racy => "racy",
            Counter::Atomic => "atomic",
            Counter::Locked => "locked",
        }
    }
}

/// `threads` threads add 1, `increments` times each, to one counter shared
/// the `kind` way; the counter's final value.
fn count(kind: Counter, threads: u64, increments: u64, yield_between: bool) -> u64 {
    let atomic = AtomicU64::new(0);
    let locked = Mutex::new(0u64);
    let pause = || {
        if yield_between {
            thread::yield_now();
        }
    };
    thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                for _ in 0..increments {
                    match kind {
                        Counter::Racy => {
                            // Two steps, and a gap between them: another
                            // thread's updates made in the gap are
                            // overwritten by this store.
                            let seen = atomic.load(Ordering::Relaxed);
                            pause();
                            atomic.store(seen + 1, Ordering::Relaxed);
                        }
                        Counter::Atomic => {
                            atomic.fetch_add(1, Ordering::Relaxed);
                        }
                        Counter::Locked => {
                            // The same two steps, the same gap, but with
                            // the lock held: no one else can update.
                            let mut value = locked.lock().unwrap_or_else(|e| e.into_inner());
                            let seen = *value;
                            pause();
                            *value = seen + 1;
                        }
                    }
                }
            });
        }
    });
    match kind {
        Counter::Locked => locked.into_inner().unwrap_or_else(|e| e.into_inner()),
        _ => atomic.into_inner(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primes_are_counted() {
        let go = AtomicBool::new(false);
        assert_eq!(count_primes_below(10, &go), Some(4));
        assert_eq!(count_primes_below(200_000, &go), Some(17984));
        assert_eq!(count_primes_below(2, &go), Some(0));
        let stop = AtomicBool::new(true);
        assert_eq!(count_primes_below(1 << 20, &stop), None);
    }

    #[test]
    fn the_atomic_and_locked_counters_lose_nothing() {
        for kind in [Counter::Atomic, Counter::Locked] {
            assert_eq!(count(kind, 4, 10_000, true), 40_000);
        }
        // One thread cannot race itself.
        assert_eq!(count(Counter::Racy, 1, 10_000, true), 10_000);
    }

    #[test]
    fn arguments() {
        let parse = |w: &[&str]| parse_args(w.iter().map(|s| s.to_string()));
        let args = parse(&["--threads", "2", "--yield"]).unwrap();
        assert_eq!((args.threads, args.yield_between), (2, true));
        assert!(parse(&["--threads", "0"])
            .unwrap_err()
            .contains("from 1 to 64"));
        assert!(parse(&["--waiters"])
            .unwrap_err()
            .contains("needs a number"));
        assert!(parse(&["--wat"]).unwrap_err().contains("unexpected"));
    }
}
