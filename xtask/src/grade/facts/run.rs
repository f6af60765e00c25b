//! One case's run as its keeper reports it: the processes, their output,
//! the trace and the jail they ran in.

use serde::{Deserialize, Serialize};

use super::event::{Event, TraceCut};
use super::jail::JailFeatures;

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Line {
    pub at_ms: f64,
    pub text: String,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct ProcessRun {
    pub name: String,
    pub command: String,
    pub pid: i32,
    pub started: bool,
    pub started_ms: f64,
    pub exit_code: Option<i32>,
    pub signal: Option<String>,
    pub capped: bool,
    pub stdout: Vec<Line>,
    pub stderr: Vec<Line>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct CaseRun {
    pub elapsed_ms: f64,
    /// Why the grader killed the case, if it did.
    pub killed_because: Option<String>,
    /// A script step that could not be carried out.
    pub script_error: Option<String>,
    /// Processes still there after the case's own processes ended.
    pub leftovers: Vec<String>,
    /// Files left in the scratch directory.
    pub scratch_leftovers: Vec<String>,
    pub processes: Vec<ProcessRun>,
    /// The keeper's PID: the parent of the processes the case started (1,
    /// in the case's PID namespace, whose PIDs the whole report uses).
    pub grader_pid: i32,
    /// Why there is no trace, when there is none.
    pub untraced: Option<String>,
    /// Kernel-enforced limits the programs ran into.
    #[serde(default)]
    pub limits_hit: Vec<String>,
    /// The jail the programs ran in.
    #[serde(default)]
    pub isolation: JailFeatures,
    pub events: Vec<Event>,
    /// What the trace did not keep (it is bounded).
    #[serde(default)]
    pub trace_cut: TraceCut,
}
