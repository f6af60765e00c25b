//! Where things are in the workbook, and which steps exist.
//!
//! The project root is found at run time, from the working directory, never
//! from a path baked in at compile time: one `xtask` binary may serve
//! several checkouts (a shared target directory, an instructor's copy), and
//! it must always work on the tree it is run in.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The lab steps, in order. Tools and graders depend on these names.
pub const STEPS: [&str; 9] = [
    "ex1_fibonacci_child",
    "ex2_signal_exchange",
    "ex3_pipe_reverser",
    "ex4_named_pipe_chat",
    "ex5_round_robin",
    "ex6_exit_statuses",
    "ex7_pipeline_deadline",
    "ex8_threads_lock",
    "ex9_socket_server",
];

/// The workbook's root: the nearest ancestor of the working directory that
/// looks like the workbook (a `Cargo.toml` beside `xtask/` and `tests/`).
/// Falls back to `cargo locate-project --workspace`, then to the working
/// directory itself.
pub fn root() -> PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        find_root(&cwd).or_else(locate_with_cargo).unwrap_or(cwd)
    })
    .clone()
}

/// The nearest ancestor of `start` (itself included) that is a workbook.
pub fn find_root(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|dir| is_workbook(dir))
        .map(Path::to_path_buf)
}

fn is_workbook(dir: &Path) -> bool {
    dir.join("Cargo.toml").is_file()
        && dir.join("xtask/Cargo.toml").is_file()
        && dir.join("exercises").is_dir()
}

fn locate_with_cargo() -> Option<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args(["locate-project", "--workspace", "--message-format", "plain"])
        .output()
        .ok()?;
    let manifest = String::from_utf8(output.stdout).ok()?;
    let dir = Path::new(manifest.trim()).parent()?.to_path_buf();
    is_workbook(&dir).then_some(dir)
}

/// Resolves a full step name or a unique prefix (`ex3`, `ex3_pipe`).
pub fn find_step(wanted: &str) -> Result<&'static str, String> {
    let matches: Vec<&str> = STEPS
        .iter()
        .copied()
        .filter(|s| s.starts_with(wanted))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(format!(
            "no step is called {wanted:?}; the steps are {}",
            STEPS.join(", ")
        )),
        many => Err(format!("{wanted:?} could be any of {}", many.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(find_step("ex3"), Ok("ex3_pipe_reverser"));
        assert_eq!(find_step("ex5_round_robin"), Ok("ex5_round_robin"));
        assert!(find_step("ex").unwrap_err().contains("could be any of"));
        assert!(find_step("ex10").unwrap_err().contains("no step"));
    }

    #[test]
    fn the_root_is_found_from_a_subdirectory() {
        let root = root();
        let deep = root.join("solutions/ex1_fibonacci_child/src");
        assert_eq!(find_root(&deep), Some(root.clone()));
        assert_eq!(find_root(Path::new("/")), None);
    }

    #[test]
    fn every_step_is_in_the_tree() {
        for step in STEPS {
            assert!(
                root()
                    .join("exercises")
                    .join(step)
                    .join("Cargo.toml")
                    .is_file(),
                "{step}"
            );
            assert!(
                root()
                    .join("solutions")
                    .join(step)
                    .join("Cargo.toml")
                    .is_file(),
                "{step}"
            );
        }
    }
}
