//! Lab step 8: threads, blocking waits, and a lock. Read README.md beside
//! this file.
//!
//! `ex8_threads_lock [--waiters N] [--threads T] [--increments K] [--primes-below P] [--yield]`
//!
//! When finished: part 1, blocking I/O in threads. N waiter threads each block in `poll` on
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
//!
//! Already written for you: the arguments, the signal flags, the
//! computation and the report. Yours: `start_waiters`,
//! `Waiter::wake_and_join` and `count`.
//!
//! Every line it prints, word for word: README.md, "Output, exactly".
//!
//! Check your work: `cargo xtask grade ex8`. Stuck? `cargo xtask hint ex8`.

// TODO: delete this line when you are done; the warnings it hides will help.
#![allow(unused)]

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
        // TODO: write one byte into `self.wake`, drop it (why is that a
        // second way to wake the waiter?), then join the thread: it
        // returns its thread ID.
        todo!("wake a waiter and join it")
    }
}

/// Starts `n` threads, each blocked in `poll` on its own pipe until main
/// writes to it. A thread blocked in a system call uses no CPU: the main
/// thread has the machine to itself meanwhile.
fn start_waiters(n: u64) -> Result<Vec<Waiter>, String> {
    // TODO: for each waiter: a pipe (`os_pipe::pipe()`), and a thread
    // (`thread::Builder::new().spawn`) that owns the read end and loops on
    // `poll(&mut [PollFd::new(reader.as_fd(), PollFlags::POLLIN)],
    // PollTimeout::NONE)` until it returns (EINTR: again), reads the byte,
    // and returns `gettid().as_raw()`. Keep the write end in the `Waiter`.
    todo!("start the waiter threads")
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
    // TODO: one `AtomicU64` and one `Mutex<u64>`, shared by `threads`
    // threads (`thread::scope` lets them borrow), each adding 1
    // `increments` times:
    // - Racy: `load`, then (with `yield_between`) `thread::yield_now()`,
    //   then `store` of the loaded value plus one;
    // - Atomic: `fetch_add(1, ...)`;
    // - Locked: `lock()`, read, (yield), write, with the guard held.
    // Return the counter's final value.
    todo!("the three counters")
}
