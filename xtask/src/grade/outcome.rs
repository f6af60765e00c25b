//! What a grading produced, as data: every step, every case, the points
//! each earned of what it was worth, and why. The reports (`report::*`)
//! only read this; none of them decides a grade.
//!
//! Every case of every selected step appears, whatever became of its step
//! (missing, not compiling, not started, refused): such a case scores 0 of
//! its points with its step's status, so that the totals count every point.

use std::path::PathBuf;
use std::time::Duration;

use super::case::Case;
use super::facts::CaseRun;
use super::judge::{Detail, Verdict};

/// A whole grading.
pub struct Outcome {
    pub steps: Vec<StepOutcome>,
    /// From the start of the build to the last case.
    pub duration: Duration,
    /// What the grader wants the reader to know (a target directory it did
    /// not use, tracing that was off).
    pub notes: Vec<String>,
    pub isolation: Isolation,
}

/// What kept the graded programs apart from the grader and each other.
pub struct Isolation {
    /// Whether the programs ran under the tracer (ptrace): without it, only
    /// their output is checked.
    pub traced: bool,
    /// Why they were not traced, when they were not.
    pub untraced_because: Option<String>,
    /// The jail each case ran in, as a keeper found it; None when nothing
    /// ran.
    pub sandbox: Option<super::facts::JailFeatures>,
    /// The jail a submission was built in, when it was one.
    pub build_jail: Option<String>,
}

impl Isolation {
    /// One line per piece: the run's jail, the build's, tracing.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        lines.extend(self.sandbox.as_ref().map(|s| s.line()));
        lines.extend(self.build_jail.clone());
        if let Some(why) = &self.untraced_because {
            lines.push(format!("not traced ({why}): output checks only"));
        }
        lines
    }

    pub fn summary(&self) -> String {
        let mut lines = self.lines();
        if self.traced {
            lines.push("traced (ptrace)".into());
        }
        lines.join("; ")
    }
}

pub struct StepOutcome {
    pub step: &'static str,
    pub state: StepState,
    pub cases: Vec<CaseOutcome>,
}

/// What happened to a step as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepState {
    /// Its cases ran (each has its own status).
    Graded,
    /// The graded tree has no such package.
    Missing(String),
    /// The compiler's first error.
    DoesNotCompile(String),
    /// Its build went past the build time limit, and was stopped.
    TooLong(String),
    /// The program stops at this `todo!()` in every case of real work.
    NotStarted(String),
    /// The instructor's cases for the step cannot be used.
    CasesBroken(String),
    /// The submission was refused before anything was built.
    Refused(String),
}

impl StepState {
    /// Stable, for the machine-readable formats.
    pub fn key(&self) -> &'static str {
        match self {
            Self::Graded => "graded",
            Self::Missing(_) => "missing",
            Self::DoesNotCompile(_) => "does_not_compile",
            Self::TooLong(_) => "build_too_long",
            Self::NotStarted(_) => "not_started",
            Self::CasesBroken(_) => "cases_broken",
            Self::Refused(_) => "refused",
        }
    }

    /// Why the step was not graded, if it was not.
    pub fn diagnosis(&self) -> Option<&str> {
        match self {
            Self::Graded => None,
            Self::Missing(why)
            | Self::DoesNotCompile(why)
            | Self::TooLong(why)
            | Self::NotStarted(why)
            | Self::CasesBroken(why)
            | Self::Refused(why) => Some(why),
        }
    }
}

/// One case's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Passed,
    Failed,
    /// Killed by the grader at its time limit.
    TimedOut,
    /// The program stopped at a `todo!()`.
    NotStarted,
    DoesNotCompile,
    Missing,
    Refused,
    /// The case file, or another of its step, cannot be used: the
    /// instructor's problem, not the student's.
    CaseError,
}

impl Status {
    /// Stable, for the machine-readable formats.
    pub fn key(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Failed => "failed",
            Self::TimedOut => "timed_out",
            Self::NotStarted => "not_started",
            Self::DoesNotCompile => "does_not_compile",
            Self::Missing => "missing",
            Self::Refused => "refused",
            Self::CaseError => "case_error",
        }
    }

    /// For people.
    pub fn label(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Failed => "failed",
            Self::TimedOut => "timed out",
            Self::NotStarted => "not started",
            Self::DoesNotCompile => "does not compile",
            Self::Missing => "missing",
            Self::Refused => "refused",
            Self::CaseError => "case cannot be used",
        }
    }
}

pub struct CaseOutcome {
    /// The case file's stem (`fib_10`).
    pub name: String,
    pub file: PathBuf,
    pub description: String,
    pub hidden: bool,
    /// Gradescope's visibility, when the case names one.
    pub visibility: Option<String>,
    pub points: u32,
    pub earned: u32,
    pub status: Status,
    /// What was observed, when the case ran.
    pub run: Option<CaseRun>,
    /// The judgement, when the case ran.
    pub verdict: Option<Verdict>,
    /// Why it did not run, when it did not (its step's diagnosis).
    pub not_run_because: Option<String>,
    /// The case exercises the step's real work (see [`Case::real_work`]).
    pub real_work: bool,
}

