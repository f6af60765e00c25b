//! `cargo xtask list`: every step with its state, the next one to do and
//! where its lab sheet is; `--json` for tools.

use serde::Serialize;

use super::progress::{Progress, StepView};
use crate::project;

/// `list --json`: stable, fields only ever added.
#[derive(Serialize)]
struct Listing {
    schema_version: u32,
    /// The first step not done, if any.
    next: Option<&'static str>,
    steps: Vec<ListedStep>,
}

#[derive(Serialize)]
struct ListedStep {
    step: &'static str,
    number: usize,
    /// not_started, does_not_compile, failing, done, not_graded, or
    /// unknown (never graded).
    state: &'static str,
    /// Cases passed and in all, when it was graded.
    passed: Option<usize>,
    total: Option<usize>,
    /// Its sources changed since it was graded: `state` is the old one.
    edited_since: bool,
    sheet: String,
    exercise: String,
}

pub fn run(json: bool, refresh: bool) -> Result<(), String> {
    let root = project::root();
    let mut progress = Progress::load_or_rebuild(&root)?;
    if refresh {
        for view in progress.views(&root) {
            if view.edited_since || view.record.is_none() {
                eprintln!(
                    "{}: edited since it was graded: grading it again",
                    view.step
                );
                let graded = super::progress::grade_steps(&root, Some(view.step))?;
                progress.record(&root, graded.states)?;
            }
        }
    }
    let views = progress.views(&root);
    let next = progress.next_step(&root);
    if json {
        let listing = Listing {
            schema_version: 1,
            next,
            steps: views.iter().enumerate().map(listed).collect(),
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&listing).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    print!("{}", render(&views, next));
    Ok(())
}

fn listed((index, view): (usize, &StepView)) -> ListedStep {
    use super::progress::StepState;
    let state = view.record.as_ref().map(|r| &r.state);
    let (passed, total) = match state {
        Some(StepState::Failing { passed, total }) => (Some(*passed), Some(*total)),
        Some(StepState::Done { total }) => (Some(*total), Some(*total)),
        _ => (None, None),
    };
    ListedStep {
        step: view.step,
        number: index + 1,
        state: state.map_or("unknown", |s| s.key()),
        passed,
        total,
        edited_since: view.edited_since,
        sheet: sheet(view.step),
        exercise: format!("exercises/{}/src/main.rs", view.step),
    }
}

/// A step's lab sheet, from the workbook's root.
pub fn sheet(step: &str) -> String {
    format!("exercises/{step}/README.md")
}

/// The table for people.
pub fn render(views: &[StepView], next: Option<&str>) -> String {
    let mut out = String::new();
    let width = views.iter().map(|v| v.step.len()).max().unwrap_or(0);
    for view in views {
        let marker = if Some(view.step) == next { ">" } else { " " };
        let state = view
            .record
            .as_ref()
            .map_or("not graded yet".to_string(), |r| r.state.describe());
        let edited = if view.edited_since {
            " (edited since: `cargo xtask watch` grades it again)"
        } else {
            ""
        };
        out.push_str(&format!(
            "{marker} {:<width$}  {state}{edited}\n",
            view.step
        ));
    }
    match next {
        Some(step) => out.push_str(&format!(
            "\nnext: {step}\n  read  {}\n  edit  exercises/{step}/src/main.rs\n  run   cargo xtask watch\n",
            sheet(step)
        )),
        None => out.push_str("\nevery step is done: well done.\n"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::progress::{StepRecord, StepState};
    use super::*;

    #[test]
    fn the_table_marks_the_next_step() {
        let record = |state| {
            Some(StepRecord {
                state,
                sources: String::new(),
            })
        };
        let views = vec![
            StepView {
                step: "ex1_fibonacci_child",
                record: record(StepState::Done { total: 8 }),
                edited_since: false,
            },
            StepView {
                step: "ex2_signal_exchange",
                record: record(StepState::Failing {
                    passed: 3,
                    total: 8,
                }),
                edited_since: true,
            },
            StepView {
                step: "ex3_pipe_reverser",
                record: None,
                edited_since: false,
            },
        ];
        let text = render(&views, Some("ex2_signal_exchange"));
        let expected = "  ex1_fibonacci_child  done: all 8 cases pass\n\
> ex2_signal_exchange  failing: 3 of 8 cases pass (edited since: `cargo xtask watch` grades it again)\n  \
ex3_pipe_reverser    not graded yet\n\
\nnext: ex2_signal_exchange\n  read  exercises/ex2_signal_exchange/README.md\n  \
edit  exercises/ex2_signal_exchange/src/main.rs\n  run   cargo xtask watch\n";
        assert_eq!(text, expected, "got:\n{text}");
    }
}
