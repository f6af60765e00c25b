//! `cargo xtask grade --submissions DIR`: a whole class at once.
//!
//! Each subfolder of DIR is one student's submission, checked and placed
//! by the rules of `--submission` (see `submission`). Each is graded by a
//! grader process of its own (`xtask grade --submission`), so that one
//! student's grading can neither disturb nor end another's: the grader
//! sweeps every process it outlives, and that must never be a classmate's.
//!
//! # Where things are built
//!
//! In the grader's area of the workbook's `target/` (see `store`): the
//! dependency store, built once (here, before the first student, if it
//! must be) and held shared while the class is graded, and one slot per
//! student graded at once (`class/slot-N`). Each student's grader takes a
//! slot, lays out the student's checkout in it anew and builds it on the
//! store, read-only under an overlay: a build reads no classmate's sources
//! or binaries, and compiles only the five steps.
//!
//! Output: `grades.csv` (one row per student: points per step, total,
//! status, reason) and `reports/STUDENT.EXT`, the student's report in the
//! chosen format, in `--output-dir` (default: `DIR-grades` beside DIR).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::source::store;
use super::{build, Options};
use crate::project;

/// Students graded at once by default: two per CPU. A student's grading
/// is a build (CPU-bound) then cases that mostly wait (on timers, pipes,
/// the other programs), each student's one at a time: with two per CPU,
/// one's cases run while another builds. More would make the cases'
/// timing depend on the load for little gain.
pub fn default_jobs() -> usize {
    2 * super::default_jobs()
}

/// A student whose grading takes longer than this is stopped (a build
/// that does not end): every case has its own, much shorter, limit.
const STUDENT_LIMIT: Duration = Duration::from_secs(600);

/// One row of the gradebook.
#[derive(Debug, Clone)]
pub struct Row {
    pub student: String,
    /// Points per step, in `steps` order (None: the grader failed).
    pub points: Vec<Option<u32>>,
    pub total: u32,
    pub max: u32,
    pub status: &'static str,
    pub reason: String,
    pub duration: Duration,
}

/// What a class run gives back (for `bench class` too).
pub struct Graded {
    pub rows: Vec<Row>,
    pub csv: PathBuf,
    /// Building the dependency store, when it had to be built.
    pub store_built_in: Option<Duration>,
}

/// Grades the class, writes the gradebook. Ok(true) when every submission
/// got a grade (a refused one included); false when the grader itself
/// failed on one.
pub fn run(options: &Options, class: &Path) -> Result<bool, String> {
    let graded = grade(options, class)?;
    eprintln!(
        "grades: {} ({} submissions)",
        graded.csv.display(),
        graded.rows.len()
    );
    Ok(graded.rows.iter().all(|r| r.status != "error"))
}

pub fn grade(options: &Options, class: &Path) -> Result<Graded, String> {
    let root = project::root();
    let steps: Vec<&'static str> = match &options.step {
        Some(wanted) => vec![project::find_step(wanted)?],
        None => project::STEPS.to_vec(),
    };
    let students = list_students(class)?;
    let output = match &options.output_dir {
        Some(dir) => dir.clone(),
        None => {
            let name = class
                .canonicalize()
                .ok()
                .and_then(|c| c.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "submissions".into());
            class.join("..").join(format!("{name}-grades"))
        }
    };
    let reports = output.join("reports");
    std::fs::create_dir_all(&reports).map_err(|e| format!("{}: {e}", reports.display()))?;
    let output = output.canonicalize().map_err(|e| e.to_string())?;
    let reports = output.join("reports");

    let area = store::area(&root)?.join("class");
    std::fs::create_dir_all(&area).map_err(|e| format!("{}: {e}", area.display()))?;
    // One class at a time per workbook: the slots are shared.
    let _lock = store::lock(
        &area.join("lock"),
        "waiting for another class graded from this workbook to finish...",
    )?;
    let jobs = options
        .jobs
        .unwrap_or_else(default_jobs)
        .clamp(1, students.len().max(1));
    // Built once here if it must be, and held (shared) while the class
    // is graded: no other grading can rebuild it meanwhile.
    let store = store::Store::ready(&root, true)?;
    // The grader's own probe worker, built once here rather than by every
    // student's grader at the same time.
    build::Workspace::open(&root)?
        .build(&["bench_probes".to_string()], false)
        .remove(0)
        .map_err(|e| format!("cannot build the grader's probe worker: {e}"))?;
    // Each student's grader takes its slot (a checkout and a target
    // directory seeded from the store) and lays it out anew.
    let slots: Vec<PathBuf> = (0..jobs).map(|k| area.join(format!("slot-{k}"))).collect();

    let progress = Progress::new(students.len());
    let queue = Arc::new(Mutex::new(students.into_iter()));
    let rows = Mutex::new(Vec::new());
    let cases_at_once = (super::default_jobs() / jobs).max(1);
    std::thread::scope(|scope| {
        for slot in &slots {
            let queue = Arc::clone(&queue);
            let (rows, progress, steps, reports) = (&rows, &progress, &steps, &reports);
            scope.spawn(move || loop {
                let Some(student) = queue.lock().unwrap().next() else {
                    return;
                };
                progress.start(&student);
                let started = Instant::now();
                let row = grade_student(
                    options,
                    &student,
                    &class.join(&student),
                    slot,
                    steps,
                    reports,
                    cases_at_once,
                );
                let row = Row {
                    duration: started.elapsed(),
                    ..row
                };
                progress.finish(&row);
                rows.lock().unwrap().push(row);
            });
        }
    });
    progress.done();
    let mut rows = rows.into_inner().unwrap();
    rows.sort_by(|a, b| a.student.cmp(&b.student));
    let csv = output.join("grades.csv");
    std::fs::write(&csv, gradebook(&steps, &rows))
        .map_err(|e| format!("{}: {e}", csv.display()))?;
    Ok(Graded {
        rows,
        csv,
        store_built_in: store.built_in,
    })
}

