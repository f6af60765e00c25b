//! The judge: a case's expectations against what its run did, as the
//! keeper reported it. It reads facts only (the run, its trace): it never
//! runs, traces or jails anything, and imports neither the tracer nor the
//! jail.

mod problem;
mod requirements;

use problem::problem;
pub use problem::{problem_with, Detail, Judged, Problem};

use std::collections::BTreeSet;

use labcheck::pattern::match_in_order;
use labcheck::{Bindings, LinePattern};

use crate::grade::case::{full_signal_name, parse_duration, Case, ProcessSpec};
use crate::grade::facts::{CaseRun, Line, ProcessRun};

#[derive(Debug, Clone)]
pub struct Verdict {
    pub problems: Vec<Problem>,
    /// The `todo!()` message, when the program stopped at one.
    pub not_started: Option<String>,
    /// Each trace requirement as judged (none when there was no trace).
    pub judged: Vec<Judged>,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.problems.is_empty() && self.not_started.is_none()
    }
}

fn compile(patterns: &[String]) -> Vec<LinePattern> {
    // Patterns were checked when the case was loaded.
    patterns
        .iter()
        .filter_map(|p| LinePattern::new(p).ok())
        .collect()
}

/// The first word of a line: `parent`, `child`, `coordinator`... Lines of
/// different roles come from different processes, so only lines of the
/// same role have an order to check.
fn role(text: &str) -> &str {
    text.split(' ').next().unwrap_or("")
}

pub fn judge(case: &Case, run: &CaseRun) -> Verdict {
    let mut problems = Vec::new();
    let mut not_started = None;
    // Without the tracer nothing was perturbed, and a perturbed case's
    // expected output cannot be judged: like the trace's requirements, it
    // is only checked when there is a trace.
    if run.untraced.is_some() && case.perturb.is_some() {
        return Verdict {
            problems,
            not_started: run.processes.iter().find_map(todo_message),
            judged: Vec::new(),
        };
    }
    // TCP on 127.0.0.1 is the case's own only in a network namespace of
    // its own; without one, Landlock refuses TCP, and what the program did
    // says nothing about it.
    if case.loopback && !run.isolation.net_ns && run.isolation.landlock > 0 {
        problems.push(problem(
            "this case needs a network namespace of its own (TCP on its own 127.0.0.1), which this machine cannot make, so TCP is refused here: grade it where user namespaces are allowed (see the sandbox line)".to_string(),
        ));
        return Verdict {
            problems,
            not_started: run.processes.iter().find_map(todo_message),
            judged: Vec::new(),
        };
    }
    if let Some(why) = &run.killed_because {
        problems.push(problem(format!("stopped by the grader: {why}")));
    }
    if let Some(error) = &run.script_error {
        problems.push(problem(error.clone()));
    }
    let mut bindings = Bindings::new();
    for spec in &case.process {
        let Some(process) = run.processes.iter().find(|p| p.name == spec.name) else {
            continue;
        };
        if let Some(message) = todo_message(process) {
            not_started.get_or_insert(message);
            continue;
        }
        judge_process(
            spec,
            process,
            run.killed_because.is_some(),
            &mut bindings,
            &mut problems,
        );
    }
    let judged = requirements::check(case, run, &bindings);
    problems.extend(judged.iter().flat_map(|j| j.problems.iter().cloned()));
    // Limits the kernel enforced (the jail's), unless already the reason
    // the case was stopped.
    for hit in &run.limits_hit {
        if run.killed_because.as_deref() != Some(hit.as_str()) {
            problems.push(problem(format!("limit reached: {hit}")));
        }
    }
    for leftover in &run.leftovers {
        problems.push(problem(format!("left behind: {leftover}")));
    }
    if case.scratch_must_be_empty && !run.scratch_leftovers.is_empty() {
        problems.push(problem(format!(
            "left in the scratch directory: {}",
            run.scratch_leftovers.join(", ")
        )));
    }
    if not_started.is_some() {
        // A `todo!()` explains everything else that went wrong.
        problems.clear();
    }
    Verdict {
        problems,
        not_started,
        judged,
    }
}

