//! The grader's rooms and which may use which, read from the source's own
//! paths (`crate::grade::ROOM`, `super::ROOM`), so that a change that makes
//! the judge depend on the tracer fails here, with the line that did it.
//!
//! A room is a folder or a file directly under `xtask/src/grade/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Rooms, and the rooms of the grader each must never use.
const NEVER: &[(&str, &[&str])] = &[
    // The shared types stand on nothing else of the grader's.
    (
        "facts",
        &[
            "build",
            "case",
            "class",
            "judge",
            "outcome",
            "released",
            "report",
            "runner",
            "sandbox",
            "store",
            "submission",
            "supervisor",
        ],
    ),
    // The judge reads facts and cases: it never runs, traces or jails.
    (
        "judge",
        &[
            "build",
            "class",
            "outcome",
            "report",
            "runner",
            "sandbox",
            "store",
            "submission",
            "supervisor",
        ],
    ),
    // The jail knows nothing of verdicts or of how they are reported.
    (
        "sandbox",
        &["judge", "outcome", "report", "class", "runner"],
    ),
    // The tracer observes; it does not judge or report.
    ("supervisor", &["judge", "outcome", "report", "class"]),
    // Reports read the outcome; they never run or judge anything again.
    (
        "report",
        &[
            "build",
            "runner",
            "sandbox",
            "store",
            "submission",
            "supervisor",
        ],
    ),
];

fn grade_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/grade")
}

fn rust_files(dir: &Path, into: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("the grader's sources") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

/// The room a file under `grade/` belongs to, and how many `super::` reach
/// `grade` from it.
fn room_of(file: &Path) -> (String, usize) {
    let relative = file.strip_prefix(grade_dir()).expect("under grade/");
    let parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let room = parts[0].trim_end_matches(".rs").to_string();
    // grade/x.rs and grade/room/mod.rs are modules one below grade;
    // grade/room/file.rs is two below.
    let depth = parts.len() - usize::from(parts.last().is_some_and(|p| p == "mod.rs"));
    (room, depth)
}

/// The rooms a line names, by path.
fn rooms_named(line: &str, depth: usize) -> Vec<String> {
    let mut named = Vec::new();
    let mut prefixes = vec!["crate::grade::".to_string()];
    prefixes.push("super::".repeat(depth));
    for prefix in prefixes.iter().filter(|p| !p.is_empty()) {
        let mut from = 0;
        while let Some(found) = line[from..].find(prefix.as_str()) {
            let at = from + found;
            from = at + prefix.len();
            let (before, rest) = (&line[..at], &line[from..]);
            // More `super::` than reach `grade` go above it, out of the
            // grader (`super::super::project` from `grade/x.rs`).
            if before.ends_with("super::") || rest.starts_with("super::") {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                let group = group.split('}').next().unwrap_or("");
                for item in group.split(',') {
                    let name: String = item
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        named.push(name);
                    }
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    named.push(name);
                }
            }
        }
    }
    named
}

#[test]
fn rooms_depend_only_downwards() {
    let mut files = Vec::new();
    rust_files(&grade_dir(), &mut files);
    let rooms: Vec<String> = files.iter().map(|f| room_of(f).0).collect();
    let mut broken: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in &files {
        let (room, depth) = room_of(file);
        let Some((_, never)) = NEVER.iter().find(|(r, _)| *r == room) else {
            continue;
        };
        let text = std::fs::read_to_string(file).expect("a source file");
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for named in rooms_named(line, depth) {
                if named != room && never.contains(&named.as_str()) && rooms.contains(&named) {
                    broken.entry(room.clone()).or_default().push(format!(
                        "{}:{}: uses {named}: {}",
                        file.strip_prefix(grade_dir()).unwrap().display(),
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "rooms that use what they must not:\n{}",
        broken
            .values()
            .flatten()
            .map(|l| format!("  {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Every room the rules name exists, so that a rename cannot silently
/// turn a rule off.
#[test]
fn the_rules_name_rooms_that_exist() {
    let mut files = Vec::new();
    rust_files(&grade_dir(), &mut files);
    let rooms: Vec<String> = files.iter().map(|f| room_of(f).0).collect();
    for (room, never) in NEVER {
        for name in std::iter::once(room).chain(never.iter()) {
            assert!(
                rooms.iter().any(|r| r == name),
                "the layering rules name {name:?}, which is not a room of xtask/src/grade"
            );
        }
    }
}

/// The path reader itself, on the shapes of path the grader writes.
#[test]
fn every_shape_of_path_is_read() {
    // From grade/x.rs (one below grade) and grade/room/file.rs (two).
    assert_eq!(
        rooms_named("use super::supervisor::Launch;", 1),
        ["supervisor"]
    );
    assert_eq!(
        rooms_named("use super::super::{case, runner::X};", 2),
        ["case", "runner"]
    );
    assert_eq!(
        rooms_named("let _ = crate::grade::sandbox::probe();", 2),
        ["sandbox"]
    );
    // Inside its own room, or above the grader: not a room of the grader.
    assert!(rooms_named("use super::problem::Judged;", 2).is_empty());
    assert!(rooms_named("use super::super::project;", 1).is_empty());
}
