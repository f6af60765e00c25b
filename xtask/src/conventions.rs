//! The workbook's conventions, checked, in two groups.
//!
//! **Structure** ([`structure_problems`]): what a learner's progress can
//! never break, so the test suite checks it on every run.
//! - Each solution package is named `<step>_solution`.
//! - Each lab sheet has the sections a student relies on, and its
//!   "Output, exactly" block documents every line shape that the step's
//!   grading cases expect (see `Matcher::covers` for what "documents" means).
//! - Each `unsafe { fork() }` in a solution carries a `// SAFETY:` comment.
//!
//! **As shipped** ([`shipped_problems`]): what only holds while the
//! skeletons are untouched, so only `cargo xtask dev check` runs it.
//! - Each exercise mirrors its solution: the same source files, the same
//!   dependencies, binaries for binaries (`x` for `x_solution`).
//! - Each skeleton says what the finished program must do (a `//!` header)
//!   and marks every place to write with `// TODO:` and `todo!(…)`.
//! - A skeleton file with nothing to write is the solution's, less its tests.
//! - The skeletons are the ones recorded as released
//!   (`xtask/released-skeletons.txt`, see `grade::released`), which
//!   `cargo xtask dev check --bless` rewrites once every other check passes.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use labcheck::{Bindings, LinePattern};

use crate::project;

const SHEET_SECTIONS: [&str; 6] = [
    "## What you will learn",
    "## The task",
    OUTPUT_SECTION,
    "## Try it by hand",
    "## Hints",
    "## Pitfalls",
];

/// The lab sheet section whose fenced blocks list every output line shape.
const OUTPUT_SECTION: &str = "## Output, exactly";

/// `cargo xtask dev check` on this checkout; with `bless`, the record of the
/// released skeletons is rewritten first, if they pass every other check.
pub fn run(bless: bool) -> Result<(), String> {
    let root = project::root();
    if bless {
        let problems: Vec<String> = structure_problems(&root)
            .into_iter()
            .chain(skeleton_problems(&root))
            .collect();
        if let Some(first) = problems.first() {
            return Err(format!(
                "not blessing skeletons that break the conventions: {first}"
            ));
        }
        let files = crate::grade::source::released::bless(&root)?;
        println!(
            "recorded {files} skeleton files in {}",
            crate::grade::source::released::MANIFEST
        );
    }
    check(&root)
}

/// `cargo xtask dev check`: both groups of checks, on the workbook at `root`.
pub fn check(root: &Path) -> Result<(), String> {
    println!(
        "Checking the workbook as shipped: this needs the skeletons in exercises/ \
         untouched, so a step you have started or solved is reported below. \
         `cargo test` checks only what your progress cannot break."
    );
    let problems: Vec<String> = structure_problems(root)
        .into_iter()
        .chain(shipped_problems(root))
        .collect();
    if problems.is_empty() {
        println!("all {} steps follow the conventions", project::STEPS.len());
        return Ok(());
    }
    for problem in &problems {
        println!("{problem}");
    }
    Err(format!("{} problem(s)", problems.len()))
}

/// Departures from the conventions that no learner's progress can cause,
/// one line each: solutions, lab sheets, case files.
pub fn structure_problems(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for step in project::STEPS {
        let exercise = root.join("exercises").join(step);
        let solution = root.join("solutions").join(step);
        check_solution_manifest(step, &solution, &mut problems);
        check_sheet(step, &exercise, &mut problems);
        check_output_documented(step, root, &mut problems);
        check_safety_comments(step, &solution, &mut problems);
    }
    problems
}

/// Departures that only hold while the skeletons in `exercises/` are as
/// shipped: a learner who starts a step is expected to cause some.
pub fn shipped_problems(root: &Path) -> Vec<String> {
    let mut problems = skeleton_problems(root);
    problems.extend(crate::grade::source::released::manifest_problems(root));
    problems
}

