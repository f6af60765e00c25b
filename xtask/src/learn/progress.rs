//! The learner's progress: one small TOML file at the workbook's root
//! ([`FILE`], git-ignored), what the last grading of each step said and a
//! fingerprint of the sources it graded.
//!
//! It is a cache, never a grade: everything in it can be rebuilt by
//! grading again, and it is, when it is missing. A corrupt one is reported
//! in one line and rebuilt, never trusted. A step whose sources changed
//! since is shown as edited (its fingerprint no longer matches), so a stale
//! "done" cannot pass for a current one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::project::{self, STEPS};

/// Where the progress lives, from the workbook's root.
pub const FILE: &str = ".workbook-progress.toml";

const VERSION: u32 = 1;

/// What the last grading of a step found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum StepState {
    /// The program still stops at a `todo!()` in its real work.
    NotStarted,
    /// It does not compile.
    DoesNotCompile,
    /// Some cases fail.
    Failing { passed: usize, total: usize },
    /// Every case passes.
    Done { total: usize },
    /// It could not be graded (its build was too long, its cases are
    /// broken): the grader said why.
    NotGraded { why: String },
}

impl StepState {
    pub fn is_done(&self) -> bool {
        matches!(self, StepState::Done { .. })
    }

    /// For people, in a few words.
    pub fn describe(&self) -> String {
        match self {
            StepState::NotStarted => "not started".into(),
            StepState::DoesNotCompile => "does not compile".into(),
            StepState::Failing { passed, total } => {
                format!("failing: {passed} of {total} cases pass")
            }
            StepState::Done { total } => format!("done: all {total} cases pass"),
            StepState::NotGraded { why } => format!("not graded: {why}"),
        }
    }

    /// Stable, for `list --json`.
    pub fn key(&self) -> &'static str {
        match self {
            StepState::NotStarted => "not_started",
            StepState::DoesNotCompile => "does_not_compile",
            StepState::Failing { .. } => "failing",
            StepState::Done { .. } => "done",
            StepState::NotGraded { .. } => "not_graded",
        }
    }
}

/// One step's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    #[serde(flatten)]
    pub state: StepState,
    /// [`fingerprint`] of the sources that were graded.
    pub sources: String,
}

/// The whole file.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Progress {
    version: u32,
    #[serde(default)]
    pub steps: BTreeMap<String, StepRecord>,
}

/// A step as `list` shows it: its record, and whether its sources changed
/// since.
pub struct StepView {
    pub step: &'static str,
    pub record: Option<StepRecord>,
    pub edited_since: bool,
}

impl Progress {
    fn path(root: &Path) -> PathBuf {
        root.join(FILE)
    }

    /// The recorded progress; `Ok(None)` when there is none yet, `Err`
    /// (one line) when the file cannot be trusted.
    pub fn read(root: &Path) -> Result<Option<Progress>, String> {
        let path = Self::path(root);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let progress: Progress = toml::from_str(&text).map_err(|e| {
            let first = e.to_string().lines().next().unwrap_or("").to_string();
            format!("{} is corrupt ({first})", path.display())
        })?;
        if progress.version != VERSION {
            return Err(format!(
                "{} has version {}, this workbook writes {VERSION}",
                path.display(),
                progress.version
            ));
        }
        if let Some(unknown) = progress.steps.keys().find(|s| !STEPS.contains(&s.as_str())) {
            return Err(format!(
                "{} names a step that does not exist: {unknown}",
                path.display()
            ));
        }
        Ok(Some(progress))
    }

    /// The recorded progress, rebuilt by grading every step when there is
    /// none or it cannot be trusted (said on stderr).
    pub fn load_or_rebuild(root: &Path) -> Result<Progress, String> {
        match Self::read(root) {
            Ok(Some(progress)) => return Ok(progress),
            Ok(None) => eprintln!("no progress recorded yet: grading every step once"),
            Err(why) => eprintln!("{why}: grading every step again to rebuild it"),
        }
        let mut progress = Progress {
            version: VERSION,
            steps: BTreeMap::new(),
        };
        let graded = grade_steps(root, None)?;
        progress.record(root, graded.states)?;
        Ok(progress)
    }

