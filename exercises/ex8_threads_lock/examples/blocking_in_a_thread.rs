//! Demo: a thread blocked in `read` costs nothing; the rest of the process
//! goes on.
//!
//! `cargo run -p ex8_threads_lock --example blocking_in_a_thread`
//!
//! A second thread calls `read` on an empty pipe and blocks. Meanwhile the
//! main thread computes for half a second, reporting every 100 ms. Then it
//! writes one byte into the pipe, and the reader wakes up.
//!
//! What to watch for:
//! - Both threads print the same PID and different TIDs: one process, two
//!   tasks the kernel schedules separately.
//! - The reader announces its `read` at about 0 ms, and main's lines keep
//!   coming after that: a blocking call stops the thread that makes it,
//!   never the whole process.
//! - The reader wakes a fraction of a millisecond after main's write, and
//!   says how much CPU time it used while it was blocked, by its own
//!   thread CPU clock: next to nothing. It slept in the kernel; it did not
//!   ask "is there data yet?" in a loop.
//! - To watch it with `ps -T -p PID` or `ls /proc/PID/task`, set ROUNDS to
//!   100 and run `cargo build -p ex8_threads_lock --example
//!   blocking_in_a_thread` first, then the binary under
//!   `target/debug/examples/`.

use std::io::{Read, Write};
use std::thread;
use std::time::{Duration, Instant};

use nix::time::{clock_gettime, ClockId};
use nix::unistd::{getpid, gettid};

/// How long main computes: ROUNDS rounds of ROUND each.
const ROUNDS: u32 = 5;
const ROUND: Duration = Duration::from_millis(100);

/// The CPU time the calling thread has used so far (not the process's).
fn my_cpu_time() -> Duration {
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(Duration::from)
        .unwrap_or_default()
}

/// Milliseconds since `start`, right-aligned, for the log lines.
fn stamp(start: Instant) -> String {
    format!("[{:7.1} ms]", start.elapsed().as_secs_f64() * 1e3)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let (mut reader, mut writer) = os_pipe::pipe()?;

    // The reader is moved into the thread: from now on only it can read.
    let waiter = thread::Builder::new().spawn(move || -> std::io::Result<()> {
        println!(
            "{} waiter (pid {}, tid {}): calling read on the pipe, which is empty",
            stamp(start),
            getpid(),
            gettid()
        );
        let cpu_before = my_cpu_time();
        let mut byte = [0u8; 1];
        // Blocks here until main writes, or closes its end (then 0 bytes).
        let got = reader.read(&mut byte)?;
        let cpu_used = my_cpu_time().saturating_sub(cpu_before);
        let what = if got == 1 {
            format!("the byte {:?}", byte[0] as char)
        } else {
            "end of file".to_string()
        };
        println!(
            "{} waiter: read returned {what}; CPU used while blocked: {:.3} ms",
            stamp(start),
            cpu_used.as_secs_f64() * 1e3
        );
        Ok(())
    })?;

    println!(
        "{} main   (pid {}, tid {}): computing",
        stamp(start),
        getpid(),
        gettid()
    );
    let mut steps: u64 = 0;
    for round in 1..=ROUNDS {
        // Busy work: the point is that this thread keeps the CPU busy.
        let until = start + ROUND * round;
        while Instant::now() < until {
            steps = std::hint::black_box(steps + 1);
        }
        println!(
            "{} main: still computing, {steps} steps so far",
            stamp(start)
        );
    }

    println!("{} main: writing one byte into the pipe", stamp(start));
    writer.write_all(b"!")?;
    // Closing our end is a second way to wake the reader (it would read 0
    // bytes): even if the write had failed, the join below cannot hang.
    drop(writer);
    match waiter.join() {
        Ok(result) => result?,
        Err(_) => return Err("the waiter thread panicked".into()),
    }
    println!("{} main: joined the waiter", stamp(start));
    Ok(())
}
