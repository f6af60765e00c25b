//! Grading cases: data files in `tests/<step>/*.toml`, one case per file.
//!
//! ```toml
//! description = "fib(10): the child prints, the parent reaps and reports"
//! points = 2
//! timeout = "10s"            # default 10 s
//! files = { "s.toml" = "..." }  # written into the scratch directory first
//! hidden = false             # hidden cases count, but their details are not shown
//! loopback = false           # TCP on 127.0.0.1: needs a network namespace of its own
//! visibility = "after_published"  # Gradescope: when students see this case
//!                            # (visible, hidden, after_due_date, after_published);
//!                            # default "visible", or "after_published" if hidden
//!
//! [[process]]                # one or more; started in this order
//! name = "main"              # default "main" (the first) or "p2", "p3"...
//! args = ["10"]
//! env = { LANG = "C" }
//! stdin = "text\n"           # fed, then closed; without it the script drives stdin
//! start = "now"              # or "later": started by a `start` step
//! pid = "parent"             # the {pid:parent} binding must be this process's PID
//! exit = 0                   # or: signal = "SIGTERM"
//! stdout = ["parent {pid:parent}: forked child {pid:child}", "..."]
//! stdout_contains = ["..."]  # these must appear; the rest may be anything
//! stderr = ["..."]           # if given, stderr must be exactly these lines
//! order = [["child {any}", "parent {any} exited {any}"]]  # first before second
//! one_cpu = true             # run on one CPU: threads interleave only where they yield
//!
//! [[process.timing]]         # when a line arrived, from the process's start
//! line = "parent {int}: got SIGUSR1 {any}"
//! at = "300ms"
//! tolerance = "250ms"
//!
//! [[step]]                   # the script, run in order
//! wait_for = "child {int} (parent {int}): sleeping {any}"   # on `to`'s stdout
//! [[step]]
//! send = "hello"             # a line to `to`'s stdin
//! [[step]]
//! signal = "SIGTERM"         # to = "NAME" (the process), "group:NAME" (its
//! to = "main"                # process group, like Ctrl-C) or "pid:BINDING"
//! [[step]]
//! sleep = "100ms"
//! [[step]]
//! close_stdin = true
//! [[step]]
//! start = "bob"
//!
//! [[require]]               # what the trace must show (see `Requirement`)
//! what = "signal"
//! signal = "SIGUSR1"
//! from = "child"
//! to = "main"
//! ```
//!
//! In args and env, `{scratch}` is the case's private working directory and
//! `{probe}` the grader's own CPU-bound worker (a schedule's checks then need
//! not trust a worker the student wrote).
//!
//! Line patterns use labcheck's placeholders: `{pid:NAME}`, `{int}`,
//! `{float}`, `{any}`, `{re:REGEX}`. Stdout lines are grouped by their first
//! word (the role, such as `parent` or `child`): order is checked within a
//! role, since two processes print concurrently; `order` adds the orderings
//! that causality fixes across roles.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use labcheck::LinePattern;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub description: String,
    #[serde(default = "one")]
    pub points: u32,
    #[serde(default)]
    pub hidden: bool,
    /// When Gradescope shows the case to students; see [`VISIBILITIES`].
    #[serde(default)]
    pub visibility: Option<String>,
    #[serde(default = "default_timeout")]
    pub timeout: String,
    /// Files written into the scratch directory before the case starts
    /// (a schedule, say), by relative path. `{scratch}` in args and env
    /// stands for the scratch directory.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// Anything else left in the scratch directory afterwards fails.
    #[serde(default = "yes")]
    pub scratch_must_be_empty: bool,
    /// The programs use TCP on 127.0.0.1: that needs a network namespace of
    /// the case's own (its loopback alone). Where none can be made, TCP is
    /// refused, and the case says so rather than judge the program.
    #[serde(default)]
    pub loopback: bool,
    #[serde(default)]
    pub process: Vec<ProcessSpec>,
    #[serde(default)]
    pub step: Vec<Step>,
    /// What the programs must have *done*, checked against the trace.
    #[serde(default)]
    pub require: Vec<Requirement>,
    /// What the tracer changes on purpose, to test causality.
    #[serde(default)]
    pub perturb: Option<PerturbSpec>,
    /// Filled in when loading: where the case came from.
    #[serde(skip)]
    pub file: PathBuf,
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
}

