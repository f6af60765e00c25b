//! Step 5: how precisely the coordinator slices time, as the workers see it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::verdict;
use crate::project;

const COPIES: usize = 3;
const SLICE: Duration = Duration::from_millis(20);
/// CPU time each worker needs before it exits.
const WORK_SECONDS: f64 = 2.0;

/// What the workers observed during one run.
#[derive(Debug, Default)]
struct Observed {
    /// |real - configured| for the slices that ran while every worker was
    /// alive and competing, except each worker's first (it includes exec).
    errors: Vec<Duration>,
    overlaps: usize,
    overlap_time: Duration,
    cpu_share: f64,
    slices: usize,
    /// Pieces of a slice split by a gap no other worker filled.
    interruptions: usize,
    /// Every slice as the workers saw it, `(start, end, worker)`, in
    /// CLOCK_MONOTONIC nanoseconds, in order.
    seen: Vec<(u64, u64, usize)>,
}

/// The slicers measured, side by side in each run.
#[derive(Clone, Copy, PartialEq)]
enum Slicer {
    /// The reference solution.
    Reference,
    /// `limit_slicer`: the smallest coordinator there can be, the floor,
    /// asking the kernel for what the reference asks (`fifo`) unless told.
    Limit(&'static str),
    /// The lab's original, in Python.
    Python,
}

impl Slicer {
    fn name(self) -> &'static str {
        match self {
            Self::Reference => "Rust",
            Self::Limit(_) => "limit",
            Self::Python => "Python",
        }
    }
}

/// The limit peer's tunings, each adding one thing the kernel is asked for
/// (see `limit_slicer`), with what it is.
const TUNINGS: [(&str, &str); 4] = [
    ("plain", "the kernel's defaults"),
    ("slack", "+ 1 ns timer slack"),
    ("fifo", "+ SCHED_FIFO 1 (the reference's choice)"),
    ("pinned", "+ coordinator on CPU 0, programs on CPU 1"),
];

/// One slicer's run: what the workers saw, what the machine's hypervisor
/// took meanwhile, and what the slicer said of itself (the limit peer's
/// timer lateness and stop latency).
struct Measured {
    observed: Observed,
    steal: f64,
    said: String,
    /// The coordinator's scheduling policy, as the kernel reported it
    /// while the run went on.
    policy: &'static str,
}

