//! Demo: the lost update, which safe Rust compiles, and the lock that
//! prevents it.
//!
//! `cargo run -p ex8_threads_lock --example lost_update`, then again with
//! every thread on one CPU:
//! `taskset -c 0 cargo run -p ex8_threads_lock --example lost_update`
//!
//! Two threads each add 1 to one shared counter, many times, in two steps:
//! a read, then a write of what they read plus one. Four rounds: without
//! and with a `Mutex`, and without and with a `thread::yield_now()` between
//! the read and the write, which gives the CPU away exactly there. (The
//! rounds with the yield make fewer additions: each yield is a system call,
//! and a slow one with the lock held.)
//!
//! What to watch for:
//! - Without the lock, the total falls short. On two CPUs by an amount
//!   that changes from run to run. Under `taskset -c 0` with no yield, a
//!   thread is switched out only a few times per run, when its time slice
//!   ends: if that happens between its read and its write, its late write
//!   wipes out the other thread's whole slice of work; if not, nothing is
//!   lost. Run it a few times: the loss changes every time, and could be
//!   nothing at all. With the yield on one CPU the other thread runs
//!   inside the gap every time: half is lost (often exactly), every run.
//! - With the lock, never anything lost, yield or not: the other thread
//!   cannot get in between, even while this one yields holding the lock.
//!   It finds the lock taken and sleeps; the whole thing is only slower.
//! - There is no `unsafe` here and no undefined behaviour: the racy
//!   counter is an `AtomicU64`, so every access is atomic. The bug is in
//!   the logic, where the type system does not look. The third way, one
//!   `fetch_add`, is yours to write in the exercise.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::Instant;

const THREADS: u64 = 2;

/// Additions per thread: fewer when each one yields.
fn increments(with_yield: bool) -> u64 {
    if with_yield {
        100_000
    } else {
        1_000_000
    }
}

/// The final value after THREADS threads each made `increments` updates.
fn run(with_lock: bool, with_yield: bool) -> u64 {
    let gap = || {
        if with_yield {
            thread::yield_now(); // the gap, made wide on purpose
        }
    };
    let counter = AtomicU64::new(0);
    // The Rust way to lock: the value lives inside the Mutex, and the only
    // way to reach it is through the guard that `lock()` returns.
    let locked = Mutex::new(0u64);
    // `scope` joins every thread it started before it returns, and lets
    // them borrow `counter` and `locked` from this function's stack.
    thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                for _ in 0..increments(with_yield) {
                    if with_lock {
                        let mut value = locked.lock().expect("no thread panics");
                        let seen = *value;
                        gap();
                        *value = seen + 1;
                        // `value` is dropped here: unlocked after the write.
                    } else {
                        let seen = counter.load(Ordering::Relaxed);
                        gap();
                        counter.store(seen + 1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    if with_lock {
        locked.into_inner().expect("no thread panics")
    } else {
        counter.into_inner()
    }
}

fn main() {
    for with_lock in [false, true] {
        for with_yield in [false, true] {
            let wanted = THREADS * increments(with_yield);
            let how = match (with_lock, with_yield) {
                (false, false) => "no lock, no yield:    ",
                (false, true) => "no lock, yield in gap:",
                (true, false) => "mutex,   no yield:    ",
                (true, true) => "mutex,   yield in gap:",
            };
            let started = Instant::now();
            let got = run(with_lock, with_yield);
            println!(
                "{how} {got:>7} of {wanted:>7}, {:>7} lost ({:.0} ms)",
                wanted - got,
                started.elapsed().as_secs_f64() * 1e3
            );
        }
    }
}
