//! The report for a learner grading their own checkout (the default
//! outside `--submission`, `--submissions` and `--workspace`): what their
//! program did wrong first, in one sentence per failing case, then the
//! smallest expected/got that shows the first one, then which cases
//! passed. The instructor's report (`human`) gives every detail of every
//! case; this one gives them with `--verbose`.

use std::fmt::Write;

use super::human::{printable, Style};
use crate::grade::judge::{tail, Detail, Problem};
use crate::grade::outcome::{CaseOutcome, Status, StepOutcome};

/// Lines kept either side of a mismatch in an expected or got block.
const CONTEXT: usize = 1;

/// A graded step's cases, for its learner.
pub fn render_cases(out: &mut String, style: &Style, step: &StepOutcome, verbose: bool) {
    let short = &step.step[..3.min(step.step.len())];
    let failing: Vec<&CaseOutcome> = step
        .cases
        .iter()
        .filter(|c| c.status != Status::Passed)
        .collect();
    let passed: Vec<&str> = step
        .cases
        .iter()
        .filter(|c| c.status == Status::Passed)
        .map(|c| c.name.as_str())
        .collect();
    for case in &failing {
        let _ = writeln!(
            out,
            "  {} {}: {}",
            style.bad("FAIL"),
            printable(&case.name),
            printable(&sentence(case))
        );
    }
    if !passed.is_empty() {
        let _ = writeln!(out, "  {} {}", style.good("passed:"), passed.join(", "));
    }
    // The first failing case in detail (each of them with --verbose).
    let shown = if verbose { failing.len() } else { 1 };
    for case in failing.iter().filter(|c| !c.hidden).take(shown) {
        detail(out, style, case, short);
    }
    if !verbose && failing.len() > 1 {
        let _ = writeln!(
            out,
            "  (the other failing cases in detail: cargo xtask grade {short} --verbose)"
        );
    }
}

/// What the program did wrong in a case, in one sentence.
pub fn sentence(case: &CaseOutcome) -> String {
    if case.hidden {
        return format!("{} (a hidden case: no details)", case.status.label());
    }
    let Some(verdict) = &case.verdict else {
        return case
            .not_run_because
            .clone()
            .unwrap_or_else(|| case.status.label().to_string());
    };
    if let Some(todo) = &verdict.not_started {
        return format!("it stopped at {todo}");
    }
    let stopped = case.run.as_ref().and_then(|r| r.killed_because.clone());
    let first = verdict
        .problems
        .iter()
        .find(|p| !p.headline.starts_with("stopped by the grader"));
    let mut said = Vec::new();
    if let Some(why) = &stopped {
        said.push(format!("it never finished ({why})"));
    }
    if let Some(problem) = first {
        let mut what = problem.headline.clone();
        if let Some(wanted) = first_mismatch(problem) {
            let _ = write!(what, ": expected `{wanted}`");
        }
        said.push(what);
    }
    if said.is_empty() {
        return case.status.label().to_string();
    }
    said.join("; ")
}

/// The expected line a problem's details mark, without its marker.
fn first_mismatch(problem: &Problem) -> Option<String> {
    problem.details.iter().find_map(|d| match d {
        Detail::Mismatch(text) => Some(text.trim().trim_start_matches('>').trim().to_string()),
        Detail::Plain(_) => None,
    })
}