fn default_timeout() -> String {
    "10s".to_string()
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessSpec {
    #[serde(default)]
    pub name: String,
    /// The binary to run: the step's main binary unless named (ex5's
    /// `print_time`, say).
    #[serde(default)]
    pub bin: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub stdin: Option<String>,
    #[serde(default = "start_now")]
    pub start: String,
    pub pid: Option<String>,
    pub exit: Option<i32>,
    pub signal: Option<String>,
    pub stdout: Option<Vec<String>>,
    #[serde(default)]
    pub stdout_contains: Vec<String>,
    pub stderr: Option<Vec<String>>,
    #[serde(default)]
    pub stderr_contains: Vec<String>,
    #[serde(default)]
    pub order: Vec<[String; 2]>,
    #[serde(default)]
    pub timing: Vec<Timing>,
    /// Run on one CPU (and everything it starts): its threads interleave
    /// only where one gives the CPU up (`sched_yield`, a blocking call),
    /// or at the end of a time slice.
    #[serde(default)]
    pub one_cpu: bool,
}

fn start_now() -> String {
    "now".to_string()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Timing {
    pub line: String,
    pub at: String,
    pub tolerance: String,
}

/// A fact the trace must show. `process` names the case's process the
/// requirement is about (default: the first). "The child" is the process
/// the transcript binds to `{pid:child}` when it does (it must be one the
/// process created), otherwise any process it created. Every event counted
/// is a system call that succeeded, attributed to its process.
///
/// | `what`              | the trace must show                                             |
/// |---------------------|-----------------------------------------------------------------|
/// | `fork`              | the process created a child                                     |
/// | `written_by_child`  | the stdout line matching `line` was written by the child itself, which never exec'd another program |
/// | `computed_by_child` | for each stdout line matching `line`, its text after `": "` was written by the child, then read by the process from a pipe, before the process printed it |
/// | `signal`            | `signal` went `from` (`main`, `child` or another bound name) `to` such a role: a kill-family call that succeeded and reached it; with `after_receiving`, the call began after the sender received that signal (its delivery, sigwaitinfo or signalfd); with `at` ± `tolerance`, that long after the sender was created; with `announced` (a line pattern), the sender's own write of the stdout line matching it had returned before the call began, in the kernel's order, whatever the transcript's |
/// | `child_killed`      | the child died of `signal`, sent by the process                 |
/// | `reaped`            | the process reaped every child it created: a wait that consumed its exit status |
/// | `reported_status`   | the stdout line matching `line` ends with the child's status (a number or a signal name) as the kernel gave it and the wait returned it |
/// | `pid_is_child`      | the PID bound to `binding` is a child's                        |
/// | `fifos`             | the process made a FIFO, opened it for reading, unlinked every FIFO it made; it and its children created no socket and wrote only to FIFOs (at most 4096 bytes a write), their own standard streams or pipes of their own, never another program's streams or a regular file; every write into a FIFO ended a line; each of `messages` (a whole line, as its sender writes it) went into a FIFO in one write |
/// | `one_at_a_time`     | never two of the process's programs (each child with its whole subtree, at any depth) running at once beyond `tolerance`; nothing left stopped, or killed while stopped. A single-threaded process stopped by a SIGSTOP ran until that kill returned (the kernel acts on a pending SIGSTOP before the process runs on), unless a SIGCONT was sent to it in between; otherwise until its stop was seen |
/// | `slices`            | every stretch a program (a child with its subtree: it runs while any of its processes does) ran while another waited got at most `slice` + `tolerance` (default half a slice) of CPU time in its busiest process, but for a share `outliers` of them (default 0.1); and the median stretch lasted at most that, in wall time |
/// | `pipes`             | one pipe carried data from the process to the child, another back; each of `down` travelled down, each of `up` came back |
/// | `cpu_at_most`       | the process and everything it created used at most `limit` of CPU time (no busy waiting) |
/// | `worker_lines`      | every stdout line matching `line` was written onto the process's stdout by the process whose PID is the line's first number: one of its programs (see `one_at_a_time`), exec'd as a file named in `exec` or as the process's own binary; and each such program wrote at least one |
/// | `idle`              | in every `idle` sleep of the script, the process and everything it created used at most `limit` (default 50ms) of CPU time a second and woke at most `wakeups` (default 10) times a second, as the kernel counts them (voluntary context switches), and started or ended no process or thread |
/// | `commands`          | each stdout line matching `line` announces a command: its `{pid:BINDING}` (default `command`) is a child the process made with `fork` (not `vfork`, as `posix_spawn` and `std::process::Command` do), and the text after that PID and `": "` its command line; the child's first exec became the program the first word names (found along the case's `PATH`), or, if it names none, the child exited 127 without exec; the process itself never exec'd; each stdout line matching one of `output` was written, as a whole line, by such a command (or a program it started) after its exec |
/// | `statuses`          | the stdout lines matching `line` say `child PID` (perhaps then a `)`) and how it changed (`exited with status N`, `was killed by SIG`, plus ` (core dumped)` when the kernel says so, `was stopped by SIG`, `was continued`); for each PID they are exactly the reports the process's waits returned for it, in their order, each printed after its wait |
/// | `pipeline`          | every stage the transcript binds (`{pid:stage1}`, `{pid:stage2}`...; `binding` gives another prefix) is a child of the process that exec'd; each two stages in a row were joined by a pipe the process made, which carried data (the first's program wrote into it, the next one's read from it); the process itself moved none of it |
/// | `group_signal`      | the process sent `signal` to a process group (a kill of a negative PID, as `killpg` makes it) that reached every stage still alive, `at` (± `tolerance`, never before `at`) after it was created; before `at` it sent neither that signal nor SIGKILL to a stage or group; no stage died of a signal before the process sent that signal to the group (a helper's kill or PR_SET_PDEATHSIG is not the deadline); every stage became its program in the one group, the first stage's, not the process's own |
/// | `threads`           | the process created no child process and started at least `count` threads; each stdout line matching `line` names, as `(thread TID)`, another of them, which read from a pipe what the process's main thread had just written into it (the last move through that pipe before the read), and used at most `limit` (default 50 ms) of CPU time: blocked, not spinning |
/// | `sockets`           | the process bound a socket, listened on it and accepted at least `count` connections (default 1); for each stdout line matching `line`, its text after the first `": "` was written, as a whole line, into a connection the process accepted and read from a socket it connected |
///
/// In every case, a refused system call (see `observe`) fails, and
/// every process created must have been reaped by its parent.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    pub what: String,
    pub process: Option<String>,
    pub line: Option<String>,
    pub signal: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub after_receiving: Option<String>,
    /// `signal`: the line the sender prints before it sends.
    pub announced: Option<String>,
    pub at: Option<String>,
    pub tolerance: Option<String>,
    pub binding: Option<String>,
    pub slice: Option<String>,
    pub outliers: Option<f64>,
    pub limit: Option<String>,
    /// `idle`: wake-ups a second at most.
    pub wakeups: Option<f64>,
    /// `worker_lines`: the file names a program may have exec'd.
    #[serde(default)]
    pub exec: Vec<String>,
    #[serde(default)]
    pub messages: Vec<String>,
    #[serde(default)]
    pub down: Vec<String>,
    #[serde(default)]
    pub up: Vec<String>,
    /// `threads`: how many threads the process must start at least.
    pub count: Option<u32>,
    /// `commands`: stdout lines a started command must have written.
    #[serde(default)]
    pub output: Vec<String>,
}

impl Requirement {
    /// `limit` in milliseconds, or `default` when it is not given.
    pub fn limit_ms(&self, default: f64) -> f64 {
        self.limit
            .as_deref()
            .and_then(|l| parse_duration(l).ok())
            .map_or(default, |d| d.as_secs_f64() * 1e3)
    }
}

/// Gradescope's test visibilities.
pub const VISIBILITIES: [&str; 4] = ["visible", "hidden", "after_due_date", "after_published"];

pub const REQUIREMENTS: [&str; 21] = [
    "fork",
    "written_by_child",
    "computed_by_child",
    "signal",
    "child_killed",
    "reaped",
    "reported_status",
    "pid_is_child",
    "fifos",
    "one_at_a_time",
    "slices",
    "pipes",
    "cpu_at_most",
    "idle",
    "worker_lines",
    "commands",
    "statuses",
    "pipeline",
    "group_signal",
    "threads",
    "sockets",
];

/// `[perturb]`: the tracer holds every system call that sends
/// `hold_signal` for `hold` before letting it run (the kill that answers it
/// must still come after it is received), and replaces, in what a started
/// program reads from a pipe, each `[from, to]` pair of `replace` (same
/// byte length; the program must print what it received).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PerturbSpec {
    pub hold_signal: Option<String>,
    pub hold: Option<String>,
    #[serde(default)]
    pub replace: Vec<[String; 2]>,
}

