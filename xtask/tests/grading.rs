//! The grader discriminates: the reference solutions pass, the untouched
//! skeletons are "not started", and broken submissions (fixtures, each a
//! stand-in for a student's checkout) fail with the right diagnosis.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn grade(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(root())
        .arg("grade")
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run xtask grade")
}

fn show(output: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn reference_solutions_pass_every_case() {
    let output = grade(&["--solutions"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", show(&output));
    for step in ["ex1", "ex2", "ex3", "ex4", "ex5"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(step) && l.contains("cases passed") && l.contains("all")),
            "{step} did not pass\n{}",
            show(&output)
        );
    }
}

#[test]
fn untouched_skeletons_are_not_started() {
    let output = grade(&[]);
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let not_started = stdout
        .lines()
        .filter(|l| l.contains(": not started (stopped at not yet implemented"))
        .count();
    assert_eq!(not_started, 5, "{}", show(&output));
}

/// Copies a fixture to a fresh directory, so that its build stays out of
/// the source tree.
fn copy_fixture(fixture: &Path, into: &Path) {
    for entry in walk(fixture) {
        let relative = entry.strip_prefix(fixture).unwrap();
        let target = into.join(relative);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&entry, &target).unwrap();
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn broken_submissions_fail_with_the_right_diagnosis() {
    let fixtures = root().join("xtask/tests/fixtures");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&fixtures)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    names.sort();
    assert!(names.len() >= 8, "fixtures missing");
    let scratch = std::env::temp_dir().join(format!("xtask-fixtures-{}", std::process::id()));
    // A few at a time: most of the time goes into waiting (builds, the
    // hanging fixture's time limit), not into using the CPU.
    let queue = std::sync::Mutex::new(names.iter());
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..3 {
            scope.spawn(|| loop {
                let Some(fixture) = queue.lock().unwrap().next() else {
                    return;
                };
                let found = grade_fixture(fixture, &scratch);
                failures.lock().unwrap().extend(found);
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

/// Grades one fixture; returns what was wrong with the grader's verdict.
fn grade_fixture(fixture: &Path, scratch: &Path) -> Vec<String> {
    let mut failures = Vec::new();
    let name = fixture.file_name().unwrap().to_string_lossy().into_owned();
    let expect = std::fs::read_to_string(fixture.join("expect.txt")).unwrap();
    let mut lines = expect.lines();
    let step = lines.next().unwrap();
    let checkout = scratch.join(&name);
    copy_fixture(fixture, &checkout);
    let output = grade(&[
        step,
        "--workspace",
        checkout.to_str().unwrap(),
        "--jobs",
        "8",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    if output.status.code() != Some(1) {
        failures.push(format!("{name}: expected exit status 1\n{}", show(&output)));
    }
    for wanted in lines {
        if !stdout.contains(wanted) {
            failures.push(format!(
                "{name}: the report lacks {wanted:?}\n{}",
                show(&output)
            ));
        }
    }
    // Nothing the fixture started may survive its grading.
    let leftovers = labcheck_leftovers(&checkout);
    if !leftovers.is_empty() {
        failures.push(format!("{name}: left running after grading: {leftovers:?}"));
    }
    failures
}

/// Processes whose command line mentions the fixture's checkout.
fn labcheck_leftovers(checkout: &Path) -> Vec<String> {
    let needle = checkout.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&needle) && !cmdline.contains("xtask") {
            found.push(cmdline);
        }
    }
    found
}