    /// Records what a grading found and writes the file (atomically: a
    /// rename over the old one, so that a crash never leaves half a file).
    pub fn record(
        &mut self,
        root: &Path,
        states: Vec<(&'static str, StepState)>,
    ) -> Result<(), String> {
        let records = states
            .into_iter()
            .map(|(step, state)| {
                let sources = fingerprint(root, step);
                (step, StepRecord { state, sources })
            })
            .collect();
        self.record_as(root, records)
    }

    /// [`Progress::record`], each state with the fingerprint of the
    /// sources it was found for (a save may have come since).
    pub fn record_as(
        &mut self,
        root: &Path,
        records: Vec<(&'static str, StepRecord)>,
    ) -> Result<(), String> {
        self.version = VERSION;
        for (step, record) in records {
            self.steps.insert(step.to_string(), record);
        }
        let text = format!(
            "# The learner's progress, as the last gradings found it (cargo xtask list).\n\
             # A cache: delete it and it is rebuilt by grading. Not for git.\n{}",
            toml::to_string(self).map_err(|e| e.to_string())?
        );
        let path = Self::path(root);
        let partial = root.join(format!("{FILE}.partial"));
        std::fs::write(&partial, text).map_err(|e| format!("{}: {e}", partial.display()))?;
        std::fs::rename(&partial, &path).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Every step, in order, with its record.
    pub fn views(&self, root: &Path) -> Vec<StepView> {
        STEPS
            .iter()
            .map(|&step| {
                let record = self.steps.get(step).cloned();
                let edited_since = record
                    .as_ref()
                    .is_some_and(|r| r.sources != fingerprint(root, step));
                StepView {
                    step,
                    record,
                    edited_since,
                }
            })
            .collect()
    }

    /// The first step that is not done (or was edited since it was).
    pub fn next_step(&self, root: &Path) -> Option<&'static str> {
        self.views(root)
            .into_iter()
            .find(|v| v.edited_since || !v.record.as_ref().is_some_and(|r| r.state.is_done()))
            .map(|v| v.step)
    }

    /// Whether `step` is done with the sources it has now.
    pub fn is_done_now(&self, root: &Path, step: &str) -> bool {
        self.steps
            .get(step)
            .is_some_and(|r| r.state.is_done() && r.sources == fingerprint(root, step))
    }
}

/// A fingerprint of what grading a step reads of the learner's tree: its
/// manifest and every file under its `src/`, paths and bytes (SHA-1), but
/// an editor's own files (swap, backup and lock files), which change as
/// one types, not as one saves.
pub fn fingerprint(root: &Path, step: &str) -> String {
    let dir = root.join("exercises").join(step);
    let mut files = vec![dir.join("Cargo.toml")];
    files.extend(
        super::files_under(&dir.join("src"))
            .into_iter()
            .filter(|f| !is_editors_own(f)),
    );
    let mut sha = sha1_smol::Sha1::new();
    for file in files {
        let relative = file.strip_prefix(&dir).unwrap_or(&file);
        sha.update(relative.to_string_lossy().as_bytes());
        sha.update(b"\0");
        match std::fs::read(&file) {
            Ok(bytes) => {
                sha.update(&(bytes.len() as u64).to_le_bytes());
                sha.update(&bytes);
            }
            Err(_) => sha.update(b"missing"),
        }
    }
    sha.digest().to_string()
}

/// A file an editor keeps beside the one being edited: vim's `.x.swp`,
/// emacs's `#x#` and `.#x`, and the `x~` backups of many.
pub fn is_editors_own(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    name.starts_with('.')
        || name.ends_with('~')
        || (name.starts_with('#') && name.ends_with('#'))
        || [".swp", ".swo", ".swx"].iter().any(|s| name.ends_with(s))
}

/// What one run of the grader found, for the learner.
pub struct Graded {
    /// Each graded step's state.
    pub states: Vec<(&'static str, StepState)>,
    /// The grader's report for people, as it printed it.
    pub report: String,
}

/// Grades `step` (or every step) of this checkout in a grader process of
/// its own, as `cargo xtask grade` would: the states, and the report for
/// people.
pub fn grade_steps(root: &Path, step: Option<&str>) -> Result<Graded, String> {
    let (mut command, json) = grade_command(root, step, false)?;
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run the grader: {e}"))?;
    finish_grading(&json, &output)
}

/// Where a learner's grading writes its json report: a file of its own
/// (a `list` beside a `watch` must not read the other's).
fn json_report_path(root: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    root.join(format!(
        "target/xtask-learn/report-{}-{n}.json",
        std::process::id()
    ))
}

/// The grader's command line for the learner's loop, and where it writes
/// its json report (read and removed by [`finish_grading`]); the report for
/// people on stdout (coloured when `colour`), both streams piped.
pub fn grade_command(
    root: &Path,
    step: Option<&str>,
    colour: bool,
) -> Result<(Command, PathBuf), String> {
    let me = std::env::current_exe().map_err(|e| format!("cannot find the grader: {e}"))?;
    let json = json_report_path(root);
    if let Some(dir) = json.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let _ = std::fs::remove_file(&json);
    let mut command = Command::new(me);
    command.arg("grade");
    command.args(step);
    command
        .args(["--format", "json", "--output"])
        .arg(&json)
        .current_dir(root)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if colour {
        command.env("CLICOLOR_FORCE", "1");
    } else {
        command.env("NO_COLOR", "1");
    }
    Ok((command, json))
}

/// Reads the json report a learner's grading wrote, beside what it
/// printed (`output`: stdout and stderr piped).
pub fn finish_grading(json_path: &Path, output: &std::process::Output) -> Result<Graded, String> {
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    let text = std::fs::read_to_string(json_path).map_err(|_| {
        // No report: the grader stopped before grading; its error is the
        // last line it wrote.
        let errors = String::from_utf8_lossy(&output.stderr);
        let last = errors
            .lines()
            .chain(report.lines())
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or("it stopped")
            .to_string();
        format!("the grader wrote no report: {last}")
    })?;
    let _ = std::fs::remove_file(json_path);
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not the grader's report: {e}", json_path.display()))?;
    let states = step_states(&json)?;
    Ok(Graded { states, report })
}

/// Each step's state, from the json report (schema version 2).
fn step_states(json: &serde_json::Value) -> Result<Vec<(&'static str, StepState)>, String> {
    let steps = json["steps"]
        .as_array()
        .ok_or("the grader's report has no steps")?;
    let mut states = Vec::new();
    for step in steps {
        let name = step["step"].as_str().unwrap_or("");
        let name = project::find_step(name)?;
        let cases = step["cases"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        let total = cases.len();
        let passed = cases.iter().filter(|c| c["status"] == "passed").count();
        let state = match step["status"].as_str().unwrap_or("") {
            "not_started" => StepState::NotStarted,
            "does_not_compile" => StepState::DoesNotCompile,
            "graded" if passed == total => StepState::Done { total },
            "graded" => StepState::Failing { passed, total },
            other => StepState::NotGraded {
                why: step["diagnosis"].as_str().unwrap_or(other).to_string(),
            },
        };
        states.push((name, state));
    }
    Ok(states)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("xtask-progress-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("exercises/ex1_fibonacci_child/src")).unwrap();
        std::fs::write(
            dir.join("exercises/ex1_fibonacci_child/src/main.rs"),
            "fn main() {}\n",
        )
        .unwrap();
        dir
    }

    #[test]
    fn a_record_reads_back_and_notices_edits() {
        let root = scratch("record");
        let mut progress = Progress::default();
        progress
            .record(
                &root,
                vec![("ex1_fibonacci_child", StepState::Done { total: 8 })],
            )
            .unwrap();
        let read = Progress::read(&root).unwrap().unwrap();
        assert!(read.is_done_now(&root, "ex1_fibonacci_child"));
        assert_eq!(read.next_step(&root), Some("ex2_signal_exchange"));
        // An editor's swap file is not a save.
        let swap = root.join("exercises/ex1_fibonacci_child/src/.main.rs.swp");
        std::fs::write(&swap, "typing").unwrap();
        assert!(read.is_done_now(&root, "ex1_fibonacci_child"));
        std::fs::remove_file(swap).unwrap();
        // A save changes the fingerprint: no longer done as it is now.
        std::fs::write(
            root.join("exercises/ex1_fibonacci_child/src/main.rs"),
            "fn main() { }\n",
        )
        .unwrap();
        assert!(!read.is_done_now(&root, "ex1_fibonacci_child"));
        assert_eq!(read.next_step(&root), Some("ex1_fibonacci_child"));
        assert!(read.views(&root)[0].edited_since);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_corrupt_file_is_reported_in_one_line() {
        let root = scratch("corrupt");
        for (text, said) in [
            (
                "version = 1\n[steps.ex1_fibonacci_child]\nstate = \"sideways\"\nsources = \"x\"\n",
                "is corrupt",
            ),
            ("\u{0}\u{1}garbage", "is corrupt"),
            ("version = 7\n", "has version 7"),
            (
                "version = 1\n[steps.ex9]\nstate = \"not_started\"\nsources = \"x\"\n",
                "does not exist: ex9",
            ),
        ] {
            std::fs::write(root.join(FILE), text).unwrap();
            let error = Progress::read(&root).unwrap_err();
            assert!(error.contains(said), "{error}");
            assert!(!error.contains('\n'), "{error}");
        }
        std::fs::remove_file(root.join(FILE)).unwrap();
        assert!(Progress::read(&root).unwrap().is_none());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn states_come_from_the_json_report() {
        let json: serde_json::Value = serde_json::json!({"steps": [
            {"step": "ex1_fibonacci_child", "status": "graded",
             "cases": [{"status": "passed"}, {"status": "failed"}]},
            {"step": "ex2_signal_exchange", "status": "graded", "cases": [{"status": "passed"}]},
            {"step": "ex3_pipe_reverser", "status": "not_started", "cases": [{"status": "not_started"}]},
            {"step": "ex4_named_pipe_chat", "status": "does_not_compile", "cases": []},
            {"step": "ex5_round_robin", "status": "build_too_long", "diagnosis": "stopped after 300 s", "cases": []},
        ]});
        let states = step_states(&json).unwrap();
        assert_eq!(
            states.iter().map(|(_, s)| s.clone()).collect::<Vec<_>>(),
            vec![
                StepState::Failing {
                    passed: 1,
                    total: 2
                },
                StepState::Done { total: 1 },
                StepState::NotStarted,
                StepState::DoesNotCompile,
                StepState::NotGraded {
                    why: "stopped after 300 s".into()
                },
            ]
        );
    }
}