pub fn run(bins: &Path, python: Option<&Path>, runs: usize) -> Result<(), String> {
    let probe = bins.join("spin_probe");
    let slice_ms = format!("{}ms", SLICE.as_millis());
    let work = WORK_SECONDS.to_string();
    println!(
        "ex5: {COPIES} CPU-bound workers, {} slices, {WORK_SECONDS} s of CPU each ({runs} runs; the limit is the smallest coordinator there can be, run beside the others)",
        slice_ms
    );
    let script = project::root().join("xtask/baselines/ex5_round_robin.py");
    let mut slicers = vec![Slicer::Reference, Slicer::Limit("fifo")];
    if python.is_some() {
        slicers.push(Slicer::Python);
    }
    let command = |slicer: Slicer, dir: &Path| {
        let mut c = match slicer {
            Slicer::Reference => {
                let mut c = Command::new(bins.join("ex5_round_robin_solution"));
                c.args(["--copies", &COPIES.to_string(), "--slice", &slice_ms, "--"]);
                c
            }
            Slicer::Limit(tuning) => {
                let mut c = Command::new(bins.join("limit_slicer"));
                c.args(["--tuning", tuning])
                    .arg(COPIES.to_string())
                    .arg(SLICE.as_nanos().to_string())
                    .arg("--");
                c
            }
            Slicer::Python => {
                let mut c = Command::new(python.unwrap_or(Path::new("python3")));
                c.arg(&script)
                    .arg(SLICE.as_secs_f64().to_string())
                    .arg(COPIES.to_string())
                    .arg("--");
                c
            }
        };
        c.arg(&probe).arg(&work).arg(dir);
        c
    };
    // Interleaved, so that each run's figures share the machine's state.
    let mut all: Vec<Vec<Measured>> = slicers.iter().map(|_| Vec::new()).collect();
    for n in 0..runs {
        let mut line = format!("  run {}:", n + 1);
        for (slicer, measured) in slicers.iter().zip(all.iter_mut()) {
            let m = observe(|dir| command(*slicer, dir))?;
            let summary = Summary::of(&m.observed);
            line.push_str(&format!(
                " {} p99 {} (steal {});",
                slicer.name(),
                ms(summary.p99),
                percent(m.steal)
            ));
            measured.push(m);
        }
        println!("{}", line.trim_end_matches(';'));
        // Where the floor's own error comes from, in this run.
        if let Some(limit) = slicers.iter().position(|s| matches!(s, Slicer::Limit(_))) {
            println!("    limit: {}", Breakdown::of(&all[limit][n]).line());
        }
    }
    if let Some(reference) = slicers.iter().position(|s| *s == Slicer::Reference) {
        let policies: Vec<&str> = all[reference].iter().map(|m| m.policy).collect();
        println!(
            "  the reference ran as {} (SCHED_FIFO needs CAP_SYS_NICE or an RLIMIT_RTPRIO; without it, SCHED_OTHER)",
            policies.join(", ")
        );
    }
    let summaries: Vec<Vec<Summary>> = all
        .iter()
        .map(|runs| runs.iter().map(|m| Summary::of(&m.observed)).collect())
        .collect();
    let worst: Vec<Summary> = summaries.iter().map(|s| Summary::worst(s)).collect();
    let column = |slicer: Slicer| slicers.iter().position(|s| *s == slicer);
    let mut header = format!("  {:<26}", "");
    for slicer in &slicers {
        header.push_str(&format!(" {:>14}", slicer.name()));
    }
    println!("{header}");
    let row = |name: &str, value: &dyn Fn(&Summary) -> String| {
        let mut line = format!("  {name:<26}");
        for summary in &worst {
            line.push_str(&format!(" {:>14}", value(summary)));
        }
        println!("{line}");
    };
    row("slices observed", &|s| s.slices.to_string());
    row("slices cut by other load", &|s| s.interruptions.to_string());
    row("slice error, median", &|s| ms(s.median));
    row("slice error, p99", &|s| ms(s.p99));
    row("slice error, max", &|s| ms(s.max));
    row("overlaps (two ran at once)", &|s| {
        format!("{} / {}", s.overlaps, ms(s.overlap_time))
    });
    row("CPU time / wall time", &|s| percent(s.cpu_share));
    let (Some(reference), Some(limit)) = (column(Slicer::Reference), column(Slicer::Limit("fifo")))
    else {
        return Ok(());
    };
    print_goals(
        &worst[reference],
        &summaries[reference],
        &summaries[limit],
        &all[reference],
    );
    tunings(runs, |tuning, dir| command(Slicer::Limit(tuning), dir))?;
    println!();
    Ok(())
}