/// The subfolders of the class directory, by name (hidden ones aside).
fn list_students(class: &Path) -> Result<Vec<String>, String> {
    let entries =
        std::fs::read_dir(class).map_err(|e| format!("--submissions {}: {e}", class.display()))?;
    let mut students: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    students.sort();
    if students.is_empty() {
        return Err(format!(
            "--submissions {}: no subfolder (one per student is expected)",
            class.display()
        ));
    }
    Ok(students)
}

/// Runs `xtask grade --submission` for one student in `slot`, and reads
/// the json report back.
fn grade_student(
    options: &Options,
    student: &str,
    submission: &Path,
    slot: &Path,
    steps: &[&'static str],
    reports: &Path,
    cases_at_once: usize,
) -> Row {
    let me = match std::env::current_exe() {
        Ok(me) => me,
        Err(e) => return error_row(student, steps, e.to_string()),
    };
    let outcome = slot.with_extension("outcome.json");
    let _ = std::fs::remove_file(&outcome);
    let report = reports.join(format!("{student}.{}", options.format.extension()));
    let mut command = Command::new(me);
    command
        .arg("grade")
        .args(&options.step)
        .arg("--submission")
        .arg(submission)
        .arg("--checkout")
        .arg(slot)
        .arg("--outcome-json")
        .arg(&outcome)
        .args(["--format", options.format.name()])
        .arg("--output")
        .arg(&report)
        .args(["--jobs", &cases_at_once.to_string()])
        .args(["--sandbox", options.sandbox.name()])
        .args(options.no_trace.then_some("--no-trace"))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(tests) = &options.tests {
        command.arg("--tests").arg(tests);
    }
    {
        use std::os::unix::process::CommandExt;
        // A group of its own: should it overrun, it is killed with the
        // cargo and keepers it started.
        command.process_group(0);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return error_row(student, steps, format!("cannot start the grader: {e}")),
    };
    let stderr = child.stderr.take();
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = stderr {
            let _ = std::io::Read::read_to_string(&mut pipe, &mut text);
        }
        text
    });
    let until = Instant::now() + STUDENT_LIMIT;
    let overran = loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => break false,
            Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let group = nix::unistd::Pid::from_raw(-(child.id() as i32));
                let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
                let _ = child.wait();
                break true;
            }
        }
    };
    let stderr = errors.join().unwrap_or_default();
    if overran {
        return error_row(
            student,
            steps,
            format!(
                "grading took longer than {} s and was stopped",
                STUDENT_LIMIT.as_secs()
            ),
        );
    }
    match std::fs::read_to_string(&outcome) {
        Ok(text) => row_from_report(student, steps, &text),
        Err(_) => {
            let why = stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("the grader wrote no report")
                .trim_start_matches("xtask: ");
            error_row(student, steps, why.to_string())
        }
    }
}