impl Case {
    /// The case's perturbations, as the tracer applies them.
    pub fn perturbation(&self) -> super::facts::Perturb {
        let Some(spec) = &self.perturb else {
            return Default::default();
        };
        let hold = spec
            .hold_signal
            .as_deref()
            .and_then(|s| signal_by_name(s).ok())
            .zip(spec.hold.as_deref().and_then(|d| parse_duration(d).ok()))
            .map(|(signal, pause)| (signal as i32, pause));
        super::facts::Perturb {
            hold,
            replace: spec
                .replace
                .iter()
                .map(|[from, to]| (from.as_bytes().to_vec(), to.as_bytes().to_vec()))
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub to: Option<String>,
    pub wait_for: Option<String>,
    pub send: Option<String>,
    pub signal: Option<String>,
    pub sleep: Option<String>,
    /// With `sleep`: the programs have nothing to do meanwhile, and the
    /// keeper measures what each process of the case used in it (see the
    /// `idle` requirement).
    #[serde(default)]
    pub idle: bool,
    #[serde(default)]
    pub close_stdin: bool,
    pub start: Option<String>,
}

impl Case {
    pub fn timeout(&self) -> Duration {
        parse_duration(&self.timeout).unwrap_or(Duration::from_secs(10))
    }

    /// Whether the case exercises the step's real work: it has a script,
    /// or expects output. Cases where the program must only refuse bad
    /// input do not: a skeleton's ready-made argument parsing may pass them.
    pub fn real_work(&self) -> bool {
        !self.step.is_empty()
            || self.process.iter().any(|p| {
                p.stdout.as_ref().is_some_and(|s| !s.is_empty()) || !p.stdout_contains.is_empty()
            })
    }

    pub fn name(&self) -> String {
        self.file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Fills in defaults and rejects mistakes an instructor could make, so
    /// that a broken case is reported as such, not as a failing student.
    fn validate(&mut self) -> Result<(), String> {
        parse_duration(&self.timeout).map_err(|e| format!("timeout: {e}"))?;
        if let Some(visibility) = &self.visibility {
            if !VISIBILITIES.contains(&visibility.as_str()) {
                return Err(format!(
                    "visibility {visibility:?}: use one of {}",
                    VISIBILITIES.join(", ")
                ));
            }
            if self.hidden && visibility == "visible" {
                return Err("a hidden case cannot be \"visible\"".into());
            }
        }
        if self.process.is_empty() {
            return Err("a case needs at least one [[process]]".into());
        }
        self.validate_processes()?;
        let names: Vec<String> = self.process.iter().map(|p| p.name.clone()).collect();
        self.validate_requirements(&names)?;
        self.validate_perturbation()?;
        self.validate_steps(&names)?;
        Ok(())
    }

    /// Each process: a name, one ending, a start, patterns that compile.
    fn validate_processes(&mut self) -> Result<(), String> {
        for (index, process) in self.process.iter_mut().enumerate() {
            if process.name.is_empty() {
                process.name = if index == 0 {
                    "main".into()
                } else {
                    format!("p{}", index + 1)
                };
            }
            if process.exit.is_some() && process.signal.is_some() {
                return Err(format!(
                    "process {}: give `exit` or `signal`, not both",
                    process.name
                ));
            }
            if let Some(signal) = &process.signal {
                signal_by_name(signal)?;
            }
            if !["now", "later"].contains(&process.start.as_str()) {
                return Err(format!(
                    "process {}: start must be \"now\" or \"later\"",
                    process.name
                ));
            }
            let patterns = process
                .stdout
                .iter()
                .flatten()
                .chain(&process.stdout_contains)
                .chain(process.stderr.iter().flatten())
                .chain(&process.stderr_contains)
                .chain(process.order.iter().flatten())
                .chain(process.timing.iter().map(|t| &t.line));
            for pattern in patterns {
                LinePattern::new(pattern)?;
            }
            for timing in &process.timing {
                parse_duration(&timing.at)?;
                parse_duration(&timing.tolerance)?;
            }
        }
        Ok(())
    }

    /// Each trace requirement: a known kind, about a process of the case,
    /// with the fields its kind needs.
    fn validate_requirements(&self, names: &[String]) -> Result<(), String> {
        for (n, requirement) in self.require.iter().enumerate() {
            let label = format!("require {} ({})", n + 1, requirement.what);
            if !REQUIREMENTS.contains(&requirement.what.as_str()) {
                return Err(format!(
                    "{label}: unknown; known: {}",
                    REQUIREMENTS.join(", ")
                ));
            }
            if let Some(process) = &requirement.process {
                if !names.contains(process) {
                    return Err(format!("{label}: no process is named {process:?}"));
                }
            }
            for line in requirement.line.iter().chain(&requirement.announced) {
                LinePattern::new(line)?;
            }
            if let Some(signal) = requirement
                .signal
                .iter()
                .chain(&requirement.after_receiving)
                .find(|s| *s != "any")
            {
                signal_by_name(signal)?;
            }
            if requirement
                .outliers
                .is_some_and(|s| !(0.0..1.0).contains(&s))
            {
                return Err(format!("{label}: `outliers` is a share, from 0 to below 1"));
            }
            for d in requirement
                .at
                .iter()
                .chain(&requirement.tolerance)
                .chain(&requirement.slice)
            {
                parse_duration(d)?;
            }
            let needs = |field: &Option<String>, name: &str| {
                field.is_none().then(|| format!("{label}: needs `{name}`"))
            };
            let missing = match requirement.what.as_str() {
                "written_by_child" | "computed_by_child" | "reported_status" | "worker_lines"
                | "commands" | "statuses" => needs(&requirement.line, "line"),
                "signal" => needs(&requirement.signal, "signal"),
                "group_signal" => needs(&requirement.signal, "signal")
                    .or_else(|| needs(&requirement.at, "at"))
                    .or_else(|| needs(&requirement.tolerance, "tolerance")),
                "pid_is_child" => needs(&requirement.binding, "binding"),
                "slices" => needs(&requirement.slice, "slice"),
                "cpu_at_most" => needs(&requirement.limit, "limit"),
                _ => None,
            };
            if let Some(missing) = missing {
                return Err(missing);
            }
        }
        Ok(())
    }

    /// What the tracer is to change on purpose.
    fn validate_perturbation(&self) -> Result<(), String> {
        if let Some(perturb) = &self.perturb {
            if perturb.hold_signal.is_some() != perturb.hold.is_some() {
                return Err("perturb: give `hold_signal` and `hold` together".into());
            }
            if let Some(signal) = &perturb.hold_signal {
                signal_by_name(signal)?;
            }
            if let Some(hold) = &perturb.hold {
                parse_duration(hold)?;
            }
            for [from, to] in &perturb.replace {
                if from.is_empty() || from.len() != to.len() {
                    return Err(format!(
                        "perturb: replace {from:?} by {to:?}: give two non-empty texts of the same byte length"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Each script step: one action, aimed at a process of the case.
    fn validate_steps(&self, names: &[String]) -> Result<(), String> {
        for (n, step) in self.step.iter().enumerate() {
            let actions = [
                step.wait_for.is_some(),
                step.send.is_some(),
                step.signal.is_some(),
                step.sleep.is_some(),
                step.close_stdin,
                step.start.is_some(),
            ];
            if actions.iter().filter(|a| **a).count() != 1 {
                return Err(format!("step {}: give exactly one action", n + 1));
            }
            if let Some(target) = &step.to {
                let name = target.strip_prefix("group:").unwrap_or(target);
                if !target.starts_with("pid:") && !names.iter().any(|n| n == name) {
                    return Err(format!("step {}: no process is named {name:?}", n + 1));
                }
            }
            if let Some(pattern) = &step.wait_for {
                LinePattern::new(pattern)?;
            }
            if let Some(signal) = &step.signal {
                signal_by_name(signal)?;
            }
            if let Some(sleep) = &step.sleep {
                parse_duration(sleep)?;
            }
            if step.idle && step.sleep.is_none() {
                return Err(format!("step {}: `idle` goes with `sleep`", n + 1));
            }
            if let Some(name) = &step.start {
                if !names.contains(name) {
                    return Err(format!("step {}: no process is named {name:?}", n + 1));
                }
            }
        }
        Ok(())
    }
}

/// Loads every case of a step, sorted by file name.
pub fn load_step(dir: &Path) -> Result<Vec<Case>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files.iter().map(|file| load(file)).collect()
}

pub fn load(file: &Path) -> Result<Case, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut case: Case = toml::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    case.file = file.to_path_buf();
    case.validate()
        .map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(case)
}

/// `20ms`, `1.5s`, `250us`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale = match unit {
        "s" => 1.0,
        "ms" => 1e-3,
        "us" => 1e-6,
        _ => return Err(format!("bad duration {text:?}: use s, ms or us")),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("bad duration {text:?}"))?;
    Ok(Duration::from_secs_f64(value * scale))
}

/// A signal's full name: `TERM` and `SIGTERM` both give `SIGTERM`.
pub fn full_signal_name(name: &str) -> String {
    if name.starts_with("SIG") {
        name.to_string()
    } else {
        format!("SIG{name}")
    }
}

pub fn signal_by_name(name: &str) -> Result<nix::sys::signal::Signal, String> {
    full_signal_name(name)
        .parse()
        .map_err(|_| format!("unknown signal {name:?}"))
}