/// [`shipped_problems`] but the record of the release.
fn skeleton_problems(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for step in project::STEPS {
        let exercise = root.join("exercises").join(step);
        let solution = root.join("solutions").join(step);
        check_mirror(step, &exercise, &solution, &mut problems);
        check_manifests(step, &exercise, &solution, &mut problems);
        check_skeleton(step, &exercise, &mut problems);
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

fn package_name(manifest: &toml::Table) -> Option<String> {
    manifest
        .get("package")?
        .get("name")?
        .as_str()
        .map(String::from)
}

fn check_solution_manifest(step: &str, solution: &Path, problems: &mut Vec<String>) {
    let Some(theirs) = manifest(solution) else {
        problems.push(format!(
            "{step}: solutions/{step}/Cargo.toml is missing or unreadable"
        ));
        return;
    };
    if package_name(&theirs) != Some(format!("{step}_solution")) {
        problems.push(format!(
            "{step}: the solution package must be named {step}_solution"
        ));
    }
}

fn check_manifests(step: &str, exercise: &Path, solution: &Path, problems: &mut Vec<String>) {
    let (Some(ours), Some(theirs)) = (manifest(exercise), manifest(solution)) else {
        problems.push(format!("{step}: a Cargo.toml is missing or unreadable"));
        return;
    };
    if package_name(&ours).as_deref() != Some(step) {
        problems.push(format!("{step}: the exercise package must be named {step}"));
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

/// The lines of the fenced blocks in the sheet's "Output, exactly"
/// section: one documented line shape each, with the grader's placeholders.
fn documented_lines(sheet: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut in_section = false;
    let mut in_block = false;
    for line in sheet.lines() {
        if line.starts_with("```") {
            in_block = !in_block && in_section;
            continue;
        }
        if in_block {
            if !line.trim().is_empty() {
                lines.push(line.to_string());
            }
        } else if line.starts_with("## ") {
            in_section = line.trim_end() == OUTPUT_SECTION;
        }
    }
    lines
}

/// Every output line a case in `tests/<step>/` expects, with where it is.
/// The TOML is walked by key, not through the grader's types, so that this
/// check keeps working whatever else a case file holds.
fn case_lines(cases: &Path) -> Result<Vec<(String, String)>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(cases)
        .map_err(|e| format!("cannot read {}: {e}", cases.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let mut found = Vec::new();
    for file in files {
        let shown = file.file_name().unwrap_or_default().to_string_lossy();
        let table: toml::Table = std::fs::read_to_string(&file)
            .map_err(|e| e.to_string())
            .and_then(|text| text.parse().map_err(|e: toml::de::Error| e.to_string()))
            .map_err(|e| format!("{shown}: {e}"))?;
        let mut add = |value: Option<&toml::Value>| {
            let strings = match value {
                Some(toml::Value::String(s)) => vec![s.as_str()],
                Some(toml::Value::Array(items)) => items
                    .iter()
                    .flat_map(|item| match item {
                        toml::Value::String(s) => vec![s.as_str()],
                        // `order` pairs
                        toml::Value::Array(pair) => {
                            pair.iter().filter_map(|v| v.as_str()).collect()
                        }
                        _ => Vec::new(),
                    })
                    .collect(),
                _ => Vec::new(),
            };
            for line in strings {
                found.push((shown.to_string(), line.to_string()));
            }
        };
        let tables = |key: &str| -> Vec<&toml::Table> {
            table
                .get(key)
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_table())
                .collect()
        };
        for process in tables("process") {
            for key in [
                "stdout",
                "stdout_contains",
                "stderr",
                "stderr_contains",
                "order",
            ] {
                add(process.get(key));
            }
            for timing in process
                .get("timing")
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_table())
            {
                add(timing.get("line"));
            }
        }
        for step in tables("step") {
            add(step.get("wait_for"));
        }
        for requirement in tables("require") {
            add(requirement.get("line"));
        }
    }
    Ok(found)
}

/// A student must never need the reference solution to learn the output
/// format: every line a case expects must be covered by a line of the lab
/// sheet's "Output, exactly" block.
fn check_output_documented(step: &str, root: &Path, problems: &mut Vec<String>) {
    let Ok(sheet) = std::fs::read_to_string(root.join("exercises").join(step).join("README.md"))
    else {
        return; // `check_sheet` reports it
    };
    let mut documented = Vec::new();
    for line in documented_lines(&sheet) {
        match Shape::parse(&line) {
            Ok(shape) => documented.push(shape),
            Err(e) => problems.push(format!("{step}: the lab sheet's output block: {e}")),
        }
    }
    let expected = match case_lines(&root.join("tests").join(step)) {
        Ok(lines) => lines,
        Err(e) => {
            problems.push(format!("{step}: {e}"));
            return;
        }
    };
    let mut matcher = Matcher::default();
    let mut reported = BTreeSet::new();
    for (file, line) in expected {
        let shape = match Shape::parse(&line) {
            Ok(shape) => shape,
            Err(e) => {
                problems.push(format!("{step}: tests/{step}/{file}: {e}"));
                continue;
            }
        };
        let covered = documented.iter().any(|d| matcher.covers(d, &shape));
        if !covered && reported.insert(line.clone()) {
            problems.push(format!(
                "{step}: tests/{step}/{file} expects {line:?}, which no line of the lab sheet's \"{OUTPUT_SECTION}\" block documents"
            ));
        }
    }
}

/// One piece of a line pattern: a literal character or a placeholder.
#[derive(Clone, Debug, PartialEq)]
enum Piece {
    Char(char),
    Int,
    Float,
    Pid,
    Any,
    Re(String),
}

/// A line pattern (labcheck's syntax) as a sequence of pieces.
struct Shape(Vec<Piece>);

impl Shape {
    fn parse(pattern: &str) -> Result<Self, String> {
        // labcheck is the authority on what a valid pattern is.
        LinePattern::new(pattern)?;
        let mut pieces = Vec::new();
        let mut rest = pattern;
        while let Some(c) = rest.chars().next() {
            if let Some(after) = rest.strip_prefix("{{") {
                pieces.push(Piece::Char('{'));
                rest = after;
            } else if let Some(after) = rest.strip_prefix("}}") {
                pieces.push(Piece::Char('}'));
                rest = after;
            } else if let Some(after) = rest.strip_prefix('{') {
                let end = after.find('}').unwrap_or(after.len());
                let inside = &after[..end];
                pieces.push(match inside {
                    "int" => Piece::Int,
                    "float" => Piece::Float,
                    "any" => Piece::Any,
                    _ if inside.starts_with("pid:") => Piece::Pid,
                    _ => Piece::Re(inside.strip_prefix("re:").unwrap_or(inside).to_string()),
                });
                rest = after.get(end + 1..).unwrap_or("");
            } else {
                pieces.push(Piece::Char(c));
                rest = &rest[c.len_utf8()..];
            }
        }
        Ok(Self(pieces))
    }
}

impl Piece {
    /// The placeholder alone as a labcheck pattern, to test text against.
    fn source(&self) -> String {
        match self {
            Piece::Char(_) | Piece::Any => "{any}".to_string(),
            Piece::Int => "{int}".to_string(),
            Piece::Float => "{float}".to_string(),
            Piece::Pid => "{pid:p}".to_string(),
            Piece::Re(re) => format!("{{re:{re}}}"),
        }
    }

    fn is_number(&self) -> bool {
        matches!(self, Piece::Int | Piece::Float | Piece::Pid)
    }
}

/// Decides whether a documented shape covers a case's line pattern; keeps
/// the compiled placeholders it has needed.
#[derive(Default)]
struct Matcher {
    compiled: HashMap<String, LinePattern>,
}

impl Matcher {
    /// Whether the placeholder `piece` accepts the literal `text`.
    fn accepts(&mut self, piece: &Piece, text: &str) -> bool {
        let source = piece.source();
        let pattern = self
            .compiled
            .entry(source.clone())
            .or_insert_with(|| LinePattern::new(&source).expect("a placeholder compiles"));
        pattern.matches(text, &mut Bindings::new())
    }

    /// `documented` covers `case` when the two can be lined up so that:
    /// - each literal character of the case stands at the same literal
    ///   character of the documented line, or inside a placeholder there
    ///   that accepts it (`{int}` for `42`, `{any}` for a phrase);
    /// - each placeholder of the case stands at the same kind of
    ///   placeholder (any of `{int}`, `{float}`, `{pid:…}` for a number;
    ///   the same `{re:…}`), at literal text it accepts (`{int}` at `0`),
    ///   or inside an `{any}`;
    /// - a case's `{any}` may stand for any part of the documented line.
    ///
    /// So the case demands no word that the sheet does not show, and every
    /// value it fixes has a place in the documented line.
    fn covers(&mut self, documented: &Shape, case: &Shape) -> bool {
        let (d, c) = (&documented.0, &case.0);
        // reached[i][j]: the first i case pieces line up with the first j
        // documented ones. Filled in order, as every move goes forward.
        let mut reached = vec![vec![false; d.len() + 1]; c.len() + 1];
        reached[0][0] = true;
        for i in 0..=c.len() {
            for j in 0..=d.len() {
                if !reached[i][j] {
                    continue;
                }
                let mut next = Vec::new();
                if c.get(i) == Some(&Piece::Any) {
                    next.push((i + 1, j));
                    if j < d.len() {
                        next.push((i, j + 1));
                    }
                }
                if d.get(j) == Some(&Piece::Any) {
                    next.push((i, j + 1));
                    if i < c.len() {
                        next.push((i + 1, j));
                    }
                }
                if let (Some(cp), Some(dp)) = (c.get(i), d.get(j)) {
                    match (cp, dp) {
                        (Piece::Any, _) | (_, Piece::Any) => {}
                        (Piece::Char(a), Piece::Char(b)) => {
                            if a == b {
                                next.push((i + 1, j + 1));
                            }
                        }
                        (Piece::Char(_), placeholder) => {
                            // Literal text of the case inside a documented placeholder.
                            let mut text = String::new();
                            for (k, piece) in c.iter().enumerate().skip(i) {
                                let Piece::Char(ch) = piece else { break };
                                text.push(*ch);
                                if self.accepts(placeholder, &text) {
                                    next.push((k + 1, j + 1));
                                }
                            }
                        }
                        (placeholder, Piece::Char(_)) => {
                            // A case placeholder at literal documented text.
                            let mut text = String::new();
                            for (k, piece) in d.iter().enumerate().skip(j) {
                                let Piece::Char(ch) = piece else { break };
                                text.push(*ch);
                                if self.accepts(placeholder, &text) {
                                    next.push((i + 1, k + 1));
                                }
                            }
                        }
                        (a, b) => {
                            // A case's regex of digits alone (`{re:[1-9][0-9]*}`,
                            // "at least 1") is a number the sheet may call `{int}`.
                            let digits = |p: &Piece| matches!(p, Piece::Re(re) if re.chars().all(|c| c.is_ascii_digit() || "[]-*+?{},".contains(c)));
                            if a == b
                                || (a.is_number() && b.is_number())
                                || (digits(a) && b.is_number())
                            {
                                next.push((i + 1, j + 1));
                            }
                        }
                    }
                }
                for (ni, nj) in next {
                    reached[ni][nj] = true;
                }
            }
        }
        reached[c.len()][d.len()]
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn covers(documented: &str, case: &str) -> bool {
        let (documented, case) = (Shape::parse(documented), Shape::parse(case));
        Matcher::default().covers(&documented.unwrap(), &case.unwrap())
    }

    #[test]
    fn the_workbook_keeps_the_conventions_a_learner_cannot_break() {
        let problems = structure_problems(&project::root());
        assert!(problems.is_empty(), "\n{}", problems.join("\n"));
    }

    #[test]
    fn a_case_line_is_covered_by_its_documented_shape() {
        let child = "child {pid:child} (parent {pid:parent}): {any}";
        assert!(covers(child, "child {int} (parent {int}): 0 1 1 2 3 5"));
        assert!(covers(child, "child {any}"));
        assert!(covers(
            "child {pid:child} (parent {pid:parent}): sleeping {float} s (try `ps ax` now)",
            "child {pid:child} (parent {pid:parent}): sleeping 30.0 s (try `ps ax` now)"
        ));
        assert!(covers(
            "parent {pid:parent}: child {pid:child} was killed by SIGKILL",
            "parent {pid:parent}: child {pid:child} was killed by {re:SIGINT|SIGKILL}"
        ));
        assert!(covers(
            "parent {pid:parent}: child {pid:child} exited with status 0",
            "parent {int}: child {int} exited with status {int}"
        ));
        assert!(covers("{{braces}} {int}", "{{braces}} 7"));
        assert!(covers("a {re:[ab]+} z", "a {re:[ab]+} z"));
        // "At least one" is still a number the sheet calls `{int}`.
        assert!(covers("{int} lost", "{re:[1-9][0-9]*} lost"));
    }

    #[test]
    fn undocumented_words_are_not_covered() {
        let plural = "child {pid:child} (parent {pid:parent}): reversed {int} phrases, got EOF";
        assert!(!covers(
            plural,
            "child {pid:child} (parent {pid:parent}): reversed 1 phrase, got EOF"
        ));
        // "announce the sleep" does not document the words of the line.
        assert!(!covers(
            "child {pid:child} (parent {pid:parent}): sleeping {float} s",
            "child {pid:child} (parent {pid:parent}): sleeping 0.2 s (try `ps ax` now)"
        ));
        assert!(!covers("left (/quit)", "left (end of input)"));
        assert!(!covers("status {int}", "status {float} s"));
        assert!(!covers("a {re:x+} z", "a {re:y+} z"));
        assert!(!covers("{int}", "abc"));
        assert!(!covers("{int} lost", "{re:[a-z]+} lost"));
    }

    #[test]
    fn sheets_list_their_shapes_in_the_output_section() {
        let sheet = "## The task\n```text\nnot this\n```\n## Output, exactly\nProse.\n```text\nparent {pid:p}: hi\n\n  indented {any}\n```\nmore prose\n```text\nthird\n```\n## Hints\n```text\nnor this\n```\n";
        assert_eq!(
            documented_lines(sheet),
            ["parent {pid:p}: hi", "  indented {any}", "third"]
        );
    }

    /// A learner who solved ex1 in `exercises/` breaks only the checks that
    /// need untouched skeletons, never those the test suite runs.
    #[test]
    fn solving_a_step_breaks_only_the_shipped_checks() {
        let copy = std::env::temp_dir().join(format!("xtask-conventions-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&copy);
        let root = project::root();
        for dir in ["exercises", "solutions", "tests"] {
            copy_tree(&root.join(dir), &copy.join(dir));
        }
        // The tree may hold a learner's progress already: only what solving
        // one more step changes is asserted, never that the copy is pristine.
        let step = "ex1_fibonacci_child";
        std::fs::copy(
            root.join("solutions").join(step).join("src/main.rs"),
            copy.join("exercises").join(step).join("src/main.rs"),
        )
        .unwrap();
        let structure = structure_problems(&copy);
        let shipped = shipped_problems(&copy);
        let _ = std::fs::remove_dir_all(&copy);
        assert!(structure.is_empty(), "\n{}", structure.join("\n"));
        assert!(
            shipped.iter().any(|p| p.starts_with(step)),
            "a solved skeleton should fail `cargo xtask dev check`: {shipped:?}"
        );
    }

    fn copy_tree(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap().flatten() {
            let path = entry.path();
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            if path.is_dir() {
                copy_tree(&path, &to.join(entry.file_name()));
            } else {
                std::fs::copy(&path, to.join(entry.file_name())).unwrap();
            }
        }
    }
}
