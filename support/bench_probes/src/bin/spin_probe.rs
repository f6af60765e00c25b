//! `spin_probe RUN_SECONDS OUT_DIR`: a CPU-bound worker that records when
//! it really ran.
//!
//! It spins reading CLOCK_MONOTONIC. A gap between two readings longer than
//! [`GAP`] means it was not running (stopped, or preempted), which closes
//! the current run interval. After RUN_SECONDS of its own running time it
//! writes the intervals to `OUT_DIR/probe-PID.txt`, one `START END` pair of
//! CLOCK_MONOTONIC nanoseconds per line, and exits. A slicer is then judged
//! by what its workers saw, not by what it says about itself. With `-` as
//! OUT_DIR it writes nothing: the grader uses it as a plain CPU-bound
//! worker of its own.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use nix::time::{clock_gettime, ClockId};

/// Readings further apart than this mean the probe was not running.
const GAP: Duration = Duration::from_micros(100);

fn now_ns() -> u64 {
    let t = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("clock_gettime");
    t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(seconds), Some(dir)) = (
        args.first().and_then(|s| s.parse::<f64>().ok()),
        args.get(1).map(PathBuf::from),
    ) else {
        eprintln!("usage: spin_probe RUN_SECONDS OUT_DIR");
        return ExitCode::from(2);
    };
    let budget = (seconds * 1e9) as u64;
    let gap = GAP.as_nanos() as u64;
    let mut intervals: Vec<(u64, u64)> = Vec::new();
    let mut start = now_ns();
    let mut last = start;
    let mut ran = 0u64;
    loop {
        let now = now_ns();
        if now - last > gap {
            intervals.push((start, last));
            ran += last - start;
            start = now;
        }
        last = now;
        if ran + (last - start) >= budget {
            intervals.push((start, last));
            break;
        }
    }
    if dir.as_os_str() == "-" {
        return ExitCode::SUCCESS;
    }
    let mut text = String::new();
    for (a, b) in &intervals {
        let _ = writeln!(text, "{a} {b}");
    }
    let path = dir.join(format!("probe-{}.txt", std::process::id()));
    if let Err(e) = std::fs::write(&path, text) {
        eprintln!("spin_probe: cannot write {}: {e}", path.display());
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
