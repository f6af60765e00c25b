//! Building the binaries to grade. Compile time never counts against a
//! case's time limit: everything is built before the first case runs.

use std::path::Path;
use std::process::Command;

/// Builds the packages in `workspace`; for each, `Ok` or the compiler's
/// first error.
pub fn build(workspace: &Path, packages: &[String]) -> Vec<Result<(), String>> {
    // One cargo call for all is fastest; only if it fails is each package
    // built on its own, to say which one does not compile.
    if cargo_build(workspace, packages).is_ok() {
        return packages.iter().map(|_| Ok(())).collect();
    }
    packages
        .iter()
        .map(|p| cargo_build(workspace, std::slice::from_ref(p)))
        .collect()
}

fn cargo_build(workspace: &Path, packages: &[String]) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        // The binaries are looked for in the workspace's own target/.
        .env_remove("CARGO_TARGET_DIR")
        .args(["build", "--quiet", "--message-format", "short"]);
    for package in packages {
        command.args(["-p", package]);
    }
    let output = command
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(first_error(&stderr))
}

/// The compiler's first error line, without cargo's summary lines.
pub fn first_error(stderr: &str) -> String {
    stderr
        .lines()
        .find(|l| l.contains("error") && !l.starts_with("error: could not compile"))
        .unwrap_or("the build failed")
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn first_error_skips_the_summary() {
        let stderr = "warning: unused\nexercises/a/src/main.rs:3:5: error[E0425]: cannot find value `x`\nerror: could not compile `a`";
        assert_eq!(
            super::first_error(stderr),
            "exercises/a/src/main.rs:3:5: error[E0425]: cannot find value `x`"
        );
    }
}
