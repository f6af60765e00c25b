//! `cargo xtask check`: the workbook's conventions, checked.
//!
//! - Each exercise mirrors its solution: the same source files, the same
//!   dependencies, binaries for binaries (`x` for `x_solution`).
//! - Each skeleton says what the finished program must do (a `//!` header)
//!   and marks every place to write with `// TODO:` and `todo!(…)`.
//! - Each lab sheet has the sections a student relies on.
//! - Each `unsafe { fork() }` in a solution carries a `// SAFETY:` comment.
//! - A skeleton file with nothing to write is the solution's, less its tests.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::project;

const SHEET_SECTIONS: [&str; 5] = [
    "## What you will learn",
    "## The task",
    "## Try it by hand",
    "## Hints",
    "## Pitfalls",
];

pub fn run() -> Result<(), String> {
    let problems = problems();
    if problems.is_empty() {
        println!("all {} steps follow the conventions", project::STEPS.len());
        return Ok(());
    }
    for problem in &problems {
        println!("{problem}");
    }
    Err(format!("{} problem(s)", problems.len()))
}

/// Every departure from the conventions, one line each.
pub fn problems() -> Vec<String> {
    let root = project::root();
    let mut problems = Vec::new();
    for step in project::STEPS {
        let exercise = root.join("exercises").join(step);
        let solution = root.join("solutions").join(step);
        check_mirror(step, &exercise, &solution, &mut problems);
        check_manifests(step, &exercise, &solution, &mut problems);
        check_skeleton(step, &exercise, &mut problems);
        check_sheet(step, &exercise, &mut problems);
        check_safety_comments(step, &solution, &mut problems);
        check_provided_files(step, &exercise, &solution, &mut problems);
    }
    problems
}

fn rust_files(src: &Path) -> BTreeSet<PathBuf> {
    let mut files = BTreeSet::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.insert(path.strip_prefix(src).unwrap_or(&path).to_path_buf());
            }
        }
    }
    files
}

fn check_mirror(step: &str, exercise: &Path, solution: &Path, problems: &mut Vec<String>) {
    let ours = rust_files(&exercise.join("src"));
    let theirs = rust_files(&solution.join("src"));
    for missing in theirs.difference(&ours) {
        problems.push(format!(
            "{step}: the skeleton lacks src/{}",
            missing.display()
        ));
    }
    for extra in ours.difference(&theirs) {
        problems.push(format!(
            "{step}: the skeleton has src/{}, the solution does not",
            extra.display()
        ));
    }
}

fn manifest(path: &Path) -> Option<toml::Table> {
    std::fs::read_to_string(path.join("Cargo.toml"))
        .ok()?
        .parse()
        .ok()
}

fn check_manifests(step: &str, exercise: &Path, solution: &Path, problems: &mut Vec<String>) {
    let (Some(ours), Some(theirs)) = (manifest(exercise), manifest(solution)) else {
        problems.push(format!("{step}: a Cargo.toml is missing or unreadable"));
        return;
    };
    let name = |t: &toml::Table| t.get("package")?.get("name")?.as_str().map(String::from);
    if name(&ours).as_deref() != Some(step) {
        problems.push(format!("{step}: the exercise package must be named {step}"));
    }
    if name(&theirs) != Some(format!("{step}_solution")) {
        problems.push(format!(
            "{step}: the solution package must be named {step}_solution"
        ));
    }
    if ours.get("dependencies") != theirs.get("dependencies") {
        problems.push(format!(
            "{step}: exercise and solution declare different dependencies"
        ));
    }
    let bins = |t: &toml::Table, suffix: &str| -> BTreeSet<String> {
        t.get("bin")
            .and_then(|b| b.as_array())
            .into_iter()
            .flatten()
            .filter_map(|b| b.get("name")?.as_str())
            .map(|n| n.strip_suffix(suffix).unwrap_or(n).to_string())
            .collect()
    };
    if bins(&ours, "") != bins(&theirs, "_solution") {
        problems.push(format!(
            "{step}: exercise and solution declare different binaries"
        ));
    }
}

fn check_skeleton(step: &str, exercise: &Path, problems: &mut Vec<String>) {
    let src = exercise.join("src");
    let mut todos = 0;
    for file in rust_files(&src) {
        let Ok(text) = std::fs::read_to_string(src.join(&file)) else {
            continue;
        };
        let has_todo_macro = text.contains("todo!(");
        if has_todo_macro && !text.contains("// TODO:") {
            problems.push(format!(
                "{step}: src/{} has todo!() but no `// TODO:` comment",
                file.display()
            ));
        }
        if file.file_name().is_some_and(|f| f == "main.rs") && !text.starts_with("//! Lab step") {
            problems.push(format!(
                "{step}: src/{} must open with a `//! Lab step` header",
                file.display()
            ));
        }
        todos += usize::from(has_todo_macro);
    }
    if todos == 0 {
        problems.push(format!(
            "{step}: the skeleton has nothing left to write (no todo!())"
        ));
    }
}

/// A skeleton file with nothing to write in it is given to students as is:
/// it must stay the solution's file, less the solution's unit tests.
fn check_provided_files(step: &str, exercise: &Path, solution: &Path, problems: &mut Vec<String>) {
    let without_tests = |text: &str| -> String {
        text.split("#[cfg(test)]")
            .next()
            .unwrap_or("")
            .trim_end()
            .to_string()
    };
    for file in rust_files(&exercise.join("src")) {
        let Ok(ours) = std::fs::read_to_string(exercise.join("src").join(&file)) else {
            continue;
        };
        if ours.contains("todo!(") {
            continue;
        }
        let Ok(theirs) = std::fs::read_to_string(solution.join("src").join(&file)) else {
            continue;
        };
        if without_tests(&ours) != without_tests(&theirs) {
            problems.push(format!(
                "{step}: src/{} has nothing to write but differs from the solution's",
                file.display()
            ));
        }
    }
}

fn check_sheet(step: &str, exercise: &Path, problems: &mut Vec<String>) {
    let Ok(sheet) = std::fs::read_to_string(exercise.join("README.md")) else {
        problems.push(format!("{step}: no lab sheet (README.md)"));
        return;
    };
    for section in SHEET_SECTIONS {
        if !sheet.contains(section) {
            problems.push(format!("{step}: the lab sheet lacks \"{section}\""));
        }
    }
    if !sheet.contains("```text") {
        problems.push(format!("{step}: the lab sheet has no sample transcript"));
    }
}

fn check_safety_comments(step: &str, solution: &Path, problems: &mut Vec<String>) {
    let src = solution.join("src");
    for file in rust_files(&src) {
        let Ok(text) = std::fs::read_to_string(src.join(&file)) else {
            continue;
        };
        let lines: Vec<&str> = text.lines().collect();
        for (n, line) in lines.iter().enumerate() {
            if line.contains("unsafe { fork() }") {
                let before = &lines[n.saturating_sub(8)..n];
                if !before
                    .iter()
                    .any(|l| l.trim_start().starts_with("// SAFETY:"))
                {
                    problems.push(format!(
                        "{step}: solution src/{}:{} forks without a `// SAFETY:` comment",
                        file.display(),
                        n + 1
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_workbook_follows_its_conventions() {
        let problems = super::problems();
        assert!(problems.is_empty(), "\n{}", problems.join("\n"));
    }
}