fn error_row(student: &str, steps: &[&'static str], why: String) -> Row {
    Row {
        student: student.to_string(),
        points: vec![None; steps.len()],
        total: 0,
        max: 0,
        status: "error",
        reason: why,
        duration: Duration::ZERO,
    }
}

/// A row from a student's json report (schema 2, see `report::json`).
pub fn row_from_report(student: &str, steps: &[&'static str], text: &str) -> Row {
    let report: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return error_row(student, steps, format!("unreadable report: {e}")),
    };
    let number = |v: &serde_json::Value, key: &str| v[key].as_u64().unwrap_or(0) as u32;
    let graded: Vec<&serde_json::Value> = report["steps"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let find = |step: &str| graded.iter().find(|s| s["step"] == step);
    let points = steps
        .iter()
        .map(|step| find(step).map(|s| number(s, "score")))
        .collect();
    let mut problems = Vec::new();
    let mut refused = None;
    for step in &graded {
        let status = step["status"].as_str().unwrap_or("?");
        let diagnosis = step["diagnosis"].as_str().unwrap_or("");
        let first = diagnosis.lines().next().unwrap_or("").trim();
        match status {
            "graded" => {}
            "refused" => refused = Some(first.to_string()),
            _ => problems.push(format!(
                "{}: {}{}{first}",
                step["step"].as_str().unwrap_or("?"),
                status.replace('_', " "),
                if first.is_empty() { "" } else { ": " }
            )),
        }
    }
    let (status, reason) = match refused {
        Some(why) => ("refused", why),
        None if problems.is_empty() => ("graded", String::new()),
        None => ("incomplete", problems.join("; ")),
    };
    Row {
        student: student.to_string(),
        points,
        total: number(&report, "score"),
        max: number(&report, "max_score"),
        status,
        reason,
        duration: Duration::ZERO,
    }
}

/// `grades.csv`: student, one column per step, total, max, status, reason.
pub fn gradebook(steps: &[&str], rows: &[Row]) -> String {
    let mut text = String::from("student");
    for step in steps {
        text.push(',');
        text.push_str(step);
    }
    text.push_str(",total,max,status,reason\n");
    for row in rows {
        let mut fields = vec![field(&row.student)];
        fields.extend(
            row.points
                .iter()
                .map(|p| p.map(|p| p.to_string()).unwrap_or_default()),
        );
        fields.push(row.total.to_string());
        fields.push(row.max.to_string());
        fields.push(row.status.to_string());
        fields.push(field(&row.reason));
        text.push_str(&fields.join(","));
        text.push('\n');
    }
    text
}

/// A CSV field (RFC 4180): quoted when it holds a comma, quote or line
/// break; on one line always.
fn field(text: &str) -> String {
    let text = text.replace(['\n', '\r'], " ");
    if text.contains([',', '"']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// A progress bar with the current students and the ETA on a terminal;
/// one plain line per student otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: usize,
    done: Mutex<usize>,
    running: Mutex<Vec<String>>,
}

impl Progress {
    fn new(total: usize) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} students, ETA {eta}: {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        Self {
            bar,
            total,
            done: Mutex::new(0),
            running: Mutex::new(Vec::new()),
        }
    }

    fn start(&self, student: &str) {
        let mut running = self.running.lock().unwrap();
        running.push(student.to_string());
        if let Some(bar) = &self.bar {
            bar.set_message(running.join(", "));
        }
    }

    fn finish(&self, row: &Row) {
        let mut running = self.running.lock().unwrap();
        running.retain(|s| s != &row.student);
        let mut done = self.done.lock().unwrap();
        *done += 1;
        let line = format!(
            "[{}/{}] {}: {}/{} {}{}{} ({:.1} s)",
            *done,
            self.total,
            row.student,
            row.total,
            row.max,
            row.status,
            if row.reason.is_empty() { "" } else { ": " },
            truncate(&row.reason, 100),
            row.duration.as_secs_f64()
        );
        match &self.bar {
            Some(bar) => {
                bar.println(line);
                bar.inc(1);
                bar.set_message(running.join(", "));
            }
            None => eprintln!("{line}"),
        }
    }

    fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn truncate(text: &str, at: usize) -> String {
    match text.char_indices().nth(at) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a, b"), "\"a, b\"");
        assert_eq!(field("say \"hi\"\nthere"), "\"say \"\"hi\"\" there\"");
    }

    #[test]
    fn rows_come_from_the_json_report() {
        let report = r#"{"score": 9, "max_score": 20, "steps": [
            {"step": "ex1_fibonacci_child", "status": "graded", "score": 9, "diagnosis": null},
            {"step": "ex2_signal_exchange", "status": "does_not_compile", "score": 0,
             "diagnosis": "src/main.rs:1:1: error: nope\nmore"}]}"#;
        let row = row_from_report(
            "ada",
            &["ex1_fibonacci_child", "ex2_signal_exchange"],
            report,
        );
        assert_eq!(row.points, vec![Some(9), Some(0)]);
        assert_eq!((row.total, row.max, row.status), (9, 20, "incomplete"));
        assert_eq!(
            row.reason,
            "ex2_signal_exchange: does not compile: src/main.rs:1:1: error: nope"
        );
    }
}