impl CaseOutcome {
    /// A case that ran.
    pub fn ran(case: Case, run: Option<CaseRun>, verdict: Verdict) -> Self {
        let status = if verdict.passed() {
            Status::Passed
        } else if run
            .as_ref()
            .and_then(|r| r.killed_because.as_deref())
            .is_some_and(|why| why.starts_with("timed out"))
        {
            Status::TimedOut
        } else if verdict.not_started.is_some() {
            Status::NotStarted
        } else {
            Status::Failed
        };
        let earned = if status == Status::Passed {
            case.points
        } else {
            0
        };
        Self {
            earned,
            status,
            run,
            verdict: Some(verdict),
            not_run_because: None,
            ..Self::from_case(case)
        }
    }

    /// A case that did not run, for `why`.
    pub fn not_run(case: Case, status: Status, why: &str) -> Self {
        Self {
            status,
            not_run_because: Some(why.to_string()),
            ..Self::from_case(case)
        }
    }

    /// A case file that cannot be used: it counts no points.
    pub fn unusable(file: PathBuf, why: String) -> Self {
        Self {
            name: file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            file,
            description: "a case that cannot be used".to_string(),
            hidden: false,
            visibility: None,
            points: 0,
            earned: 0,
            status: Status::CaseError,
            run: None,
            verdict: None,
            not_run_because: Some(why),
            real_work: false,
        }
    }

    fn from_case(case: Case) -> Self {
        Self {
            real_work: case.real_work(),
            name: case.name(),
            description: case.description.clone(),
            hidden: case.hidden,
            visibility: case.visibility.clone(),
            points: case.points,
            earned: 0,
            status: Status::CaseError,
            run: None,
            verdict: None,
            not_run_because: None,
            file: case.file,
        }
    }

    /// What a report may call the case: a hidden case's description would
    /// reveal it.
    pub fn label(&self) -> String {
        if self.hidden {
            format!("hidden case {}", self.name)
        } else {
            self.description.clone()
        }
    }

    pub fn seconds(&self) -> f64 {
        self.run.as_ref().map_or(0.0, |r| r.elapsed_ms / 1e3)
    }

    /// Why the case did not pass, as plain lines: the problems with their
    /// expected/got details, or why it did not run. Empty for a passed
    /// case. A hidden case gives its status only: the details would
    /// reveal it.
    pub fn diagnosis(&self) -> Vec<String> {
        if self.status == Status::Passed {
            return Vec::new();
        }
        if self.hidden {
            return vec![format!("{} (hidden case: no details)", self.status.label())];
        }
        let mut lines = Vec::new();
        if let Some(why) = &self.not_run_because {
            lines.push(format!("{}: {why}", self.status.label()));
        }
        if let Some(verdict) = &self.verdict {
            if let Some(todo) = &verdict.not_started {
                lines.push(format!("stopped at {todo}"));
            }
            for problem in &verdict.problems {
                lines.push(format!("- {}", problem.headline));
                for detail in &problem.details {
                    let (Detail::Plain(text) | Detail::Mismatch(text)) = detail;
                    lines.push(format!("    {text}"));
                }
            }
        }
        lines
    }

    /// How each process of the case ended, as `name: command -> ending`.
    pub fn endings(&self) -> Vec<String> {
        let Some(run) = &self.run else {
            return Vec::new();
        };
        run.processes
            .iter()
            .map(|process| {
                let ending = match (&process.exit_code, &process.signal) {
                    (Some(code), _) => format!("exit status {code}"),
                    (_, Some(signal)) => format!("killed by {signal}"),
                    _ => "did not run".to_string(),
                };
                format!("{}: {} -> {ending}", process.name, process.command)
            })
            .collect()
    }
}

impl Outcome {
    pub fn earned(&self) -> u32 {
        self.cases().map(|c| c.earned).sum()
    }

    pub fn possible(&self) -> u32 {
        self.cases().map(|c| c.points).sum()
    }

    /// Full marks: every case passed (a case worth 0 points included).
    pub fn all_passed(&self) -> bool {
        self.steps.iter().all(|s| s.state == StepState::Graded)
            && self.cases().all(|c| c.status == Status::Passed)
    }

    pub fn cases(&self) -> impl Iterator<Item = &CaseOutcome> {
        self.steps.iter().flat_map(|s| &s.cases)
    }
}

impl StepOutcome {
    pub fn earned(&self) -> u32 {
        self.cases.iter().map(|c| c.earned).sum()
    }

    pub fn possible(&self) -> u32 {
        self.cases.iter().map(|c| c.points).sum()
    }

    pub fn passed(&self) -> usize {
        self.cases
            .iter()
            .filter(|c| c.status == Status::Passed)
            .count()
    }
}
