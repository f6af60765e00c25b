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
            "build", "case", "class", "judge", "outcome", "report", "keeper", "jail", "source",
            "observe",
        ],
    ),
    // The judge reads facts and cases: it never runs, traces or jails.
    (
        "judge",
        &[
            "build", "class", "outcome", "report", "keeper", "jail", "source", "observe",
        ],
    ),
    // The jail knows nothing of verdicts or of how they are reported.
    (
        "jail",
        &["judge", "outcome", "report", "class", "keeper", "source"],
    ),
    // The tracer observes; it does not judge or report.
    ("observe", &["judge", "outcome", "report", "class"]),
    // Reports read the outcome; they never run or judge anything again.
    ("report", &["build", "keeper", "jail", "source", "observe"]),
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
    assert_eq!(rooms_named("use super::observe::Launch;", 1), ["observe"]);
    assert_eq!(
        rooms_named("use super::super::{case, keeper::X};", 2),
        ["case", "keeper"]
    );
    assert_eq!(
        rooms_named("let _ = crate::grade::jail::probe();", 2),
        ["jail"]
    );
    // Inside its own room, or above the grader: not a room of the grader.
    assert!(rooms_named("use super::problem::Judged;", 2).is_empty());
    assert!(rooms_named("use super::super::project;", 1).is_empty());
}

/// The size limits every room of the grader is held to, so that a
/// newcomer can read any part of it in one sitting.
const MAX_FILE_LINES: usize = 800;
const MAX_IMPL_LINES: usize = 300;
const MAX_FN_LINES: usize = 120;

/// Items of a source file that open a brace block: `(kind, name, first
/// line, lines)`, found by indentation-blind brace counting (comments and
/// strings with braces are rare enough in this code to be ignored).
fn blocks(text: &str) -> Vec<(&'static str, String, usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let code = line.trim_start();
        let kind = if code.starts_with("impl") {
            "impl"
        } else if code.contains("fn ")
            && !code.starts_with("//")
            && (code.starts_with("fn ")
                || code.starts_with("pub")
                || code.starts_with("async")
                || code.starts_with("unsafe")
                || code.starts_with("const fn"))
        {
            "fn"
        } else {
            continue;
        };
        let name: String = code
            .split(if kind == "fn" { "fn " } else { "impl" })
            .nth(1)
            .unwrap_or("")
            .chars()
            .take_while(|c| *c != '(' && *c != '{')
            .collect();
        let mut depth = 0i64;
        let mut opened = false;
        for (j, later) in lines[i..].iter().enumerate() {
            for c in later.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            if opened && depth <= 0 {
                found.push((kind, name.trim().to_string(), i + 1, j + 1));
                break;
            }
            // A declaration without a body (`fn f();` in a trait).
            if !opened && later.trim_end().ends_with(';') {
                break;
            }
        }
    }
    found
}

/// Prints the shape of every room (`cargo test -p xtask --test layering
/// -- --nocapture`) and holds every file to the limits.
#[test]
fn every_room_keeps_the_size_limits() {
    let mut files = Vec::new();
    rust_files(&grade_dir(), &mut files);
    files.sort();
    let mut over = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let name = file
            .strip_prefix(grade_dir())
            .unwrap()
            .display()
            .to_string();
        let lines = text.lines().count();
        let mut shape = format!("{name}: {lines} lines");
        if lines > MAX_FILE_LINES {
            shape.push_str(" (over)");
            over.push(format!("{name}: {lines} lines (at most {MAX_FILE_LINES})"));
        }
        for (kind, item, at, length) in blocks(&text) {
            let limit = if kind == "impl" {
                MAX_IMPL_LINES
            } else {
                MAX_FN_LINES
            };
            if length > limit {
                shape.push_str(&format!("; {kind} {item} {length}"));
                over.push(format!(
                    "{name}:{at}: {kind} {item}: {length} lines (at most {limit})"
                ));
            }
        }
        println!("{shape}");
    }
    assert!(
        over.is_empty(),
        "over the grader's size limits:\n  {}",
        over.join("\n  ")
    );
}

#[test]
fn the_size_reader_finds_blocks() {
    let text =
        "impl A {\n    fn f(&self) {\n        if x { y }\n    }\n}\npub fn g() -> u8 {\n    1\n}\n";
    let found = blocks(text);
    assert_eq!(
        found,
        vec![
            ("impl", "A".to_string(), 1, 5),
            ("fn", "f".to_string(), 2, 3),
            ("fn", "g".to_string(), 6, 3)
        ]
    );
}
