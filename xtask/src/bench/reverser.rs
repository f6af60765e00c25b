//! Step 3: round trips through the pipe reverser.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::calls::{self, ProcessCalls};
use super::{median_of, median_pair, pin_to_cpu, seconds, time_once, verdict};
use crate::project;

const PHRASES: usize = 100_000;
/// Phrases of the traced run that counts system calls (tracing is slow).
const COUNTED: usize = 10_000;

pub fn run(bins: &Path, python: Option<&Path>, runs: usize) -> Result<(), String> {
    let scratch = std::env::temp_dir().join(format!("xtask-bench-ex3-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let result = measure(bins, python, runs, &scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn measure(bins: &Path, python: Option<&Path>, runs: usize, scratch: &Path) -> Result<(), String> {
    let phrases = write_phrases(&scratch.join("phrases.txt"), PHRASES)?;
    let counted = write_phrases(&scratch.join("counted.txt"), COUNTED)?;
    let empty = scratch.join("empty.txt");
    std::fs::write(&empty, "").map_err(|e| e.to_string())?;
    let big = scratch.join("big.txt");
    let phrase: String = "abcdefghijklmnop".repeat(1 << 16); // 1 MiB
    std::fs::write(&big, format!("{phrase}\n")).map_err(|e| e.to_string())?;

    let reverser = bins.join("ex3_pipe_reverser_solution");
    let pingpong = bins.join("pingpong");
    let pingpong_cmd = |pinned: bool| {
        let mut c = on_cpu(&pingpong, pinned);
        c.arg(PHRASES.to_string());
        c
    };

    println!("ex3: {PHRASES} short phrases through the reverser (median of {runs} runs)");
    // Interleaved, so that a change in the machine's load affects both.
    let (rust_pinned, floor_pinned) = median_pair(
        runs,
        || time_once(on_cpu(&reverser, true), &phrases),
        || time_once(pingpong_cmd(true), &empty),
    )?;
    let (rust_free, floor_free) = median_pair(
        runs,
        || time_once(on_cpu(&reverser, false), &phrases),
        || time_once(pingpong_cmd(false), &empty),
    )?;
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!("  {:<28} {:>12} {:>12}", "", "pinned", "unpinned");
    println!(
        "  {:<28} {:>12} {:>12}",
        "reverser (Rust)",
        seconds(rust_pinned),
        seconds(rust_free)
    );
    println!(
        "  {:<28} {:>12} {:>12}",
        "two-pipe ping-pong",
        seconds(floor_pinned),
        seconds(floor_free)
    );
    let pinned_vs_floor = ratio(rust_pinned, floor_pinned);
    let free_vs_floor = ratio(rust_free, floor_free);
    println!(
        "  {:<28} {:>11.2}x {:>11.2}x",
        "reverser / ping-pong", pinned_vs_floor, free_vs_floor
    );

    if let Some(python) = python {
        let script = project::root().join("xtask/baselines/ex3_reverser.py");
        let python_once = |pinned: bool| {
            let mut c = on_cpu(python, pinned);
            c.arg(&script);
            time_once(c, &phrases)
        };
        let py_pinned = median_of(runs.min(3), || python_once(true))?;
        let py_free = median_of(runs.min(3), || python_once(false))?;
        println!(
            "  {:<28} {:>12} {:>12}",
            "Python (multiprocessing)",
            seconds(py_pinned),
            seconds(py_free)
        );
        let speedup = ratio(py_pinned, rust_pinned);
        println!(
            "  {:<28} {:>11.1}x {:>11.1}x",
            "speed-up over Python",
            speedup,
            ratio(py_free, rust_free)
        );
        println!(
            "  goal: pinned, at least 5x faster than Python: {} ({speedup:.1}x; the ping-pong itself is {:.1}x)",
            verdict(speedup >= 5.0),
            ratio(py_pinned, floor_pinned)
        );
    }
    println!(
        "  goal: pinned, within 1.3x of the ping-pong: {} ({pinned_vs_floor:.2}x)",
        verdict(pinned_vs_floor <= 1.3)
    );
    println!(
        "  goal: unpinned, within 1.2x of the ping-pong: {} ({free_vs_floor:.2}x)",
        verdict(free_vs_floor <= 1.2)
    );

    round_trip_costs(&reverser, &pingpong, &counted, &phrases, &empty)?;

    let with_big = median_of(runs, || time_once(on_cpu(&reverser, false), &big))?;
    let startup = median_of(runs, || time_once(on_cpu(&reverser, false), &empty))?;
    println!(
        "  one 1 MiB phrase: round trip {} (a run with it {}, an empty run {})\n",
        seconds(with_big.saturating_sub(startup)),
        seconds(with_big),
        seconds(startup)
    );
    Ok(())
}

/// A command running `program`, on CPU 0 alone or free to use both.
fn on_cpu(program: &Path, pinned: bool) -> Command {
    let mut c = Command::new(program);
    if pinned {
        pin_to_cpu(&mut c, 0);
    }
    c
}

/// Writes `count` short phrases, one per line, to `path`.
fn write_phrases(path: &Path, count: usize) -> Result<PathBuf, String> {
    let text: String = (0..count).map(|i| format!("phrase number {i}\n")).collect();
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path.to_path_buf())
}

/// What the reverser and the ping-pong each cost the kernel per round
/// trip: system calls (a traced run of `counted`), and how often their
/// processes were switched out, pinned and unpinned (each wait for the
/// other side is one switch, the cost that grows on two CPUs).
fn round_trip_costs(
    reverser: &Path,
    pingpong: &Path,
    counted: &Path,
    phrases: &Path,
    empty: &Path,
) -> Result<(), String> {
    let pingpong_of = |rounds: usize, pinned: bool| {
        let mut c = on_cpu(pingpong, pinned);
        c.arg(rounds.to_string());
        c
    };
    let counted_reverser = calls::count(on_cpu(reverser, false), counted)?;
    let counted_pingpong = calls::count(pingpong_of(COUNTED, false), empty)?;
    println!("  system calls per round trip (traced, {COUNTED} phrases):");
    println!(
        "    {:<20} {}",
        "reverser",
        per_trip(&counted_reverser, COUNTED)
    );
    println!(
        "    {:<20} {}",
        "ping-pong",
        per_trip(&counted_pingpong, COUNTED)
    );
    for (name, pinned) in [("pinned", true), ("unpinned", false)] {
        let (rv, ri) = switches_per_trip(|| time_once(on_cpu(reverser, pinned), phrases))?;
        let (pv, pi) = switches_per_trip(|| time_once(pingpong_of(PHRASES, pinned), empty))?;
        println!(
            "  context switches per round trip, {name}: reverser {rv:.2} waiting + {ri:.2} preempted, ping-pong {pv:.2} + {pi:.2}"
        );
    }
    Ok(())
}

/// Each process's system calls per round trip, by name; calls made once
/// per run (start-up, exit) are left out.
fn per_trip(processes: &[ProcessCalls], trips: usize) -> String {
    processes
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let role = if i == 0 { "parent" } else { "child" };
            let names: Vec<String> = p
                .calls
                .iter()
                .filter(|(_, n)| **n * 100 >= trips as u64)
                .map(|(name, n)| format!("{name} {:.2}", *n as f64 / trips as f64))
                .collect();
            format!(
                "{role} {:.2} ({})",
                p.total() as f64 / trips as f64,
                names.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Context switches per round trip (voluntary, involuntary) of a run of
/// PHRASES round trips, from the rusage of the children it waited for.
fn switches_per_trip(run: impl FnOnce() -> Result<Duration, String>) -> Result<(f64, f64), String> {
    let (v0, i0) = calls::children_switches();
    run()?;
    let (v1, i1) = calls::children_switches();
    Ok((
        (v1 - v0) as f64 / PHRASES as f64,
        (i1 - i0) as f64 / PHRASES as f64,
    ))
}
