//! The learner's loop: where they are (`list`), working on a step
//! (`watch`), starting one over (`reset`) and, once it passes, the
//! reference (`solution`). `hint` is beside it, in `hint.rs`.
//!
//! This room grades only through the grader's own command line, in a
//! process of its own (see `progress::grade_command`): what a learner is
//! told is what `cargo xtask grade` says, and a grading that hangs or must
//! stop can be killed whole. It keeps one file of its own, the progress
//! cache (`progress::FILE`), and writes in `exercises/` only when `reset`
//! is asked to.

pub mod list;
pub mod progress;
pub mod reset;
pub mod solution;
pub mod watch;

use std::path::{Path, PathBuf};

/// Every file under `dir`, at any depth (symbolic links as files), sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, into: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => walk(&entry.path(), into),
                Ok(_) => into.push(entry.path()),
                Err(_) => {}
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, &mut files);
    files.sort();
    files
}
