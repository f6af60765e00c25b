//! Step 5 as a newcomer first runs it: `cargo run` in a fresh clone, where
//! only the coordinator gets built. It must find its own worker, and never
//! run another `print_time`, such as a student's built into the same target
//! directory or one in PATH.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use labcheck::{Bindings, LabCommand, ScratchDir};

/// A worker that must never run: it says so and fails.
fn plant_decoy(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let decoy = dir.join("print_time");
    std::fs::write(
        &decoy,
        "#!/bin/sh\necho \"worker 1: decoy print_time ran\"\nexit 101\n",
    )
    .unwrap();
    std::fs::set_permissions(&decoy, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The files git tracks, copied as they are in the work tree; `None` when
/// this is not a git checkout.
fn copy_tracked_tree(root: &Path, into: &Path) -> Option<usize> {
    let listed = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root)
        .output()
        .ok()
        .filter(|o| o.status.success() && !o.stdout.is_empty())?;
    let mut copied = 0;
    for name in listed.stdout.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let relative = PathBuf::from(String::from_utf8_lossy(name).into_owned());
        let from = root.join(&relative);
        if !from.is_file() {
            continue; // deleted in the work tree, not committed yet
        }
        let to = into.join(&relative);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&from, &to).unwrap();
        copied += 1;
    }
    Some(copied)
}

#[test]
fn cargo_run_in_a_fresh_clone_schedules_its_own_worker() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let scratch = ScratchDir::new("ex5-fresh-clone");
    let clone = scratch.path().join("workbook");
    let Some(copied) = copy_tracked_tree(&root, &clone) else {
        eprintln!("skipped: {} is not a git checkout", root.display());
        return;
    };
    assert!(copied > 10, "only {copied} tracked files");
    // The clone's own target directory, never the one running this test.
    let target = clone.join("target");
    // Where a lookup beside the binary, or in PATH, would find a worker.
    plant_decoy(&target.join("debug"));
    let decoys = scratch.path().join("bin");
    plant_decoy(&decoys);
    let path = std::env::join_paths(std::iter::once(decoys).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let outcome = LabCommand::new(PathBuf::from(cargo))
        .args(["run", "--quiet", "--locked", "--target-dir"])
        .arg(&target)
        .args(["-p", "ex5_round_robin_solution", "--"])
        .args([
            "--copies",
            "2",
            "--slice",
            "20ms",
            "--",
            "print_time",
            "0.01",
            "0.1",
        ])
        .current_dir(&clone)
        .env("PATH", path)
        // One small build, but on a loaded machine it may take minutes.
        .timeout(Duration::from_secs(900))
        .run();
    outcome.assert_exit_code(0).assert_nothing_left();
    let mut bindings = Bindings::new();
    outcome.expect_role(
        "coordinator",
        &[
            "coordinator {pid:me}: started 2 programs, all stopped: print_time#1 {pid:1}, print_time#2 {pid:2}",
            "coordinator {pid:me}: print_time#{int} ({int}) exited with status 0",
            "coordinator {pid:me}: print_time#{int} ({int}) exited with status 0",
            "coordinator {pid:me}: report after {any}",
        ],
        &mut bindings,
    );
    // Every worker line comes from one of the two scheduled programs.
    let scheduled = [bindings["1"], bindings["2"]].map(|pid| format!("worker {pid}: "));
    let workers = outcome.role_lines("worker");
    let foreign = workers
        .iter()
        .any(|l| !scheduled.iter().any(|s| l.starts_with(s.as_str())) || l.contains("decoy"));
    if workers.is_empty() || foreign {
        outcome.fail("expected: `worker PID: TIME` lines from the scheduled programs only");
    }
}
