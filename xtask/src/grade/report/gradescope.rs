//! Gradescope's autograder `results.json` (`--format gradescope`).
//!
//! Top level: `score`, `max_score`, `execution_time` (whole seconds),
//! `output` (a summary per step), `tests`. One test per case:
//! - `name`: the step and the case's description (`hidden case NAME` for a
//!   hidden case);
//! - `number`: `step.case`, such as "2.3" (cases in file-name order);
//! - `score` and `max_score`: 0 unless the case passed;
//! - `status`: "passed" or "failed" (anything but a pass is "failed"; the
//!   output says which failure);
//! - `output`: how the case ended and why, with the expected/got lines;
//!   for a hidden case, its status only;
//! - `visibility`: the case's own `visibility`, else "visible", or
//!   "after_published" for a hidden case.

use std::fmt::Write;

use serde_json::{json, Value};

use crate::grade::outcome::{CaseOutcome, Outcome, Status, StepState};

pub fn render(outcome: &Outcome) -> Result<String, String> {
    let mut tests = Vec::new();
    for (index, step) in outcome.steps.iter().enumerate() {
        for (n, case) in step.cases.iter().enumerate() {
            tests.push(test(step.step, case, format!("{}.{}", index + 1, n + 1)));
        }
    }
    let report = json!({
        "score": outcome.earned(),
        "max_score": outcome.possible(),
        "execution_time": outcome.duration.as_secs_f64().ceil() as u64,
        "output": summary(outcome),
        "tests": tests,
    });
    let mut text = serde_json::to_string_pretty(&report)
        .map_err(|e| format!("cannot encode the report: {e}"))?;
    text.push('\n');
    Ok(text)
}

fn test(step: &str, case: &CaseOutcome, number: String) -> Value {
    let visibility = case.visibility.as_deref().unwrap_or(if case.hidden {
        "after_published"
    } else {
        "visible"
    });
    let mut output = String::new();
    if case.status != Status::Passed {
        let diagnosis = case.diagnosis();
        if !diagnosis
            .first()
            .is_some_and(|l| l.starts_with(case.status.label()))
        {
            let _ = writeln!(output, "{}", case.status.label());
        }
        if !case.hidden {
            for ending in case.endings() {
                let _ = writeln!(output, "{ending}");
            }
        }
        for line in diagnosis {
            let _ = writeln!(output, "{line}");
        }
    }
    json!({
        "name": format!("{step}: {}", case.label()),
        "number": number,
        "score": case.earned,
        "max_score": case.points,
        "status": if case.status == Status::Passed { "passed" } else { "failed" },
        "output": output,
        "visibility": visibility,
    })
}

/// One line per step, and why a step was not graded: what a student needs
/// first. Never a hidden case's details.
fn summary(outcome: &Outcome) -> String {
    let mut out = String::new();
    for note in &outcome.notes {
        let _ = writeln!(out, "note: {note}");
    }
    for step in &outcome.steps {
        let points = format!("{}/{} points", step.earned(), step.possible());
        match &step.state {
            StepState::Graded => {
                let _ = writeln!(
                    out,
                    "{}: {points}, {} of {} cases passed",
                    step.step,
                    step.passed(),
                    step.cases.len()
                );
            }
            state => {
                let what = state.key().replace('_', " ");
                let why = state.diagnosis().unwrap_or_default();
                let _ = writeln!(out, "{}: {what} ({points})\n  {why}", step.step);
            }
        }
    }
    let _ = writeln!(
        out,
        "total: {}/{} points",
        outcome.earned(),
        outcome.possible()
    );
    out
}