/// The reference's goals, from its worst figures (`rust`), its runs
/// (`reference`), the limit peer's beside them (`limit`), and what each of
/// the reference's runs measured.
fn print_goals(rust: &Summary, reference: &[Summary], limit: &[Summary], measured: &[Measured]) {
    let runs = reference.len();
    // Run by run: the reference against the floor it ran beside.
    let ratios: Vec<f64> = reference
        .iter()
        .zip(limit)
        .map(|(r, l)| r.p99.as_secs_f64() / l.p99.as_secs_f64().max(1e-9))
        .collect();
    let worst_ratio = ratios.iter().copied().fold(0.0, f64::max);
    println!(
        "  p99 / the limit's, run by run: {}",
        ratios
            .iter()
            .map(|r| format!("{r:.2}x"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  goal: p99 within 1.3x of the limit's in every run: {} ({worst_ratio:.2}x)",
        verdict(worst_ratio <= 1.3)
    );
    let quiet: Vec<&Summary> = reference
        .iter()
        .zip(measured)
        .filter(|(_, m)| m.steal < 0.01)
        .map(|(s, _)| s)
        .collect();
    match quiet.iter().map(|s| s.p99).max() {
        Some(p99) => println!(
            "  goal: p99 under 0.25 ms in runs with steal under 1%: {} ({}, {} of {runs} runs)",
            verdict(p99 < Duration::from_micros(250)),
            ms(p99),
            quiet.len()
        ),
        None => println!("  goal: p99 under 0.25 ms in runs with steal under 1%: no such run"),
    }
    println!(
        "  goal: p99 slice error at most 1 ms: {} ({})",
        verdict(rust.p99 <= Duration::from_millis(1)),
        ms(rust.p99)
    );
    println!(
        "  goal: no overlaps: {} ({})",
        verdict(rust.overlaps == 0),
        rust.overlaps
    );
    println!(
        "  goal: CPU share at least 98%: {} ({})",
        verdict(rust.cpu_share >= 0.98),
        percent(rust.cpu_share)
    );
}

/// What each thing the coordinator asks of the kernel is worth: the limit
/// peer under each tuning, interleaved run by run.
fn tunings(runs: usize, command: impl Fn(&'static str, &Path) -> Command) -> Result<(), String> {
    println!("  what each choice is worth (the limit peer, {runs} runs of each, interleaved; worst run shown):");
    let mut measured: Vec<Vec<Measured>> = TUNINGS.iter().map(|_| Vec::new()).collect();
    for _ in 0..runs {
        for ((tuning, _), runs) in TUNINGS.iter().zip(measured.iter_mut()) {
            runs.push(observe(|dir| command(tuning, dir))?);
        }
    }
    println!(
        "    {:<50} {:>11} {:>10} {:>10} {:>15}",
        "tuning", "policy", "error p99", "error max", "timer late p99"
    );
    for ((tuning, what), runs) in TUNINGS.iter().zip(&measured) {
        let summaries: Vec<Summary> = runs.iter().map(|m| Summary::of(&m.observed)).collect();
        let worst = Summary::worst(&summaries);
        let late = runs
            .iter()
            .map(|m| Breakdown::of(m).lateness.1)
            .fold(0.0, f64::max);
        let policy = runs.first().map(|m| m.policy).unwrap_or("?");
        println!(
            "    {:<50} {:>11} {:>10} {:>10} {:>15}",
            format!("{tuning}: {what}"),
            policy,
            ms(worst.p99),
            ms(worst.max),
            format!("{late:.3} ms")
        );
    }
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn percent(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// Where one limit-peer run's error came from, from its own timings and
/// the workers' records: (p50, p99, max) in milliseconds.
struct Breakdown {
    /// Deadline to the coordinator running again.
    lateness: (f64, f64, f64),
    /// SIGSTOP sent to the kernel's confirmation (the wait returning).
    confirmed: (f64, f64, f64),
    /// SIGCONT sent to the worker running (its first reading).
    continued: (f64, f64, f64),
    /// SIGSTOP sent to the worker's last reading before it stopped.
    stopped: (f64, f64, f64),
}

impl Breakdown {
    fn of(m: &Measured) -> Self {
        let list = |key: &str| -> Vec<i64> {
            m.said
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|rest| {
                    rest.split_whitespace()
                        .filter_map(|v| v.parse().ok())
                        .collect()
                })
                .unwrap_or_default()
        };
        let triple = |v: Vec<i64>| match v.as_slice() {
            [a, b, c] => (*a as f64 / 1e6, *b as f64 / 1e6, *c as f64 / 1e6),
            _ => (0.0, 0.0, 0.0),
        };
        let cont_at = list("cont_at_ns ");
        let stop_at = list("stop_at_ns ");
        // Each slice the workers saw, against the last SIGCONT sent before
        // it began, and the first SIGSTOP sent while it ran.
        let mut continued = Vec::new();
        let mut stopped = Vec::new();
        let mut started = [false; COPIES];
        for &(start, end, worker) in &m.observed.seen {
            let (start, end) = (start as i64, end as i64);
            // A worker's first slice begins with its exec: not a continue.
            let first = !std::mem::replace(&mut started[worker], true);
            if let Some(sent) = cont_at.iter().rev().find(|&&t| t <= start && !first) {
                continued.push(start - sent);
            }
            if let Some(sent) = stop_at.iter().find(|&&t| t > start && t <= end + 2_000_000) {
                stopped.push((end - sent).max(0));
            }
        }
        Self {
            lateness: triple(list("lateness_ns ")),
            confirmed: triple(list("stop_ns ")),
            continued: quantiles(continued),
            stopped: quantiles(stopped),
        }
    }

    fn line(&self) -> String {
        let show = |(a, b, c): (f64, f64, f64)| format!("{a:.3}/{b:.3}/{c:.3}");
        format!(
            "p50/p99/max in ms: timer lateness {}; SIGCONT to running {}; SIGSTOP to stopped {} (seen by the worker), {} (confirmed by the wait)",
            show(self.lateness),
            show(self.continued),
            show(self.stopped),
            show(self.confirmed)
        )
    }
}

/// (p50, p99, max) of nanosecond values, in milliseconds.
fn quantiles(mut values: Vec<i64>) -> (f64, f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    values.sort_unstable();
    let at = |q: f64| values[((values.len() - 1) as f64 * q) as usize] as f64 / 1e6;
    (at(0.5), at(0.99), at(1.0))
}

/// The share of CPU time the hypervisor took from this machine between two
/// readings of `/proc/stat` (its `steal` column over all columns).
fn cpu_times() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    Some((fields.get(7).copied().unwrap_or(0), fields.iter().sum()))
}

/// Runs one slicer with probes writing into a fresh directory, then reads
/// what the probes recorded.
fn observe(make: impl FnOnce(&Path) -> Command) -> Result<Measured, String> {
    let dir = std::env::temp_dir().join(format!(
        "xtask-bench-ex5-{}-{}",
        std::process::id(),
        unique()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut command = make(&dir);
    let before = cpu_times();
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    // The coordinator asks for its policy once its programs are forked,
    // within milliseconds; a run lasts seconds.
    std::thread::sleep(Duration::from_millis(300));
    let policy = policy_of(child.id());
    let output = child
        .wait_with_output()
        .map_err(|e| format!("cannot wait for {command:?}: {e}"))?;
    let steal = match (before, cpu_times()) {
        (Some((s0, t0)), Some((s1, t1))) if t1 > t0 => (s1 - s0) as f64 / (t1 - t0) as f64,
        _ => 0.0,
    };
    let result = if output.status.success() {
        read_probes(&dir).map(|observed| Measured {
            observed,
            steal,
            said: String::from_utf8_lossy(&output.stderr).into_owned(),
            policy,
        })
    } else {
        Err(format!("{command:?} failed: {}", output.status))
    };
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The scheduling policy of process `pid`, by name.
fn policy_of(pid: u32) -> &'static str {
    use nix::libc;
    // SAFETY: a plain query about one process; no memory is passed.
    let policy = unsafe { libc::sched_getscheduler(pid as libc::pid_t) };
    match policy & !libc::SCHED_RESET_ON_FORK {
        libc::SCHED_FIFO => "SCHED_FIFO",
        libc::SCHED_RR => "SCHED_RR",
        libc::SCHED_OTHER => "SCHED_OTHER",
        _ if policy < 0 => "gone",
        _ => "other",
    }
}

fn unique() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn read_probes(dir: &Path) -> Result<Observed, String> {
    let mut workers: Vec<Vec<(u64, u64)>> = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| e.to_string())?;
    for entry in entries {
        let path: PathBuf = entry.map_err(|e| e.to_string())?.path();
        let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        let intervals = text
            .lines()
            .filter_map(|line| {
                let (a, b) = line.split_once(' ')?;
                Some((a.parse().ok()?, b.parse().ok()?))
            })
            .collect();
        workers.push(intervals);
    }
    if workers.len() != COPIES {
        return Err(format!(
            "expected {COPIES} probe reports, found {}",
            workers.len()
        ));
    }
    Ok(analyse(&workers))
}

/// Turns each worker's run intervals into the figures that matter.
///
/// A probe also sees a gap when the machine's other load preempts it in
/// the middle of a slice. Such pieces are merged back into one slice as
/// long as no other worker ran in between, and counted as interruptions:
/// they are the machine's doing, not the slicer's.
fn analyse(workers: &[Vec<(u64, u64)>]) -> Observed {
    let slice_ns = SLICE.as_nanos() as u64;
    let mut observed = Observed::default();
    let mut tagged: Vec<(u64, u64, usize)> = workers
        .iter()
        .enumerate()
        .flat_map(|(w, intervals)| intervals.iter().map(move |&(a, b)| (a, b, w)))
        .collect();
    tagged.sort();
    let mut slices: Vec<(u64, u64, usize)> = Vec::new();
    for (a, b, w) in tagged {
        match slices.last_mut() {
            Some(last) if last.2 == w => {
                last.1 = last.1.max(b);
                observed.interruptions += 1;
            }
            _ => slices.push((a, b, w)),
        }
    }
    observed.slices = slices.len();
    observed.seen = slices.clone();
    // Once the first worker has exited, the others get more turns in a row
    // and no longer show slice boundaries as gaps.
    let first_exit = workers
        .iter()
        .filter_map(|w| w.last())
        .map(|p| p.1)
        .min()
        .unwrap_or(0);
    let mut seen = vec![false; workers.len()];
    for &(a, b, w) in &slices {
        // A worker's first slice includes its exec: not a fair sample.
        if std::mem::replace(&mut seen[w], true) && b < first_exit {
            observed
                .errors
                .push(Duration::from_nanos((b - a).abs_diff(slice_ns)));
        }
    }
    for (i, mine) in workers.iter().enumerate() {
        for theirs in &workers[i + 1..] {
            for &(a, b) in mine {
                for &(c, d) in theirs {
                    let overlap = b.min(d).saturating_sub(a.max(c));
                    if overlap > 0 {
                        observed.overlaps += 1;
                        observed.overlap_time += Duration::from_nanos(overlap);
                    }
                }
            }
        }
    }
    let all = workers.iter().flatten();
    let ran: u64 = all.clone().map(|(a, b)| b - a).sum();
    let first = all.clone().map(|p| p.0).min().unwrap_or(0);
    let last = all.map(|p| p.1).max().unwrap_or(0);
    observed.cpu_share = ran as f64 / (last - first).max(1) as f64;
    observed
}

/// One run reduced to the figures printed.
#[derive(Debug, Clone)]
struct Summary {
    slices: usize,
    median: Duration,
    p99: Duration,
    max: Duration,
    overlaps: usize,
    overlap_time: Duration,
    cpu_share: f64,
    interruptions: usize,
}

impl Summary {
    fn of(observed: &Observed) -> Self {
        let mut errors = observed.errors.clone();
        errors.sort();
        let rank = |p: f64| {
            if errors.is_empty() {
                return Duration::ZERO;
            }
            let index = (p * errors.len() as f64).ceil() as usize;
            errors[index.clamp(1, errors.len()) - 1]
        };
        Self {
            slices: observed.slices,
            median: rank(0.5),
            p99: rank(0.99),
            max: errors.last().copied().unwrap_or_default(),
            overlaps: observed.overlaps,
            overlap_time: observed.overlap_time,
            cpu_share: observed.cpu_share,
            interruptions: observed.interruptions,
        }
    }

    /// The worst figure of each kind across runs: a goal is met only if
    /// every run met it.
    fn worst(all: &[Summary]) -> Summary {
        let mut worst = all[0].clone();
        for s in &all[1..] {
            worst.median = worst.median.max(s.median);
            worst.p99 = worst.p99.max(s.p99);
            worst.max = worst.max.max(s.max);
            worst.overlaps = worst.overlaps.max(s.overlaps);
            worst.overlap_time = worst.overlap_time.max(s.overlap_time);
            worst.cpu_share = worst.cpu_share.min(s.cpu_share);
            worst.slices = worst.slices.min(s.slices);
            worst.interruptions = worst.interruptions.max(s.interruptions);
        }
        worst
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlaps_and_share() {
        let ms = |n: u64| n * 1_000_000;
        // Two workers taking turns; `b` overlaps `a` by 1 ms once, and is
        // preempted once mid-slice (60..61 ms); `a` exits first, at 120 ms.
        let a = vec![
            (ms(0), ms(20)),
            (ms(40), ms(60)),
            (ms(80), ms(100)),
            (ms(119), ms(120)),
        ];
        let b = vec![
            (ms(20), ms(40)),
            (ms(59), ms(60)),
            (ms(61), ms(80)),
            (ms(100), ms(119)),
            (ms(120), ms(200)),
        ];
        let observed = analyse(&[a, b]);
        assert_eq!(observed.overlaps, 1);
        assert_eq!(observed.overlap_time, Duration::from_millis(1));
        assert_eq!(observed.interruptions, 1);
        let errors: Vec<u64> = observed
            .errors
            .iter()
            .map(|d| d.as_millis() as u64)
            .collect();
        assert_eq!(errors, vec![0, 1, 0, 1]);
        assert!((observed.cpu_share - 200.0 / 200.0).abs() < 1e-9);
    }
}
