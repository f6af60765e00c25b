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
//! Everything lives beside the workbook, in `WORKBOOK.class/`, outside the
//! workbook (so no build can read the instructor's files):
//!
//! - `store/`: the skeletons built once, in the build jail, and their own
//!   artefacts removed: what is left is the dependencies (nix,
//!   signal-hook, os_pipe...) compiled, `target/debug/{deps,build,
//!   .fingerprint}`. Cargo's fingerprints of registry crates do not depend
//!   on the workspace's path, so these are reused wherever they are copied.
//!   It is rebuilt only when the lock file, a manifest or the toolchain
//!   changes.
//! - `slot-0` ... `slot-N` (one per parallel grader): a checkout, each
//!   with a target directory of its own that only its grader writes,
//!   seeded once by copying the store. Before each submission, the slot's
//!   target is reset to exactly the store's files (anything the previous
//!   student's build left is removed), and `exercises/` is laid out anew:
//!   a build reads no classmate's sources or binaries, and compiles only
//!   the five steps. The store itself is never in a jail's reach.
//! - Outside a class, `grade --workspace` or `--submission` with
//!   `--prebuilt-dependencies` copies the store into a target directory of
//!   its own for its one build ([`SeededTarget`]).
//!
//! Output: `grades.csv` (one row per student: points per step, total,
//! status, reason) and `reports/STUDENT.EXT`, the student's report in the
//! chosen format, in `--output-dir` (default: `DIR-grades` beside DIR).

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::report::Format;
use super::{build, sandbox, submission, SandboxMode};
use crate::project;

pub struct Options {
    pub submissions: PathBuf,
    pub output_dir: Option<PathBuf>,
    /// Submissions graded at once [default: one per CPU].
    pub jobs: Option<usize>,
    pub step: Option<String>,
    pub tests: Option<PathBuf>,
    pub no_trace: bool,
    pub sandbox: SandboxMode,
    pub format: Format,
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
pub fn run(options: &Options) -> Result<bool, String> {
    let graded = grade(options)?;
    eprintln!(
        "grades: {} ({} submissions)",
        graded.csv.display(),
        graded.rows.len()
    );
    Ok(graded.rows.iter().all(|r| r.status != "error"))
}

pub fn grade(options: &Options) -> Result<Graded, String> {
    let root = project::root();
    let steps: Vec<&'static str> = match &options.step {
        Some(wanted) => vec![project::find_step(wanted)?],
        None => project::STEPS.to_vec(),
    };
    let class = &options.submissions;
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

    let area = area(&root)?;
    let _lock = lock(&area)?;
    let jobs = options
        .jobs
        .unwrap_or_else(super::default_jobs)
        .clamp(1, students.len().max(1));
    let store = Store::ready(&root, &area)?;
    // The grader's own probe worker, built once here rather than by every
    // student's grader at the same time.
    build::Workspace::open(&root)?
        .build(&["bench_probes".to_string()], false)
        .remove(0)
        .map_err(|e| format!("cannot build the grader's probe worker: {e}"))?;
    let slots: Vec<PathBuf> = (0..jobs)
        .map(|k| store.seed(&area.join(format!("slot-{k}"))))
        .collect::<Result<_, _>>()?;