fn todo_message(process: &ProcessRun) -> Option<String> {
    process.stderr.iter().find_map(|line| {
        let at = line.text.find("not yet implemented")?;
        Some(line.text[at..].to_string())
    })
}

fn judge_process(
    spec: &ProcessSpec,
    run: &ProcessRun,
    killed: bool,
    bindings: &mut Bindings,
    problems: &mut Vec<Problem>,
) {
    let name = &spec.name;
    if !run.started {
        problems.push(problem(format!("{name} never started")));
        return;
    }
    judge_ending(spec, run, killed, problems);
    let stdout: Vec<&str> = run.stdout.iter().map(|l| l.text.as_str()).collect();
    if let Some(expected) = &spec.stdout {
        check_by_role(
            name,
            "stdout",
            &stdout,
            &compile(expected),
            true,
            bindings,
            problems,
        );
    }
    if !spec.stdout_contains.is_empty() {
        check_by_role(
            name,
            "stdout",
            &stdout,
            &compile(&spec.stdout_contains),
            false,
            bindings,
            problems,
        );
    }
    let stderr: Vec<&str> = run.stderr.iter().map(|l| l.text.as_str()).collect();
    if let Some(expected) = &spec.stderr {
        check_sequence(
            name,
            "stderr",
            &stderr,
            &compile(expected),
            true,
            bindings,
            problems,
        );
    }
    if !spec.stderr_contains.is_empty() {
        check_sequence(
            name,
            "stderr",
            &stderr,
            &compile(&spec.stderr_contains),
            false,
            bindings,
            problems,
        );
    }
    if let Some(binding) = &spec.pid {
        match bindings.get(binding) {
            Some(&pid) if pid == run.pid => {}
            Some(&pid) => problems.push(problem(format!(
                "{name} printed {pid} as its PID ({{pid:{binding}}}), but its real PID is {}",
                run.pid
            ))),
            None => problems.push(problem(format!(
                "{name} never printed its PID ({{pid:{binding}}})"
            ))),
        }
    }
    for [first, second] in &spec.order {
        let at = |pattern: &str| {
            let pattern = LinePattern::new(pattern).ok()?;
            stdout
                .iter()
                .position(|line| pattern.matches(line, &mut bindings.clone()))
        };
        match (at(first), at(second)) {
            (Some(a), Some(b)) if a < b => {}
            (Some(_), Some(_)) => problems.push(problem(format!(
                "{name}: `{second}` came before `{first}`, which must come first"
            ))),
            _ => {} // a missing line is reported by the stdout checks
        }
    }
    judge_timing(spec, run, bindings, problems);
}

/// A panic, and the exit status or signal the case expects (unless the
/// grader killed the process).
fn judge_ending(spec: &ProcessSpec, run: &ProcessRun, killed: bool, problems: &mut Vec<Problem>) {
    let name = &spec.name;
    if let Some(line) = run.stderr.iter().find(|l| l.text.contains("panicked at")) {
        let message = run
            .stderr
            .iter()
            .skip_while(|l| !l.text.contains("panicked at"))
            .nth(1)
            .map_or(line.text.as_str(), |l| l.text.as_str());
        problems.push(problem(format!("{name} panicked: {message}")));
    }
    if !killed {
        let got = ending(run);
        let expected = match (&spec.exit, &spec.signal) {
            (Some(code), _) => Some(format!("exit status {code}")),
            (_, Some(signal)) => Some(format!("killed by {}", full_signal_name(signal))),
            _ => None,
        };
        if let Some(expected) = expected {
            if expected != got {
                let mut p = problem(format!("{name} ended wrongly"));
                p.details
                    .push(Detail::Plain(format!("expected: {expected}")));
                p.details.push(Detail::Mismatch(format!("got:      {got}")));
                problems.push(p);
            }
        }
    }
}

