//! Step 7: from the deadline to every stage reaped, against the subprocess
//! seed's `communicate(timeout=)` on the same pipeline.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{seconds, verdict};
use crate::project;

/// Each run's deadline: long enough for three stages to start.
const DEADLINE: &str = "0.05";
/// The goal: p99 from the deadline to the last stage reaped.
const GOAL: Duration = Duration::from_millis(5);

pub fn run(bins: &Path, python: Option<&Path>, runs: usize) -> Result<(), String> {
    let ours = || {
        let mut c = Command::new(bins.join("ex7_pipeline_deadline_solution"));
        c.args([
            "--deadline",
            DEADLINE,
            "--",
            "sleep",
            "30",
            "|",
            "sleep",
            "30",
            "|",
        ])
        .args(["sleep", "30"]);
        c
    };
    let script = project::root().join("xtask/baselines/ex7_pipeline_deadline.py");
    println!("ex7: from the deadline to 3 stages reaped ({runs} runs each, interleaved)");
    let mut rust = Vec::with_capacity(runs);
    let mut seed = Vec::with_capacity(runs);
    for _ in 0..runs {
        rust.push(after_deadline(ours(), "deadline of", "timed out")?);
        if let Some(python) = python {
            let mut c = Command::new(python);
            c.arg(&script).arg(DEADLINE);
            seed.push(after_deadline(c, "deadline passed", "reaped")?);
        }
    }
    let row = |name: &str, times: &mut Vec<Duration>| {
        times.sort();
        let at =
            |q: f64| times[((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1];
        println!(
            "  {name:<34} p50 {:>10}   p99 {:>10}   max {:>10}",
            seconds(at(0.5)),
            seconds(at(0.99)),
            seconds(at(1.0))
        );
        at(0.99)
    };
    let p99 = row("ex7 (Rust: timerfd, poll, killpg)", &mut rust);
    if !seed.is_empty() {
        let python_p99 = row("seed (Python: communicate(timeout))", &mut seed);
        println!(
            "  Rust is {:.1}x the seed's speed at p99",
            python_p99.as_secs_f64() / p99.as_secs_f64()
        );
    }
    println!(
        "  goal: p99 under {} ms: {}",
        GOAL.as_millis(),
        verdict(p99 <= GOAL)
    );
    println!();
    Ok(())
}

/// Runs `command`, and returns the time between the stdout line holding
/// `from` and the one holding `to`, as they arrived here.
fn after_deadline(mut command: Command, from: &str, to: &str) -> Result<Duration, String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut began = None;
    let mut ended = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| e.to_string())?;
        let now = Instant::now();
        if line.contains(from) {
            began = Some(now);
        } else if line.contains(to) {
            ended = Some(now);
        }
    }
    let _ = child.wait();
    match (began, ended) {
        (Some(began), Some(ended)) => Ok(ended - began),
        _ => Err(format!("{command:?} did not print `{from}` then `{to}`")),
    }
}
