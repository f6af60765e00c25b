//! `cargo xtask bench`: speed figures, each printed beside a baseline
//! measured in the same run, so that ratios hold on a noisy machine.
//!
//! Benchmarks print; they never fail on a slow machine. Goals are shown
//! as met or not, for a person to judge.

mod calls;
mod class;
mod counters;
mod deadline;
mod grading;
mod reverser;
mod slicer;
mod sockets;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::grade::build::{BinarySnapshot, Workspace};
use crate::project;

/// The benchmarks, by the name `cargo xtask bench NAME` takes.
const BENCHMARKS: [&str; 7] = ["ex3", "ex5", "ex7", "ex8", "ex9", "grade", "class"];

pub fn run(only: Option<&str>, quick: bool) -> Result<(), String> {
    let wanted = |name: &str| only.is_none_or(|o| name.starts_with(o));
    if !BENCHMARKS.iter().any(|b| wanted(b)) {
        return Err(format!(
            "no benchmark is called {:?}; try {}",
            only.unwrap_or(""),
            BENCHMARKS.join(", ")
        ));
    }
    if ["ex3", "ex5", "ex7", "ex8", "ex9", "grade"]
        .iter()
        .all(|b| !wanted(b))
    {
        // Only `class`: no release build needed.
        return class::run(if quick { 6 } else { 30 });
    }
    // Binary paths come from cargo (whatever target directory is set),
    // snapshotted into a private directory.
    let snapshot = build_release(&[
        "ex3_pipe_reverser_solution",
        "ex5_round_robin_solution",
        "ex7_pipeline_deadline_solution",
        "ex8_threads_lock_solution",
        "ex9_socket_server_solution",
        "bench_probes",
    ])?;
    let bins = snapshot.dir.clone();
    let python = find_python();
    if python.is_none() {
        println!("(python3 not found: the Python baselines are skipped)\n");
    }
    if wanted("ex3") {
        reverser::run(&bins, python.as_deref(), if quick { 3 } else { 7 })?;
    }
    if wanted("ex5") {
        slicer::run(&bins, python.as_deref(), if quick { 1 } else { 3 })?;
    }
    if wanted("ex7") {
        deadline::run(&bins, python.as_deref(), if quick { 10 } else { 100 })?;
    }
    if wanted("ex8") {
        counters::run(&bins, if quick { 1 } else { 5 })?;
    }
    if wanted("ex9") {
        sockets::run(&bins, python.as_deref(), if quick { 1 } else { 3 })?;
    }
    if wanted("grade") {
        grading::run(if quick { 1 } else { 3 })?;
    }
    if wanted("class") {
        class::run(if quick { 6 } else { 30 })?;
    }
    Ok(())
}

fn build_release(packages: &[&str]) -> Result<BinarySnapshot, String> {
    let workspace = Workspace::open(&project::root())?;
    if let Some(note) = &workspace.target_note {
        println!("note: {note}");
    }
    let packages: Vec<String> = packages.iter().map(|p| p.to_string()).collect();
    let snapshot = BinarySnapshot::new()?;
    for (package, built) in packages.iter().zip(workspace.build(&packages, true)) {
        let binaries = built.map_err(|e| format!("the release build of {package} failed: {e}"))?;
        for (name, path) in binaries {
            snapshot.add(&name, &path)?;
        }
    }
    Ok(snapshot)
}

fn find_python() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("python3"))
        .find(|p| p.is_file())
}

/// Restricts a command (and everything it forks) to one CPU.
fn pin_to_cpu(command: &mut Command, cpu: usize) {
    use std::os::unix::process::CommandExt;
    // SAFETY: sched_setaffinity is a plain system call, async-signal-safe;
    // the CpuSet is built before the fork.
    let mut set = nix::sched::CpuSet::new();
    let _ = set.set(cpu);
    unsafe {
        command.pre_exec(move || {
            nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
                .map_err(std::io::Error::from)
        });
    }
}

/// No single measured run may take longer than this.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// Runs a command to completion with `input` on stdin and stdout thrown
/// away, and returns its wall time. A run past [`RUN_LIMIT`] is killed.
fn time_once(mut command: Command, input: &Path) -> Result<Duration, String> {
    let stdin = std::fs::File::open(input).map_err(|e| format!("{}: {e}", input.display()))?;
    command
        .stdin(stdin)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let start = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    // A watchdog thread sleeps until the limit, so that this thread can
    // block in wait() without waking up (and disturbing the measurement).
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if finished.recv_timeout(RUN_LIMIT).is_err() {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            return true;
        }
        false
    });
    let status = child.wait().map_err(|e| e.to_string())?;
    let elapsed = start.elapsed();
    let _ = done.send(());
    if watchdog.join().unwrap_or(false) {
        return Err(format!(
            "{command:?} took more than {} s",
            RUN_LIMIT.as_secs()
        ));
    }
    if !status.success() {
        return Err(format!("{command:?} failed: {status}"));
    }
    Ok(elapsed)
}

/// The median of several timed runs: robust against one unlucky run.
fn median_of(
    runs: usize,
    mut once: impl FnMut() -> Result<Duration, String>,
) -> Result<Duration, String> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        times.push(once()?);
    }
    times.sort();
    Ok(times[times.len() / 2])
}

/// Medians of two commands run alternately, `runs` times each.
fn median_pair(
    runs: usize,
    mut first: impl FnMut() -> Result<Duration, String>,
    mut second: impl FnMut() -> Result<Duration, String>,
) -> Result<(Duration, Duration), String> {
    let (mut a, mut b) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for _ in 0..runs {
        a.push(first()?);
        b.push(second()?);
    }
    a.sort();
    b.sort();
    Ok((a[runs / 2], b[runs / 2]))
}

fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.2} s")
    } else {
        format!("{:.1} ms", s * 1e3)
    }
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "NOT met"
    }
}
