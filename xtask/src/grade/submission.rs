//! One student's submission (`cargo xtask grade --submission DIR`), as an
//! autograder receives it: placed over a fresh copy of the workbook's
//! `exercises/` in a checkout of its own in the grader's build area
//! (`target/xtask-grade/submission`, see `store`), which is then built in
//! the sandbox on the dependencies compiled once for the workbook. The
//! build can read nothing of the workbook but that checkout (the
//! instructor's cases included), and cargo reads none of the workbook's
//! cargo settings.
//!
//! A submission may contain the steps' sources only: regular files under
//! `<step>/src/`, optionally under a leading `exercises/`
//! (`ex1_fibonacci_child/src/main.rs`). Everything else is refused, with
//! the list of what is not allowed: a manifest or `build.rs` would change
//! what is built and how, a cargo configuration how cargo behaves, a
//! symbolic link could point at the grader's own files, and tests or
//! grader sources are the instructor's. macOS archive clutter
//! (`__MACOSX/`, `.DS_Store`) is skipped silently. A step the submission
//! leaves out keeps the skeleton, and grades as not started.
//!
//! A clone of the student's repository (a `Cargo.toml` and an `exercises/`
//! at its top) is accepted too: its step sources are taken as above, its
//! `.git/` and `target/` folders skipped, and the rest never used. What
//! would change the build if it were used must still be the workbook's
//! own, byte for byte, or the submission is refused: the top `Cargo.toml`,
//! `.cargo/`, `rust-toolchain*`, and every file under `exercises/` outside
//! the steps' `src/` (a changed manifest, a `build.rs`, a file the
//! workbook does not have). The instructor's `tests/`, `xtask/`,
//! `solutions/` and `support/` are the grader's own; the student's copies
//! are ignored.

use std::path::{Path, PathBuf};

use crate::project::STEPS;

/// Per file: a lab step's source is a few kilobytes.
const MAX_FILE_BYTES: u64 = 1 << 20;
const MAX_FILES: usize = 200;
/// How many refused paths a message lists.
const LISTED: usize = 10;

/// A file to place: where it is, and where it goes under `exercises/`.
pub struct Placement {
    pub from: PathBuf,
    pub to: PathBuf,
}

/// Checks a submission against the `workbook` it is a copy of; Err is the
/// reason it is refused, for the student.
pub fn check(dir: &Path, workbook: &Path) -> Result<Vec<Placement>, String> {
    if !dir.is_dir() {
        return Err(format!("{}: no such directory", dir.display()));
    }
    let clone = dir.join("Cargo.toml").is_file() && dir.join("exercises").is_dir();
    let mut placements = Vec::new();
    let mut refused = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        let entries =
            std::fs::read_dir(&folder).map_err(|e| format!("{}: {e}", folder.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let relative = path.strip_prefix(dir).unwrap_or(&path).to_path_buf();
            let shown = relative.display().to_string();
            let name = entry.file_name();
            if name == "__MACOSX" || name == ".DS_Store" {
                continue;
            }
            if clone && (name == ".git" || name == "target") {
                continue;
            }
            // A clone's copies of the grader's own folders are never used,
            // so never read either (the grader's fixtures hold links).
            let grader_own = ["tests", "xtask", "solutions", "support"];
            if clone && folder == dir && grader_own.iter().any(|g| name == *g) {
                continue;
            }
            // Never followed: a link could name any file of the grader's.
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                refused.push(format!("{shown} (unreadable)"));
                continue;
            };
            if meta.is_dir() {
                stack.push(path);
            } else if !meta.is_file() {
                refused.push(format!("{shown} (not a regular file)"));
            } else if meta.len() > MAX_FILE_BYTES {
                refused.push(format!("{shown} (larger than 1 MiB)"));
            } else if let Some(to) = destination(&relative, clone) {
                placements.push(Placement { from: path, to });
            } else if !clone {
                refused.push(shown);
            } else if let Some(why) = differs_from_workbook(&relative, &path, workbook) {
                refused.push(format!("{shown} ({why})"));
            }
        }
    }
    if placements.len() > MAX_FILES {
        refused.push(format!("{} files (at most {MAX_FILES})", placements.len()));
    }
    if refused.is_empty() {
        placements.sort_by(|a, b| a.to.cmp(&b.to));
        return Ok(placements);
    }
    refused.sort();
    let more = refused.len().saturating_sub(LISTED);
    refused.truncate(LISTED);
    let mut message = format!(
        "submission refused: it may contain only the steps' sources, such as \
         ex1_fibonacci_child/src/main.rs (optionally under exercises/){}; not allowed: {}",
        if clone {
            ", and the workbook's own files unchanged"
        } else {
            ""
        },
        refused.join(", ")
    );
    if more > 0 {
        message.push_str(&format!(" and {more} more"));
    }
    Err(message)
}

