//! A whole class: 30 copies of the reference solutions, a few broken ones
//! among them, graded with `grade --submissions` (the dependency store
//! and two slots per CPU), beside one submission graded alone.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{seconds, verdict};
use crate::grade::{class, report::Format, Options};
use crate::project;

const STUDENTS: usize = 30;

pub fn run(students: usize) -> Result<(), String> {
    let students = students.clamp(2, STUDENTS);
    let root = project::root();
    let work = std::env::temp_dir().join(format!("xtask-bench-class-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let result = measure(&root, &work, students);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn measure(root: &Path, work: &Path, students: usize) -> Result<(), String> {
    let grade = |class: &Path, out: &str| {
        let options = Options {
            output_dir: Some(work.join(out)),
            format: Format::Json,
            ..Options::default()
        };
        class::grade(&options, class)
    };
    // One student alone (this also builds the store, if it must be).
    let alone = work.join("alone");
    reference_copy(root, &alone.join("student-00"))?;
    let started = Instant::now();
    let first = grade(&alone, "alone-grades")?;
    let mut one = started.elapsed();
    if let Some(store) = first.store_built_in {
        println!(
            "class: the dependency store was built first ({})",
            seconds(store)
        );
        let started = Instant::now();
        grade(&alone, "alone-grades")?;
        one = started.elapsed();
    }

    // The class: mostly reference copies; every tenth is broken.
    let class_dir = work.join("class");
    let mut broken = 0;
    for k in 0..students {
        let dir = class_dir.join(format!("student-{k:02}"));
        reference_copy(root, &dir)?;
        match k % 10 {
            3 => {
                let main = dir.join("ex2_signal_exchange/src/main.rs");
                let text = std::fs::read_to_string(&main).map_err(|e| e.to_string())?;
                std::fs::write(&main, text + "\nfn broken() -> u32 { \"no\" }\n")
                    .map_err(|e| e.to_string())?;
                broken += 1;
            }
            7 => {
                std::fs::write(dir.join("ex1_fibonacci_child/build.rs"), "fn main() {}\n")
                    .map_err(|e| e.to_string())?;
                broken += 1;
            }
            _ => {}
        }
    }
    let load_before = load();
    let started = Instant::now();
    let cpu_before = children_cpu();
    let graded = grade(&class_dir, "class-grades")?;
    let wall = started.elapsed();
    let cpu = children_cpu().saturating_sub(cpu_before);
    let full = graded
        .rows
        .iter()
        .filter(|r| r.total == r.max && r.max > 0)
        .count();
    let per = wall.as_secs_f64() / students as f64;
    let after_first = (wall.saturating_sub(one)).as_secs_f64() / (students - 1) as f64;
    println!(
        "class: {students} submissions ({broken} broken), {} graders at once on {} CPUs",
        graded_jobs(students),
        crate::grade::default_jobs()
    );
    println!("  {:<36} {:>12}", "one submission alone", seconds(one));
    println!("  {:<36} {:>12}", "the whole class", seconds(wall));
    println!(
        "  {:<36} {:>12}",
        "per submission",
        seconds(Duration::from_secs_f64(per))
    );
    println!(
        "  {:<36} {:>12}",
        "per submission after the first",
        seconds(Duration::from_secs_f64(after_first))
    );
    // CPU time does not depend on what else the machine runs; on a
    // machine shared with other work, wall time does.
    println!(
        "  {:<36} {:>12}",
        "CPU time per submission (all cores)",
        seconds(cpu / students as u32)
    );
    // Other work on the machine shows in the load average (1 minute),
    // taken before and after.
    println!(
        "  {:<36} {:>12}",
        "load average before, when done",
        format!("{load_before}, {}", load())
    );
    println!(
        "  full marks: {full} of {students} (expected {})",
        students - broken
    );
    let errors = graded.rows.iter().filter(|r| r.status == "error").count();
    if errors > 0 {
        println!("  goal: not measured: the grader failed on {errors} submission(s)\n");
    } else {
        println!(
            "  goal: under 3 s per submission after the first: {} ({after_first:.2} s)\n",
            verdict(after_first < 3.0)
        );
    }
    Ok(())
}

/// The 1-minute load average.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(String::from))
        .unwrap_or_default()
}

/// User and system time of every finished descendant.
fn children_cpu() -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_CHILDREN).map_or(Duration::ZERO, |u| {
        let t = |tv: nix::sys::time::TimeVal| {
            Duration::from_secs(tv.tv_sec() as u64) + Duration::from_micros(tv.tv_usec() as u64)
        };
        t(u.user_time()) + t(u.system_time())
    })
}

fn graded_jobs(students: usize) -> usize {
    class::default_jobs().min(students)
}

/// The reference solutions' sources, as a student would submit them.
fn reference_copy(root: &Path, into: &Path) -> Result<(), String> {
    for step in project::STEPS {
        copy_tree(
            &root.join("solutions").join(step).join("src"),
            &into.join(step).join("src"),
        )?;
    }
    Ok(())
}

fn copy_tree(from: &Path, into: &PathBuf) -> Result<(), String> {
    std::fs::create_dir_all(into).map_err(|e| e.to_string())?;
    for entry in std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))? {
        let entry = entry.map_err(|e| e.to_string())?;
        let to = into.join(entry.file_name());
        if entry.file_type().map_err(|e| e.to_string())?.is_dir() {
            copy_tree(&entry.path(), &to)?;
        } else {
            std::fs::copy(entry.path(), &to).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}
