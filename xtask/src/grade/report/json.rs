//! The workbook's own machine-readable report (`--format json`).
//!
//! Stable: fields are only ever added within a `schema_version`; renaming,
//! removing or changing the meaning of one makes a new version.
//!
//! Schema version 2 (version 1 gave a failed case's whole trace as
//! `observed.events`; 2 gives each requirement's deciding events instead):
//!
//! ```text
//! {
//!   "schema_version": 2,
//!   "score": 12,                  // points earned, every selected step
//!   "max_score": 40,              // every point of every selected case
//!   "full_marks": false,          // every case passed (the exit status is 0)
//!   "duration_s": 31.4,
//!   "isolation": {
//!     "summary": "sandbox: own uid, ...; traced (ptrace)",
//!     "traced": true,             // programs ran under the tracer
//!     "untraced_because": null,   // why not, when not
//!     "sandbox": {                // each case's jail, as found (null when
//!       "supported": true,        //   nothing ran): see grade/jail/
//!       "own_uid": true, "user_ns": false, "mount_ns": true,
//!       "net_ns": true, "scratch_tmpfs": true, "landlock": 6,
//!       "pids_cgroup": true, "memory_cgroup": true,
//!       "missing": []             // what a missing piece leaves open
//!     },
//!     "build": "build sandbox: ..."  // the jail a submission was built
//!   },                               //   in (null: not a submission)
//!   "notes": ["..."],
//!   "steps": [{
//!     "step": "ex1_fibonacci_child",
//!     "number": 1,
//!     "status": "graded",         // graded, missing, does_not_compile, build_too_long,
//!                                 // not_started, cases_broken, refused
//!     "diagnosis": null,          // why it was not graded (compiler error...)
//!     "score": 5, "max_score": 9,
//!     "cases": [{
//!       "case": "fib_10",         // the case file's stem
//!       "number": "1.3",          // step.case, cases in file-name order
//!       "description": "...",     // "hidden case NAME" for a hidden case
//!       "hidden": false,
//!       "score": 0, "max_score": 2,
//!       "status": "failed",       // passed, failed, timed_out, not_started,
//!                                 // does_not_compile, missing, refused,
//!                                 // case_error
//!       "duration_s": 0.21,       // null when it did not run
//!       "diagnosis": ["- main: stdout, `child` lines: ...", "    expected:", ...],
//!       "observed": {             // null when it did not run, or hidden
//!         "processes": [{"name": "main", "command": "ex1_fibonacci_child 10",
//!                        "pid": 4242, "exit_code": 0, "signal": null,
//!                        "stdout_lines": 3, "stderr_lines": 0}],
//!         "killed_because": null, "script_error": null,
//!         "leftovers": [], "scratch_leftovers": [],
//!         "untraced_because": null,
//!         "event_count": 57,      // events in the whole trace
//!         "requirements": [{      // what the trace had to show, as judged
//!           "what": "signal",     // the case's `[[require]]` kind, or a rule
//!                                 //   of every traced case: no_refused_calls,
//!                                 //   all_reaped, complete_trace (listed
//!                                 //   only when the trace is full)
//!           "process": "main",    // the case's process it is about
//!           "passed": false,
//!           "diagnosis": ["the kill came 0.200 s before main received SIGUSR1"],
//!           "events": [...],      // the events that decided it: see below
//!           "events_left_off": 0  // how many more it rested on
//!         }]
//!       }
//!     }]
//!   }]
//! }
//! ```
//!
//! A requirement's `events` are the ones that satisfied it or, when it
//! failed, the ones that show what happened instead (the kill that came too
//! early, the writes that carried the line); at most 16 (`MAX_DECIDING`),
//! in the trace's order, the most telling kept. Empty when there was
//! nothing to judge (no line to check) or nothing to show (no refused call).
//!
//! An event is what the tracer saw: `at_ms` (from the case's start;
//! `start_ms` too for a system call), `pid` (the process; `tid`, the thread,
//! when not its main one), `kind` (`spawn`, `exec`, `exit`, `reap`, `kill`,
//! `signal`, `stop`, `cont`, `pipe`, `read`, `write`, `open`, `mkfifo`,
//! `unlink`, `limit`, ...), and where they apply `other` (the other
//! process), `targets`, `signal`, `code`, `text` (at most 200 characters
//! here, cut with `…`), `cut` (the trace did not keep all the contents),
//! `target`, `fd`, `bytes`, `cpu_ms`.

use serde::Serialize;

use crate::grade::facts::{CaseRun, Event};
use crate::grade::judge::Judged;
use crate::grade::outcome::{CaseOutcome, Outcome};

pub const SCHEMA_VERSION: u32 = 2;

/// The longest event text the report shows, in characters.
pub const EVENT_TEXT_CHARS: usize = 200;

#[derive(Serialize)]
struct Report<'a> {
    schema_version: u32,
    score: u32,
    max_score: u32,
    full_marks: bool,
    duration_s: f64,
    isolation: IsolationView<'a>,
    notes: &'a [String],
    steps: Vec<Step<'a>>,
}

#[derive(Serialize)]
struct IsolationView<'a> {
    summary: String,
    traced: bool,
    untraced_because: Option<&'a str>,
    sandbox: Option<&'a crate::grade::facts::JailFeatures>,
    build: Option<&'a str>,
}