/// In a clone, a file outside the steps' sources that would change the
/// build if it were used: why, when it is not the workbook's own.
fn differs_from_workbook(relative: &Path, path: &Path, workbook: &Path) -> Option<&'static str> {
    let top = relative.components().next()?.as_os_str().to_string_lossy();
    let matters = relative == Path::new("Cargo.toml")
        || top == ".cargo"
        || top.starts_with("rust-toolchain")
        || top == "exercises";
    if !matters {
        return None;
    }
    let theirs = std::fs::read(path).ok();
    match std::fs::read(workbook.join(relative)) {
        Ok(ours) if Some(&ours) == theirs.as_ref() => None,
        Ok(_) => Some("changed"),
        Err(_) => Some("not in the workbook"),
    }
}

/// `[exercises/]<step>/src/<rest>` becomes `<step>/src/<rest>` (in a
/// clone, `exercises/` is required).
fn destination(relative: &Path, clone: bool) -> Option<PathBuf> {
    let relative = match relative.strip_prefix("exercises") {
        Ok(inside) => inside,
        Err(_) if clone => return None,
        Err(_) => relative,
    };
    let mut parts = relative.components();
    let step = parts.next()?.as_os_str().to_str()?;
    let src = parts.next()?.as_os_str();
    let rest = parts.as_path();
    let plain = rest
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    (STEPS.contains(&step) && src == "src" && plain && !rest.as_os_str().is_empty())
        .then(|| Path::new(step).join("src").join(rest))
}

/// Lays out the checkout a submission is graded in, `dir` (outside the
/// workbook): a workspace of the exercises alone (the workbook's manifest
/// with `exercises/*` as its only members, and its lock file), a fresh copy
/// of `exercises/`, and the submission over it.
pub fn checkout(workbook: &Path, dir: &Path, placements: &[Placement]) -> Result<(), String> {
    let dir = dir.to_path_buf();
    let io = |path: &Path, e: std::io::Error| format!("{}: {e}", path.display());
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let manifest = workbook.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).map_err(|e| io(&manifest, e))?;
    let mut table: toml::Table =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", manifest.display()))?;
    let workspace = table
        .get_mut("workspace")
        .and_then(|w| w.as_table_mut())
        .ok_or(format!("{}: no [workspace]", manifest.display()))?;
    workspace.insert(
        "members".into(),
        toml::Value::Array(vec!["exercises/*".into()]),
    );
    workspace.remove("default-members");
    let text = format!(
        "# Made by `cargo xtask grade --submission`: the exercises alone.\n{}",
        toml::to_string(&table).map_err(|e| e.to_string())?
    );
    std::fs::write(dir.join("Cargo.toml"), text).map_err(|e| io(&dir, e))?;
    let lock = workbook.join("Cargo.lock");
    if lock.is_file() {
        std::fs::copy(&lock, dir.join("Cargo.lock")).map_err(|e| io(&lock, e))?;
    }
    let exercises = dir.join("exercises");
    if exercises.exists() {
        std::fs::remove_dir_all(&exercises).map_err(|e| io(&exercises, e))?;
    }
    copy_sources(&workbook.join("exercises"), &exercises)?;
    place(placements, &exercises)?;
    Ok(())
}

/// Copies a tree's regular files, build output aside.
fn copy_sources(from: &Path, into: &Path) -> Result<(), String> {
    std::fs::create_dir_all(into).map_err(|e| format!("{}: {e}", into.display()))?;
    let entries = std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))?;
    for entry in entries.flatten() {
        let (path, name) = (entry.path(), entry.file_name());
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() && name != "target" {
            copy_sources(&path, &into.join(&name))?;
        } else if kind.is_file() {
            std::fs::copy(&path, into.join(&name))
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(())
}

/// Copies a checked submission over `exercises`; returns how many files.
fn place(placements: &[Placement], exercises: &Path) -> Result<usize, String> {
    for placement in placements {
        let to = exercises.join(&placement.to);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        // Copied, never linked: the grader's copy must not change with the
        // submission's folder.
        std::fs::copy(&placement.from, &to)
            .map_err(|e| format!("{} -> {}: {e}", placement.from.display(), to.display()))?;
    }
    Ok(placements.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_step_sources_are_placed() {
        let ok = |p: &str| destination(Path::new(p), false).map(|d| d.display().to_string());
        assert_eq!(
            ok("ex1_fibonacci_child/src/main.rs").as_deref(),
            Some("ex1_fibonacci_child/src/main.rs")
        );
        assert_eq!(
            ok("exercises/ex5_round_robin/src/bin/print_time.rs").as_deref(),
            Some("ex5_round_robin/src/bin/print_time.rs")
        );
        for refused in [
            "ex1_fibonacci_child/Cargo.toml",
            "ex1_fibonacci_child/build.rs",
            "ex1_fibonacci_child/src",
            "tests/ex1_fibonacci_child/fib_10.toml",
            ".cargo/config.toml",
            "ex9/src/main.rs",
            "Cargo.toml",
        ] {
            assert_eq!(ok(refused), None, "{refused}");
        }
        // In a clone, the sources are under exercises/ only.
        assert!(destination(Path::new("ex1_fibonacci_child/src/main.rs"), true).is_none());
        assert!(
            destination(Path::new("exercises/ex1_fibonacci_child/src/main.rs"), true).is_some()
        );
    }
}
