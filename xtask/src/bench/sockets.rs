//! Step 9: request/reply round trips a second with 5 clients, against the
//! socket seed's threaded server, and 100 clients all answered.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::{median_of, seconds, time_once, verdict};
use crate::project;

const CLIENTS: usize = 5;
const LINES: usize = 2000;

pub fn run(bins: &Path, python: Option<&Path>, runs: usize) -> Result<(), String> {
    let ours = bins.join("ex9_socket_server_solution");
    let script = project::root().join("xtask/baselines/ex9_socket_server.py");
    let trips = (CLIENTS * LINES) as f64;
    println!("ex9: {CLIENTS} clients x {LINES} round trips over TCP on 127.0.0.1 (median of {runs} runs)");
    // No stdin; stdout thrown away, the status checked, a run bounded.
    let time = |command: Command| time_once(command, Path::new("/dev/null"));
    let rust = median_of(runs, || {
        let mut c = Command::new(&ours);
        c.args([
            "--clients",
            &CLIENTS.to_string(),
            "--lines",
            &LINES.to_string(),
        ]);
        time(c)
    })?;
    let rate = |d: Duration| trips / d.as_secs_f64();
    println!(
        "  {:<36} {:>10} {:>14.0} round trips/s",
        "ex9 (Rust: a thread per connection)",
        seconds(rust),
        rate(rust)
    );
    if let Some(python) = python {
        let seed = median_of(runs, || {
            let mut c = Command::new(python);
            c.arg(&script)
                .arg(CLIENTS.to_string())
                .arg(LINES.to_string());
            time(c)
        })?;
        println!(
            "  {:<36} {:>10} {:>14.0} round trips/s",
            "seed (Python: threads, makefile)",
            seconds(seed),
            rate(seed)
        );
        let ratio = rate(rust) / rate(seed);
        println!(
            "  goal: at least 5x the seed: {ratio:.1}x, {}",
            verdict(ratio >= 5.0)
        );
    }
    // A hundred clients at once: every one answered.
    let output = Command::new(&ours)
        .args(["--clients", "100", "--lines", "20"])
        .output()
        .map_err(|e| format!("cannot run ex9: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let answered = text.lines().filter(|l| l.starts_with("client ")).count();
    println!(
        "  100 clients x 20 lines: {answered} of 2000 replies, {}",
        verdict(answered == 2000 && text.contains("served 100 connections"))
    );
    println!();
    Ok(())
}