/// One failing case: its command, its first problem's smallest
/// expected/got, the rest of its problems as headlines, how to see it.
fn detail(out: &mut String, style: &Style, case: &CaseOutcome, short: &str) {
    let _ = writeln!(
        out,
        "\n  {} in detail ({}):",
        style.strong(&case.name),
        case.file
            .strip_prefix(crate::project::root())
            .unwrap_or(&case.file)
            .display()
    );
    for ending in case.endings() {
        let _ = writeln!(out, "    {}", printable(&ending));
    }
    let Some(verdict) = &case.verdict else {
        return;
    };
    // The problem the sentence names is shown whole (cut to its mismatch).
    let told = verdict
        .problems
        .iter()
        .position(|p| !p.headline.starts_with("stopped by the grader"));
    for (n, problem) in verdict.problems.iter().enumerate() {
        let _ = writeln!(out, "    - {}", printable(&problem.headline));
        if Some(n) == told || problem.details.len() <= 6 {
            for detail in smallest(&problem.details) {
                let _ = match detail {
                    Some(Detail::Plain(text)) => writeln!(out, "        {}", printable(text)),
                    Some(Detail::Mismatch(text)) => {
                        writeln!(out, "        {}", style.bad(&printable(text)))
                    }
                    None => writeln!(out, "          …"),
                };
            }
        }
    }
    if let Some(run) = case.run.as_ref().filter(|r| r.killed_because.is_some()) {
        for process in &run.processes {
            let _ = writeln!(out, "    last output of {}:", printable(&process.name));
            for line in tail(&process.stdout, 5) {
                let _ = writeln!(out, "        | {}", printable(&line));
            }
            for line in tail(&process.stderr, 3) {
                let _ = writeln!(out, "        ! {}", printable(&line));
            }
        }
    }
    let _ = writeln!(
        out,
        "    (PIDs are the sandbox's own, counted from 1: by hand you will see others)\n    \
         see what your processes did, beside the reference: cargo xtask trace {short} --case {} --compare",
        case.name
    );
}

/// A problem's details with each block (`expected:`, `got:`) cut to the
/// lines around its mismatch; `None` stands for lines left out.
fn smallest(details: &[Detail]) -> Vec<Option<&Detail>> {
    // Blocks start at a plain line ending in `:`.
    let mut blocks: Vec<Vec<&Detail>> = Vec::new();
    for detail in details {
        let header = matches!(detail, Detail::Plain(t) if t.trim_end().ends_with(':'));
        if header || blocks.is_empty() {
            blocks.push(Vec::new());
        }
        blocks.last_mut().unwrap().push(detail);
    }
    // Where the first block's mismatch is, for blocks that mark none.
    let mut at = None;
    let mut kept = Vec::new();
    for block in blocks {
        let (head, lines) = match block.first() {
            Some(Detail::Plain(t)) if t.trim_end().ends_with(':') => (Some(block[0]), &block[1..]),
            _ => (None, &block[..]),
        };
        kept.extend(head.map(Some));
        let marked = lines.iter().position(|d| matches!(d, Detail::Mismatch(_)));
        let centre = marked.or(at).unwrap_or(lines.len().saturating_sub(1));
        at = at.or(marked);
        let from = centre.saturating_sub(CONTEXT);
        let to = (centre + CONTEXT + 1).min(lines.len());
        if from > 0 {
            kept.push(None);
        }
        kept.extend(lines[from.min(to)..to].iter().map(|d| Some(*d)));
        if to < lines.len() {
            kept.push(None);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(text: &str) -> Detail {
        Detail::Plain(text.into())
    }

    #[test]
    fn blocks_are_cut_around_the_mismatch() {
        let details = vec![
            plain("expected:"),
            plain("    one"),
            plain("    two"),
            Detail::Mismatch("  > three".into()),
            plain("    four"),
            plain("    five"),
            plain("got:"),
            plain("    one"),
            plain("    two"),
            plain("    THREE"),
            plain("    four"),
            plain("    five"),
        ];
        let kept: Vec<String> = smallest(&details)
            .into_iter()
            .map(|d| match d {
                Some(Detail::Plain(t) | Detail::Mismatch(t)) => t.trim().to_string(),
                None => "…".into(),
            })
            .collect();
        assert_eq!(
            kept,
            [
                "expected:",
                "…",
                "two",
                "> three",
                "four",
                "…",
                "got:",
                "…",
                "two",
                "THREE",
                "four",
                "…"
            ]
        );
    }
}
