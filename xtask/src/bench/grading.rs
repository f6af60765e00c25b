//! Grading itself: all five reference solutions from a warm build, with
//! cases run one at a time and in parallel.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{median_of, seconds, verdict};

pub fn run(runs: usize) -> Result<(), String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let grade_in = |jobs: Option<usize>, trace: bool, sandbox: &str| -> Result<Duration, String> {
        let mut command = Command::new(&me);
        command
            .args(["grade", "--solutions", "--sandbox", sandbox])
            .stdout(Stdio::null());
        if !trace {
            command.arg("--no-trace");
        }
        if let Some(jobs) = jobs {
            command.args(["--jobs", &jobs.to_string()]);
        }
        let start = Instant::now();
        let status = command.status().map_err(|e| e.to_string())?;
        if !status.success() {
            return Err("grading the reference solutions failed".to_string());
        }
        Ok(start.elapsed())
    };
    let grade_with = |jobs: Option<usize>, trace: bool| grade_in(jobs, trace, "auto");
    let grade = |jobs: Option<usize>| grade_with(jobs, true);
    grade(None)?; // warm: builds, if anything needs building
    println!("grade: all five reference solutions, warm build (median of {runs} runs)");
    let serial = median_of(runs, || grade(Some(1)))?;
    let parallel = median_of(runs, || grade(None))?;
    let untraced = median_of(runs, || grade_with(None, false))?;
    let unsandboxed = median_of(runs, || grade_in(None, true, "off"))?;
    println!("  {:<28} {:>12}", "one case at a time", seconds(serial));
    println!("  {:<28} {:>12}", "one case per CPU", seconds(parallel));
    println!(
        "  {:<28} {:>12}",
        "one case per CPU, untraced",
        seconds(untraced)
    );
    println!(
        "  {:<28} {:>12}",
        "one case per CPU, no sandbox",
        seconds(unsandboxed)
    );
    let overhead = parallel.as_secs_f64() / untraced.as_secs_f64();
    let jail = parallel.as_secs_f64() / unsandboxed.as_secs_f64();
    println!(
        "  goal: the sandbox adds less than 1.2x: {} ({jail:.2}x)",
        verdict(jail < 1.2)
    );
    println!(
        "  goal: tracing adds less than 1.3x: {} ({overhead:.2}x)",
        verdict(overhead < 1.3)
    );
    println!(
        "  goal: under 5 s in all: {} ({})\n",
        verdict(parallel < Duration::from_secs(5)),
        seconds(parallel)
    );
    Ok(())
}
