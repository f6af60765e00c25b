//! Grading itself: all five reference solutions from a warm build, with
//! cases run one at a time and in parallel.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{median_of, seconds, verdict};

pub fn run(runs: usize) -> Result<(), String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let grade = |jobs: Option<usize>| -> Result<Duration, String> {
        let mut command = Command::new(&me);
        command.args(["grade", "--solutions"]).stdout(Stdio::null());
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
    grade(None)?; // warm: builds, if anything needs building
    println!("grade: all five reference solutions, warm build (median of {runs} runs)");
    let serial = median_of(runs, || grade(Some(1)))?;
    let parallel = median_of(runs, || grade(None))?;
    println!("  {:<28} {:>12}", "one case at a time", seconds(serial));
    println!("  {:<28} {:>12}", "one case per CPU", seconds(parallel));
    println!(
        "  goal: under 5 s in all: {} ({})\n",
        verdict(parallel < Duration::from_secs(5)),
        seconds(parallel)
    );
    Ok(())
}
