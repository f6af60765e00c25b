//! Step 8: the racy, atomic and locked counters side by side: updates a
//! second and updates lost, from the reference solution's own timing.

use std::path::Path;
use std::process::Command;

const THREADS: &str = "4";
const INCREMENTS: &str = "2000000";

pub fn run(bins: &Path, runs: usize) -> Result<(), String> {
    println!(
        "ex8: {THREADS} threads x {INCREMENTS} increments on one shared counter (medians of {runs} runs)"
    );
    // Per counter: every run's updates a second and lost updates.
    let mut seen: Vec<(String, Vec<f64>, Vec<u64>)> = Vec::new();
    for _ in 0..runs {
        let output = Command::new(bins.join("ex8_threads_lock_solution"))
            .args(["--waiters", "0", "--primes-below", "10", "--timing"])
            .args(["--threads", THREADS, "--increments", INCREMENTS])
            .output()
            .map_err(|e| format!("cannot run ex8: {e}"))?;
        let text = String::from_utf8_lossy(&output.stdout);
        for line in text.lines().filter(|l| l.starts_with("counter ")) {
            let Some((name, rate, lost)) = parse(line) else {
                return Err(format!("ex8 printed an unexpected line: {line}"));
            };
            match seen.iter_mut().find(|(n, ..)| *n == name) {
                Some((_, rates, losses)) => {
                    rates.push(rate);
                    losses.push(lost);
                }
                None => seen.push((name, vec![rate], vec![lost])),
            }
        }
    }
    println!(
        "  {:<10} {:>16} {:>14} {:>22}",
        "counter", "M updates/s", "lost", "lost (fewest..most)"
    );
    for (name, rates, losses) in &mut seen {
        rates.sort_by(f64::total_cmp);
        losses.sort_unstable();
        let (rate, lost) = (rates[rates.len() / 2], losses[losses.len() / 2]);
        let range = format!("{}..{}", losses[0], losses[losses.len() - 1]);
        println!("  {name:<10} {rate:>16.1} {lost:>14} {range:>22}");
    }
    println!();
    Ok(())
}

/// `counter racy: 5 of 8, 3 lost in 1.0 ms (8.0 M updates/s)`: the name,
/// the rate, the lost updates.
fn parse(line: &str) -> Option<(String, f64, u64)> {
    let rest = line.strip_prefix("counter ")?;
    let (name, rest) = rest.split_once(": ")?;
    let lost = rest.split_once(", ")?.1.split(' ').next()?.parse().ok()?;
    let rate = rest.rsplit_once('(')?.1.split(' ').next()?.parse().ok()?;
    Some((name.to_string(), rate, lost))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_counter_line_is_read() {
        assert_eq!(
            super::parse("counter racy: 5 of 8, 3 lost in 1.0 ms (8.5 M updates/s)"),
            Some(("racy".to_string(), 8.5, 3))
        );
    }
}