/// Each timed line came when the case says, from the process's start.
fn judge_timing(
    spec: &ProcessSpec,
    run: &ProcessRun,
    bindings: &Bindings,
    problems: &mut Vec<Problem>,
) {
    let name = &spec.name;
    for timing in &spec.timing {
        let (Ok(at), Ok(tolerance)) = (
            parse_duration(&timing.at),
            parse_duration(&timing.tolerance),
        ) else {
            continue;
        };
        let Ok(pattern) = LinePattern::new(&timing.line) else {
            continue;
        };
        let Some(line) = run
            .stdout
            .iter()
            .find(|l| pattern.matches(&l.text, &mut bindings.clone()))
        else {
            continue;
        };
        let seen = (line.at_ms - run.started_ms) / 1e3;
        let (want, slack) = (at.as_secs_f64(), tolerance.as_secs_f64());
        if (seen - want).abs() > slack {
            problems.push(problem(format!(
                "{name}: `{}` came {seen:.3} s after the start, not between {:.3} and {:.3} s",
                timing.line,
                (want - slack).max(0.0),
                want + slack
            )));
        }
    }
}

fn ending(run: &ProcessRun) -> String {
    match (&run.exit_code, &run.signal) {
        (Some(code), _) => format!("exit status {code}"),
        (_, Some(signal)) => format!("killed by {signal}"),
        _ => "unknown".to_string(),
    }
}

/// Lines grouped by role; each group matched in order against the
/// patterns of the same role.
fn check_by_role(
    name: &str,
    stream: &str,
    lines: &[&str],
    patterns: &[LinePattern],
    exact: bool,
    bindings: &mut Bindings,
    problems: &mut Vec<Problem>,
) {
    let mut roles: BTreeSet<&str> = patterns.iter().map(|p| role(p.source())).collect();
    if exact {
        roles.extend(lines.iter().map(|l| role(l)));
    }
    for r in roles {
        let mine: Vec<&str> = lines.iter().copied().filter(|l| role(l) == r).collect();
        let wanted: Vec<LinePattern> = patterns
            .iter()
            .filter(|p| role(p.source()) == r)
            .cloned()
            .collect();
        let label = if r.is_empty() {
            format!("{stream}, indented lines")
        } else {
            format!("{stream}, `{r}` lines")
        };
        check_sequence(name, &label, &mine, &wanted, exact, bindings, problems);
    }
}

/// Exact: one line per pattern, in order. Otherwise: the patterns appear
/// in order among the lines, with anything in between.
fn check_sequence(
    name: &str,
    label: &str,
    lines: &[&str],
    patterns: &[LinePattern],
    exact: bool,
    bindings: &mut Bindings,
    problems: &mut Vec<Problem>,
) {
    let failure = if exact {
        match_in_order(lines, patterns, bindings)
            .err()
            .map(|m| (m.index, m.index, m.reason))
    } else {
        let mut next = 0;
        let mut missing = None;
        for (index, pattern) in patterns.iter().enumerate() {
            match lines[next..]
                .iter()
                .position(|l| pattern.matches(l, bindings))
            {
                Some(found) => next += found + 1,
                None => {
                    missing = Some((index, next, "no such line (in this order)".to_string()));
                    break;
                }
            }
        }
        missing
    };
    let Some((pattern_index, line_index, reason)) = failure else {
        return;
    };
    let mut p = problem(format!(
        "{name}: {label}: {reason} at expected line {}",
        pattern_index + 1
    ));
    p.details.push(Detail::Plain("expected:".into()));
    for (i, pattern) in patterns.iter().enumerate() {
        let text = format!(
            "  {} {}",
            if i == pattern_index { ">" } else { " " },
            pattern.source()
        );
        p.details.push(if i == pattern_index {
            Detail::Mismatch(text)
        } else {
            Detail::Plain(text)
        });
    }
    p.details.push(Detail::Plain("got:".into()));
    if lines.is_empty() {
        p.details.push(Detail::Plain("    (nothing)".into()));
    }
    for (i, line) in lines.iter().enumerate().take(40) {
        let marked = exact && i == line_index;
        let text = format!("  {} {line}", if marked { ">" } else { " " });
        p.details.push(if marked {
            Detail::Mismatch(text)
        } else {
            Detail::Plain(text)
        });
    }
    if lines.len() > 40 {
        p.details.push(Detail::Plain(format!(
            "    ... {} more lines",
            lines.len() - 40
        )));
    }
    problems.push(p);
}

/// The last lines of output, for a case that was killed.
pub fn tail(lines: &[Line], count: usize) -> Vec<String> {
    let skip = lines.len().saturating_sub(count);
    lines[skip..].iter().map(|l| l.text.clone()).collect()
}
