//! What the grader asks: how much isolation it insists on, what one case's
//! keeper is to run, and what the tracer changes on purpose.

use std::path::PathBuf;
use std::time::Duration;

/// How much isolation `grade` insists on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SandboxMode {
    /// As much as the machine allows; what is missing is said.
    #[default]
    Auto,
    /// Every piece, or no grading at all.
    Require,
    /// None: only to measure what the sandbox costs (`cargo xtask bench`).
    Off,
}

impl SandboxMode {
    /// As given on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Require => "require",
            Self::Off => "off",
        }
    }
}

/// What the grader asks of a case's keeper: sent as TOML on the keeper's
/// stdin, never on its command line (`/proc/<pid>/cmdline` is readable by
/// every process, and would name a private case).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct CaseRequest {
    pub case: PathBuf,
    pub bins: PathBuf,
    pub probe: PathBuf,
    pub suffix: String,
    pub step: String,
    pub trace: bool,
    /// How much of the jail the keeper is to make.
    #[serde(default)]
    pub jail: JailRequest,
}

/// How much of the jail a keeper makes, as the grader decided: it travels
/// in the request, over the keeper's stdin, with nothing else able to set
/// it (an environment variable is inherited, and copied, by whatever runs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JailRequest {
    /// Every piece the machine allows.
    #[default]
    Whole,
    /// All but a PID namespace: the grader's probe found none can be had.
    NoPidNamespace,
    /// None (`--sandbox=off`, for measuring what the jail costs).
    Off,
}

impl CaseRequest {
    pub fn from_stdin() -> Result<Self, String> {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| format!("cannot read the case request: {e}"))?;
        toml::from_str(&text).map_err(|e| format!("cannot read the case request: {e}"))
    }
}

/// What the tracer changes on purpose, to test causality and data flow.
#[derive(Debug, Clone, Default)]
pub struct Perturb {
    /// Hold every system call that sends this signal for this long before
    /// letting it run.
    pub hold: Option<(i32, Duration)>,
    /// In what a started program (not its children) reads from a pipe,
    /// replace these bytes by those (same length).
    pub replace: Vec<(Vec<u8>, Vec<u8>)>,
}