#[derive(Serialize)]
struct Step<'a> {
    step: &'a str,
    number: usize,
    status: &'a str,
    diagnosis: Option<&'a str>,
    score: u32,
    max_score: u32,
    cases: Vec<Case<'a>>,
}

#[derive(Serialize)]
struct Case<'a> {
    case: &'a str,
    number: String,
    description: String,
    hidden: bool,
    score: u32,
    max_score: u32,
    status: &'a str,
    duration_s: Option<f64>,
    diagnosis: Vec<String>,
    observed: Option<Observed<'a>>,
}

#[derive(Serialize)]
struct Observed<'a> {
    processes: Vec<Process<'a>>,
    killed_because: Option<&'a str>,
    script_error: Option<&'a str>,
    leftovers: &'a [String],
    scratch_leftovers: &'a [String],
    untraced_because: Option<&'a str>,
    event_count: usize,
    requirements: Vec<Requirement<'a>>,
}

#[derive(Serialize)]
struct Requirement<'a> {
    what: &'a str,
    process: &'a str,
    passed: bool,
    diagnosis: Vec<&'a str>,
    events: Vec<Event>,
    events_left_off: usize,
}

#[derive(Serialize)]
struct Process<'a> {
    name: &'a str,
    command: &'a str,
    pid: i32,
    exit_code: Option<i32>,
    signal: Option<&'a str>,
    stdout_lines: usize,
    stderr_lines: usize,
}

pub fn render(outcome: &Outcome) -> Result<String, String> {
    let report = Report {
        schema_version: SCHEMA_VERSION,
        score: outcome.earned(),
        max_score: outcome.possible(),
        full_marks: outcome.all_passed(),
        duration_s: round_ms(outcome.duration.as_secs_f64()),
        isolation: IsolationView {
            summary: outcome.isolation.summary(),
            traced: outcome.isolation.traced,
            untraced_because: outcome.isolation.untraced_because.as_deref(),
            sandbox: outcome.isolation.sandbox.as_ref(),
            build: outcome.isolation.build_jail.as_deref(),
        },
        notes: &outcome.notes,
        steps: outcome
            .steps
            .iter()
            .enumerate()
            .map(|(index, step)| Step {
                step: step.step,
                number: index + 1,
                status: step.state.key(),
                diagnosis: step.state.diagnosis(),
                score: step.earned(),
                max_score: step.possible(),
                cases: step
                    .cases
                    .iter()
                    .enumerate()
                    .map(|(n, case)| json_case(case, format!("{}.{}", index + 1, n + 1)))
                    .collect(),
            })
            .collect(),
    };
    let mut text = serde_json::to_string_pretty(&report)
        .map_err(|e| format!("cannot encode the report: {e}"))?;
    text.push('\n');
    Ok(text)
}

fn json_case(case: &CaseOutcome, number: String) -> Case<'_> {
    let observed = case.run.as_ref().filter(|_| !case.hidden).map(|run| {
        let judged = case.verdict.as_ref().map_or(&[][..], |v| &v.judged[..]);
        Observed {
            processes: run
                .processes
                .iter()
                .map(|p| Process {
                    name: &p.name,
                    command: &p.command,
                    pid: p.pid,
                    exit_code: p.exit_code,
                    signal: p.signal.as_deref(),
                    stdout_lines: p.stdout.len(),
                    stderr_lines: p.stderr.len(),
                })
                .collect(),
            killed_because: run.killed_because.as_deref(),
            script_error: run.script_error.as_deref(),
            leftovers: &run.leftovers,
            scratch_leftovers: &run.scratch_leftovers,
            untraced_because: run.untraced.as_deref(),
            event_count: run.events.len(),
            requirements: judged.iter().map(|j| requirement(j, run)).collect(),
        }
    });
    Case {
        case: &case.name,
        number,
        description: case.label(),
        hidden: case.hidden,
        score: case.earned,
        max_score: case.points,
        status: case.status.key(),
        duration_s: case.run.as_ref().map(|r| round_ms(r.elapsed_ms / 1e3)),
        diagnosis: case.diagnosis(),
        observed,
    }
}

fn requirement<'a>(judged: &'a Judged, run: &CaseRun) -> Requirement<'a> {
    Requirement {
        what: &judged.what,
        process: &judged.process,
        passed: judged.problems.is_empty(),
        diagnosis: judged
            .problems
            .iter()
            .map(|p| p.headline.as_str())
            .collect(),
        events: judged
            .events
            .iter()
            .filter_map(|&i| run.events.get(i))
            .map(shortened)
            .collect(),
        events_left_off: judged.left_off,
    }
}

/// The event, its text cut to [`EVENT_TEXT_CHARS`].
fn shortened(event: &Event) -> Event {
    let mut event = event.clone();
    if let Some(text) = &event.text {
        if text.chars().count() > EVENT_TEXT_CHARS {
            let cut: String = text.chars().take(EVENT_TEXT_CHARS - 1).collect();
            event.text = Some(cut + "…");
        }
    }
    event
}

/// Seconds to the millisecond: more digits would only be noise.
fn round_ms(seconds: f64) -> f64 {
    (seconds * 1e3).round() / 1e3
}