    let progress = Progress::new(students.len());
    let queue = Arc::new(Mutex::new(students.into_iter()));
    let rows = Mutex::new(Vec::new());
    let cases_at_once = (super::default_jobs() / jobs).max(1);
    std::thread::scope(|scope| {
        for slot in &slots {
            let queue = Arc::clone(&queue);
            let (rows, progress, store, steps, reports) =
                (&rows, &progress, &store, &steps, &reports);
            scope.spawn(move || loop {
                let Some(student) = queue.lock().unwrap().next() else {
                    return;
                };
                progress.start(&student);
                let started = Instant::now();
                let row = match store.reset(slot) {
                    Ok(()) => grade_student(
                        options,
                        &student,
                        &class.join(&student),
                        slot,
                        steps,
                        reports,
                        cases_at_once,
                    ),
                    Err(e) => error_row(&student, steps, e),
                };
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

/// `WORKBOOK.class`, beside the workbook: the store and the slots.
fn area(root: &Path) -> Result<PathBuf, String> {
    let name = root.file_name().unwrap_or_default().to_string_lossy();
    let area = root.with_file_name(format!("{name}.class"));
    std::fs::create_dir_all(&area).map_err(|e| format!("{}: {e}", area.display()))?;
    Ok(area)
}

/// One class at a time per workbook: the slots are shared. A second one
/// waits for the first. A grading that copies the store ([`SeededTarget`])
/// takes it too, so that it never reads a store being rebuilt.
fn lock(area: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, String> {
    use nix::fcntl::{Flock, FlockArg};
    let path = area.join("lock");
    let file = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).or_else(|(file, _)| {
        eprintln!(
            "waiting for another grading that uses {} to finish...",
            area.display()
        );
        Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| format!("{}: cannot lock: {e}", path.display()))
    })
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

/// A row from a student's json report (schema 1, see `report::json`).
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

/// The dependencies, compiled once (see the module's documentation).
struct Store {
    /// `store/target`, as the skeletons' build left it, their own
    /// artefacts removed.
    target: PathBuf,
    /// Every path under `target`, relative: what a slot is reset to.
    files: BTreeSet<PathBuf>,
    /// What the store was built from (lock file, manifests, toolchain).
    stamp: String,
    built_in: Option<Duration>,
}

impl Store {
    fn ready(root: &Path, area: &Path) -> Result<Self, String> {
        let dir = area.join("store");
        let target = dir.join("target");
        let stamp = stamp(root)?;
        let stamp_file = dir.join("stamp");
        let mut built_in = None;
        if std::fs::read_to_string(&stamp_file).ok().as_deref() != Some(stamp.as_str()) {
            let started = Instant::now();
            eprintln!("building the dependencies once, into {}...", dir.display());
            let _ = std::fs::remove_dir_all(&dir);
            submission::checkout(root, &dir, &[])?;
            let allowed = sandbox::locked_registry_packages(&root.join("Cargo.lock"));
            let workspace = build::Workspace::open_submission(
                &dir,
                sandbox::BUILD_TIME_LIMIT * 5,
                &allowed,
                Some(&target),
            )?;
            let packages: Vec<String> = project::STEPS.iter().map(|s| s.to_string()).collect();
            for (step, built) in project::STEPS.iter().zip(workspace.build(&packages, false)) {
                built.map_err(|e| format!("the dependency store: {step} does not build: {e}"))?;
            }
            strip_own_artefacts(&dir, &target)?;
            std::fs::write(&stamp_file, &stamp).map_err(|e| e.to_string())?;
            built_in = Some(started.elapsed());
        }
        let mut files = BTreeSet::new();
        list(&target, Path::new(""), &mut files);
        Ok(Self {
            target,
            files,
            stamp,
            built_in,
        })
    }

    /// Makes `slot` a checkout whose target holds the store (copied once,
    /// and again only when the store changed).
    fn seed(&self, slot: &Path) -> Result<PathBuf, String> {
        let stamp_file = slot.with_extension("stamp");
        if std::fs::read_to_string(&stamp_file).ok().as_deref() != Some(self.stamp.as_str()) {
            let _ = std::fs::remove_dir_all(slot);
            std::fs::create_dir_all(slot).map_err(|e| format!("{}: {e}", slot.display()))?;
            copy_tree(&self.target, &slot.join("target"))?;
            std::fs::write(&stamp_file, &self.stamp).map_err(|e| e.to_string())?;
        }
        Ok(slot.to_path_buf())
    }

    /// Removes from the slot's target every file the store does not have:
    /// the previous student's build leaves nothing behind.
    fn reset(&self, slot: &Path) -> Result<(), String> {
        prune(&slot.join("target"), Path::new(""), &self.files)
    }
}

/// The target directory of one jailed build outside a class
/// (`grade --workspace` or `--submission` with `--prebuilt-dependencies`),
/// private to this grader and removed when dropped; [`fill`](Self::fill)
/// copies the class's dependency store into it (built first if it is not
/// ready). Like a slot, it then holds no binary of any checkout, only
/// compiled dependencies: everything graded is built from the submission
/// in this very grading.
pub struct SeededTarget {
    dir: PathBuf,
}

impl SeededTarget {
    /// An empty one, for now.
    pub fn new() -> Result<Self, String> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = std::env::temp_dir().join(format!("xtask-deps-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(Self { dir })
    }

    pub fn target(&self) -> PathBuf {
        self.dir.join("target")
    }

    /// Copies in the store of the workbook at `root`.
    pub fn fill(&self, root: &Path) -> Result<(), String> {
        let area = area(root)?;
        let _lock = lock(&area)?;
        let store = Store::ready(root, &area)?;
        copy_tree(&store.target, &self.target())
    }
}

impl Drop for SeededTarget {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What a store depends on: if any of it changes, it is rebuilt.
fn stamp(root: &Path) -> Result<String, String> {
    let mut text = String::new();
    let mut add = |path: &Path| {
        text.push_str(&format!("== {}\n", path.display()));
        text.push_str(&std::fs::read_to_string(path).unwrap_or_default());
    };
    add(&root.join("Cargo.toml"));
    add(&root.join("Cargo.lock"));
    for step in project::STEPS {
        add(&root.join("exercises").join(step).join("Cargo.toml"));
    }
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let version = Command::new(rustc)
        .arg("-vV")
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    text.push_str(&String::from_utf8_lossy(&version.stdout));
    for (key, value) in build::JAILED_BUILD_SETTINGS {
        text.push_str(&format!("{key}={value}\n"));
    }
    for key in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
    ] {
        text.push_str(&format!("{key}={:?}\n", std::env::var_os(key)));
    }
    Ok(text)
}

/// Leaves only the dependencies in the store's target: the skeletons'
/// binaries, objects and fingerprints go (their crate names are the
/// workspace's targets, per `cargo metadata`).
fn strip_own_artefacts(checkout: &Path, target: &Path) -> Result<(), String> {
    let output = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(checkout)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?;
    let mut own = BTreeSet::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        own.insert(package["name"].as_str().unwrap_or("").replace('-', "_"));
        for target in package["targets"].as_array().into_iter().flatten() {
            own.insert(target["name"].as_str().unwrap_or("").replace('-', "_"));
        }
    }
    let debug = target.join("debug");
    let io = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    for entry in std::fs::read_dir(&debug)
        .map_err(|e| io(&debug, e))?
        .flatten()
    {
        let name = entry.file_name();
        if !["deps", "build", ".fingerprint"].contains(&name.to_string_lossy().as_ref()) {
            remove(&entry.path());
        }
    }
    for kept in ["deps", "build", ".fingerprint"] {
        let dir = debug.join(kept);
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().replace('-', "_");
            let name = name.strip_prefix("lib").unwrap_or(&name);
            if own.iter().any(|crate_name| {
                name.strip_prefix(crate_name.as_str())
                    .is_some_and(|rest| rest.starts_with('_') || rest.starts_with('.'))
            }) {
                remove(&entry.path());
            }
        }
    }
    for extra in ["tmp", "CACHEDIR.TAG", ".rustc_info.json"] {
        remove(&target.join(extra));
    }
    Ok(())
}

fn remove(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {
            let _ = std::fs::remove_dir_all(path);
        }
        Ok(_) => {
            let _ = std::fs::remove_file(path);
        }
        Err(_) => {}
    }
}

/// Every path under `dir`, relative to the tree's top.
fn list(dir: &Path, relative: &Path, into: &mut BTreeSet<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = relative.join(entry.file_name());
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            list(&entry.path(), &path, into);
        }
        into.insert(path);
    }
}

/// Removes whatever under `dir` is not in `keep`.
fn prune(dir: &Path, relative: &Path, keep: &BTreeSet<PathBuf>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = relative.join(entry.file_name());
        if !keep.contains(&path) {
            remove(&entry.path());
        } else if entry.file_type().is_ok_and(|t| t.is_dir()) {
            prune(&entry.path(), &path, keep)?;
        }
    }
    Ok(())
}

/// Copies a tree (the store into a slot). `std::fs::copy` shares the
/// blocks where the file system can (copy_file_range, reflinks). Each
/// file keeps its modification time: cargo takes a dependency whose output
/// is newer than its dependent's for rebuilt, and would compile again
/// whatever happened to be copied first.
fn copy_tree(from: &Path, into: &Path) -> Result<(), String> {
    std::fs::create_dir_all(into).map_err(|e| format!("{}: {e}", into.display()))?;
    for entry in std::fs::read_dir(from)
        .map_err(|e| format!("{}: {e}", from.display()))?
        .flatten()
    {
        let to = into.join(entry.file_name());
        let kind = entry.file_type().map_err(|e| e.to_string())?;
        if kind.is_dir() {
            copy_tree(&entry.path(), &to)?;
        } else if kind.is_file() {
            let io = |e: std::io::Error| format!("{}: {e}", entry.path().display());
            std::fs::copy(entry.path(), &to).map_err(io)?;
            let modified = entry.metadata().and_then(|m| m.modified()).map_err(io)?;
            std::fs::File::options()
                .write(true)
                .open(&to)
                .and_then(|f| f.set_modified(modified))
                .map_err(io)?;
        }
    }
    Ok(())
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
