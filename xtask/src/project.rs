//! Where things are in the workbook, and which steps exist.

use std::path::PathBuf;

/// The lab steps, in order. Tools and graders depend on these names.
pub const STEPS: [&str; 5] = [
    "ex1_fibonacci_child",
    "ex2_signal_exchange",
    "ex3_pipe_reverser",
    "ex4_named_pipe_chat",
    "ex5_round_robin",
];

/// The workspace root: the parent of this crate's manifest directory.
pub fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
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
        assert!(find_step("ex9").unwrap_err().contains("no step"));
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
