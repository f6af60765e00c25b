//! The report for people (the default): a summary line per step, and for
//! each failed case its description, command, problems (expected/got,
//! first mismatch marked), how it ended and how long it took. Colours only
//! on a terminal. A learner's failing cases are told as `learner` tells
//! them.

use std::fmt::Write;
use std::io::IsTerminal;

use crate::grade::judge::{tail, Detail};
use crate::grade::outcome::{CaseOutcome, Outcome, Status, StepState};

pub struct Style {
    colour: bool,
    /// Written for a learner grading their own checkout (`learner`), not
    /// for an instructor reading a submission's every detail.
    learner: bool,
}

impl Style {
    /// Colours when stdout is a terminal and `NO_COLOR` is not set, or
    /// when `CLICOLOR_FORCE` is set (`watch` pipes the report to show it).
    pub fn detect() -> Self {
        let set = |name| std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0");
        let colour = (std::io::stdout().is_terminal() || set("CLICOLOR_FORCE")) && !set("NO_COLOR");
        Self {
            colour,
            learner: false,
        }
    }

    pub fn plain() -> Self {
        Self {
            colour: false,
            learner: false,
        }
    }

    /// The same style, for a learner (see `learner`) or not.
    pub fn for_learner(self, learner: bool) -> Self {
        Self { learner, ..self }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn good(&self, text: &str) -> String {
        self.paint("32", text)
    }

    pub fn bad(&self, text: &str) -> String {
        self.paint("31", text)
    }

    pub fn strong(&self, text: &str) -> String {
        self.paint("1", text)
    }
}

// Writing to a String cannot fail: the `let _ =` below drop an `Ok(())`.

/// `text` with every control character but newline and tab escaped
/// (`\u{1b}`): what a program printed must never drive the terminal of
/// whoever reads the report.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' | '\t' => c.to_string(),
            c if c.is_control() => c.escape_default().to_string(),
            c => c.to_string(),
        })
        .collect()
}

pub fn render(outcome: &Outcome, style: &Style, verbose: bool) -> String {
    let mut out = String::new();
    if let Some(sandbox) = &outcome.isolation.sandbox {
        let _ = writeln!(out, "{}", sandbox.line());
    }
    if let Some(jail) = &outcome.isolation.build_jail {
        let _ = writeln!(out, "{jail}");
    }
    for note in &outcome.notes {
        let _ = writeln!(out, "{} {note}", style.bad("note:"));
    }
    if !outcome.notes.is_empty() {
        out.push('\n');
    }
    for result in &outcome.steps {
        let step = style.strong(result.step);
        let zero = format!("0/{} points", result.possible());
        let mut not_graded = |what: &str, why: &str| {
            let _ = writeln!(out, "{step}: {} ({zero})", style.bad(what));
            let _ = writeln!(out, "  {}", printable(why));
        };
        match &result.state {
            StepState::Missing(why) => not_graded("missing", why),
            StepState::DoesNotCompile(error) => {
                // Its first line, then the compiler's whole diagnostic.
                let mut lines = error.lines();
                let first = lines.next().unwrap_or("");
                let rest: Vec<&str> = lines.collect();
                if rest.is_empty() {
                    not_graded("does not compile", first);
                } else {
                    let _ = writeln!(out, "{step}: {} ({zero})", style.bad("does not compile"));
                    for line in rest {
                        let _ = writeln!(out, "    {}", printable(line));
                    }
                    let _ = writeln!(
                        out,
                        "  (the first error; `cargo build -p {step}` shows them all)"
                    );
                }
            }
            StepState::TooLong(why) => not_graded("not built", why),
            StepState::CasesBroken(error) => not_graded("the cases cannot be used", error),
            StepState::Refused(why) => not_graded("refused", why),
            StepState::NotStarted(todo) => {
                let _ = writeln!(
                    out,
                    "{step}: {} ({zero}, stopped at {})",
                    style.bad("not started"),
                    printable(todo)
                );
            }
            StepState::Graded => {
                let (got, points) = (result.earned(), result.possible());
                let (passed, count) = (result.passed(), result.cases.len());
                let summary = if passed == count {
                    style.good(&format!("{got}/{points} points, all {passed} cases passed"))
                } else {
                    style.bad(&format!(
                        "{got}/{points} points, {passed} of {count} cases passed"
                    ))
                };
                let _ = writeln!(out, "{step}: {summary}");
                if style.learner && passed < count {
                    super::learner::render_cases(&mut out, style, result, verbose);
                    continue;
                }
                for case in &result.cases {
                    render_case(&mut out, style, case, verbose);
                }
            }
        }
    }
    let _ = writeln!(
        out,
        "\n{} {}/{} points in {:.1} s",
        style.strong("total:"),
        outcome.earned(),
        outcome.possible(),
        outcome.duration.as_secs_f64()
    );
    // A step whose cases cannot be read has points nobody can count: say
    // so, rather than let the total pass for a complete one.
    let unusable: Vec<&str> = outcome
        .steps
        .iter()
        .filter(|s| {
            matches!(s.state, StepState::CasesBroken(_))
                || s.cases.iter().any(|c| c.status == Status::CaseError)
        })
        .map(|s| s.step)
        .collect();
    if !unusable.is_empty() {
        let _ = writeln!(
            out,
            "{} the total is incomplete: the cases of {} cannot be used",
            style.bad("note:"),
            unusable.join(", ")
        );
    }
    out
}

fn render_case(out: &mut String, style: &Style, case: &CaseOutcome, verbose: bool) {
    let seconds = case.seconds();
    let label = printable(&case.label());
    let Some(verdict) = &case.verdict else {
        return;
    };
    if verdict.passed() {
        if verbose {
            let _ = writeln!(out, "  {} {label} ({seconds:.2} s)", style.good("ok  "));
        }
        return;
    }
    if let Some(todo) = &verdict.not_started {
        let _ = writeln!(
            out,
            "  {} {label}: stopped at {}",
            style.bad("TODO"),
            printable(todo)
        );
        return;
    }
    let _ = writeln!(out, "  {} {label} ({seconds:.2} s)", style.bad("FAIL"));
    if case.hidden {
        return; // the problems would reveal the case
    }
    let _ = writeln!(out, "       case: {}", case.file.display());
    for ending in case.endings() {
        let _ = writeln!(out, "       {}", printable(&ending));
    }
    for problem in &verdict.problems {
        let _ = writeln!(out, "       - {}", printable(&problem.headline));
        for detail in &problem.details {
            let _ = match detail {
                Detail::Plain(text) => writeln!(out, "           {}", printable(text)),
                Detail::Mismatch(text) => {
                    writeln!(out, "           {}", style.bad(&printable(text)))
                }
            };
        }
    }
    if let Some(run) = case.run.as_ref().filter(|r| r.killed_because.is_some()) {
        for process in &run.processes {
            let _ = writeln!(out, "       last output of {}:", printable(&process.name));
            for line in tail(&process.stdout, 10) {
                let _ = writeln!(out, "           | {}", printable(&line));
            }
            for line in tail(&process.stderr, 5) {
                let _ = writeln!(out, "           ! {}", printable(&line));
            }
        }
    }
}
