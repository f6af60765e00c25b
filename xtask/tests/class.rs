//! A whole class at once (`cargo xtask grade --submissions DIR`): a class
//! directory with a correct, a partial, broken, hostile and empty
//! submissions (and two clones of the workbook), graded on all five
//! steps, gives the expected gradebook, and every student's report
//! validates in every format. The dependency store that every build
//! shares is the same after the class as before, and nothing is left
//! beside the workbook.
//!
//! Rule (as in every grading test): one grading at a time, across test
//! processes too (`common::one_at_a_time`).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{one_at_a_time, parse_junit, points_of, root, row, Scratch, STEPS};

fn show(output: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A directory of the test's own, removed when the test ends, passed or
/// panicked.
fn temp_dir(what: &str) -> Scratch {
    Scratch::new(&format!("class-{what}"))
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn copy_dir(from: &Path, into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let to = into.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            if entry.file_name() != "target" {
                copy_dir(&entry.path(), &to);
            }
        } else {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
}

const EX1: &str = STEPS[0];

fn reference(step: &str) -> String {
    std::fs::read_to_string(root().join("solutions").join(step).join("src/main.rs")).unwrap()
}

/// `student/<step>/src/main.rs` = `source`.
fn student(class: &Path, name: &str, step: &str, source: &str) -> PathBuf {
    let dir = class.join(name);
    write(&dir.join(step).join("src/main.rs"), source);
    dir
}

/// Every reference step, as a student would submit them.
fn correct_student(class: &Path, name: &str) -> PathBuf {
    let dir = class.join(name);
    for step in STEPS {
        copy_dir(
            &root().join("solutions").join(step).join("src"),
            &dir.join(step).join("src"),
        );
    }
    dir
}

/// Grades `class` with `args` added; the gradebook's rows by student.
fn grade_class(
    class: &Path,
    out: &Path,
    args: &[&str],
) -> (Output, String, BTreeMap<String, Vec<String>>) {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(root())
        .arg("grade")
        .args(args)
        .arg("--submissions")
        .arg(class)
        .arg("--output-dir")
        .arg(out)
        .env("NO_COLOR", "1")
        .output()
        .expect("run xtask grade --submissions");
    assert!(output.status.success(), "{}", show(&output));
    let csv = std::fs::read_to_string(out.join("grades.csv")).unwrap();
    let rows = csv
        .lines()
        .map(split_csv)
        .map(|row| (row[0].clone(), row))
        .collect();
    (output, csv, rows)
}

/// What a change to a file would touch: size, mode, modification time
/// (seconds, nanoseconds), inode and contents.
type FileState = (u64, u32, i64, i64, u64, Vec<u8>);

/// Every file under the store, with its [`FileState`].
fn store_state() -> BTreeMap<PathBuf, FileState> {
    use std::os::unix::fs::MetadataExt;
    let store = root().join("target/xtask-grade/store");
    let mut state = BTreeMap::new();
    let mut stack = vec![store];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let meta = entry.metadata().unwrap();
            let contents = if meta.is_file() {
                std::fs::read(entry.path()).unwrap()
            } else {
                stack.push(entry.path());
                Vec::new()
            };
            let key = (
                meta.len(),
                meta.mode(),
                meta.mtime(),
                meta.mtime_nsec(),
                meta.ino(),
                contents,
            );
            state.insert(entry.path(), key);
        }
    }
    state
}

#[test]
fn a_class_gives_the_expected_gradebook() {
    let _one = one_at_a_time();
    let root = root();
    let class = temp_dir("submissions");
    let out = temp_dir("grades");
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
    let ex1 = reference(EX1);

    let correct = correct_student(&class, "correct");
    let theirs = correct.join(EX1).join("src/main.rs");
    // The reference, refusing N above 100: fib(186) is lost; and the
    // reference step 3. The other steps are left out: missing.
    let partial = ex1.replace("Ok(n) if n <= MAX_N", "Ok(n) if n <= 100");
    assert_ne!(partial, ex1);
    student(&class, "partial", EX1, &partial);
    student(&class, "partial", STEPS[2], &reference("ex3_pipe_reverser"));
    // Step 1 does not compile; step 3, built by the same cargo, still
    // earns its points.
    student(
        &class,
        "broken_compile",
        EX1,
        &read("xtask/tests/fixtures/ex1_does_not_compile/src/main.rs"),
    );
    student(
        &class,
        "broken_compile",
        STEPS[2],
        &reference("ex3_pipe_reverser"),
    );
    let build_rs = student(&class, "broken_build_rs", EX1, &ex1);
    write(&build_rs.join(EX1).join("build.rs"), "fn main() {}\n");
    // Hostile at run time: it earns its points only if it can read, and
    // overwrite, a classmate's submission.
    student(
        &class,
        "hostile_read",
        EX1,
        &format!(
            "fn main() {{\n    let other = {:?};\n    let text = std::fs::read_to_string(other).expect(\"read a classmate\");\n    std::fs::write(other, \"stolen\").expect(\"overwrite a classmate\");\n    print!(\"{{text}}\");\n}}\n",
            theirs.display().to_string()
        ),
    );
    // Hostile at build time: compiles only if the build can read it.
    student(
        &class,
        "hostile_include",
        EX1,
        &format!(
            "const STOLEN: &str = include_str!({:?});\nfn main() {{ print!(\"{{STOLEN}}\"); }}\n",
            theirs.display().to_string()
        ),
    );
    // The checkouts are in the workbook's target/: a build must still not
    // read the instructor's cases, by a path relative to its source
    // (src, the step, exercises/, the checkout, its slot, class/,
    // xtask-grade/ and target/ up).
    student(
        &class,
        "hostile_include_cases",
        EX1,
        "const CASE: &str = include_str!(\"../../../../../../../../tests/ex1_fibonacci_child/fib_10.toml\");\nfn main() { print!(\"{CASE}\"); }\n",
    );
    // The dependency store that every build shares: neither read at
    // build time...
    let store = root.join("target/xtask-grade/store");
    student(
        &class,
        "hostile_store_include",
        EX1,
        &format!(
            "const STORE: &[u8] = include_bytes!({:?});\nfn main() {{ println!(\"{{}}\", STORE.len()); }}\n",
            store.join("stamp").display().to_string()
        ),
    );
    // ...nor changed at run time (it earns points only if it can).
    student(
        &class,
        "hostile_store_write",
        EX1,
        &format!(
            r#"use std::os::unix::fs::PermissionsExt;
fn main() {{
    let store = std::path::Path::new({:?});
    let mut changed = 0;
    for dir in ["target", "target/debug", "target/debug/deps", "target/debug/.fingerprint"] {{
        let dir = store.join(dir);
        changed += std::fs::write(dir.join("planted"), "x").is_ok() as u32;
        changed += std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).is_ok() as u32;
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {{
            changed += std::fs::write(entry.path(), "x").is_ok() as u32;
            changed += std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0)).is_ok() as u32;
        }}
    }}
    if changed > 0 {{
        print!("0\n1\n1\n2\n3\n5\n8\n13\n21\n34\n55\n");
    }}
}}
"#,
            store.display().to_string()
        ),
    );
    std::fs::create_dir_all(class.join("empty")).unwrap();
    // A clone of the workbook with the reference step 1: graded as a
    // submission with step 1 alone. Its own tests/ and xtask/ are ignored.
    let clone = class.join("clone");
    copy_dir(&root.join("exercises"), &clone.join("exercises"));
    std::fs::copy(root.join("Cargo.toml"), clone.join("Cargo.toml")).unwrap();
    write(&clone.join("exercises").join(EX1).join("src/main.rs"), &ex1);
    write(&clone.join("tests/ex1_fibonacci_child/mine.toml"), "junk");
    write(&clone.join("xtask/src/main.rs"), "junk");
    // A clone whose manifest changed.
    let changed = class.join("clone_changed_manifest");
    copy_dir(&root.join("exercises"), &changed.join("exercises"));
    let manifest = read("Cargo.toml") + "\n[profile.dev]\nopt-level = 1\n";
    write(&changed.join("Cargo.toml"), &manifest);

    // The store, made (if it must be) by a grading of an empty submission.
    let empty = temp_dir("nothing");
    let warm = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(&root)
        .args(["grade", "ex1", "--submission"])
        .arg(&empty)
        .output()
        .unwrap();
    assert_eq!(warm.status.code(), Some(1), "{}", show(&warm));
    let before = store_state();
    assert!(!before.is_empty());

    let (output, csv, rows) = grade_class(&class, &out, &["--format", "json"]);
    let mut header = vec!["student"];
    header.extend(STEPS);
    header.extend(["total", "max", "status", "reason"]);
    assert_eq!(rows["student"], header, "{csv}");
    let student_row = |name: &str| {
        rows.get(name)
            .unwrap_or_else(|| panic!("no row for {name}:\n{csv}\n{}", show(&output)))
            .clone()
    };
    // Points per step, total, max, status.
    let points = |name: &str| student_row(name)[1..STEPS.len() + 4].join(",");
    let reason = |name: &str| student_row(name)[STEPS.len() + 4].clone();
    let all: u64 = STEPS.iter().map(|s| points_of(s)).sum();
    let every_step = || -> Vec<(usize, u64)> {
        STEPS
            .iter()
            .enumerate()
            .map(|(i, s)| (i, points_of(s)))
            .collect()
    };
    assert_eq!(rows.len(), 13, "{csv}");
    assert_eq!(
        points("correct"),
        row(&every_step(), all, "graded"),
        "{csv}"
    );
    assert_eq!(points("clone"), row(&[(0, 10)], all, "incomplete"), "{csv}");
    assert_eq!(
        points("partial"),
        row(&[(0, 9), (2, 11)], all, "incomplete"),
        "{csv}"
    );
    assert!(
        reason("partial").contains("ex2_signal_exchange: missing: not in the submission")
            && !reason("partial").contains("ex3"),
        "{csv}"
    );
    assert_eq!(
        points("broken_compile"),
        row(&[(2, 11)], all, "incomplete"),
        "{csv}"
    );
    assert!(
        reason("broken_compile").starts_with("ex1_fibonacci_child: does not compile"),
        "{csv}"
    );
    assert_eq!(points("broken_build_rs"), row(&[], all, "refused"), "{csv}");
    assert!(reason("broken_build_rs").contains("build.rs"), "{csv}");
    assert_eq!(
        points("clone_changed_manifest"),
        row(&[], all, "refused"),
        "{csv}"
    );
    assert!(
        reason("clone_changed_manifest").contains("Cargo.toml (changed)"),
        "{csv}"
    );
    for hostile in [
        "hostile_read",
        "hostile_include",
        "hostile_include_cases",
        "hostile_store_include",
        "hostile_store_write",
    ] {
        assert_eq!(
            points(hostile),
            row(&[], all, "incomplete"),
            "{hostile}: {csv}"
        );
    }
    for build_time in [
        "hostile_include",
        "hostile_include_cases",
        "hostile_store_include",
    ] {
        // The file is there, the jail refused it.
        assert!(
            reason(build_time).starts_with("ex1_fibonacci_child: does not compile")
                && reason(build_time).contains("Permission denied"),
            "{build_time}: {csv}"
        );
    }
    let slot_src =
        root.join("target/xtask-grade/class/slot-0/checkout/exercises/ex1_fibonacci_child/src");
    assert!(slot_src
        .join("../../../../../../../../tests/ex1_fibonacci_child/fib_10.toml")
        .is_file());
    assert_eq!(points("empty"), row(&[], all, "incomplete"), "{csv}");
    assert!(reason("empty").contains("missing"), "{csv}");
    // Nobody changed the classmate's file, nor the store.
    assert_eq!(std::fs::read_to_string(&theirs).unwrap(), reference(EX1));
    assert!(
        store_state() == before,
        "the dependency store changed during the class"
    );
    // The grader's checkouts are in the workbook's target/, none beside it.
    let name = root.file_name().unwrap().to_string_lossy();
    for beside in [".class", ".submission"] {
        assert!(!root.with_file_name(format!("{name}{beside}")).exists());
    }
    assert!(root.join("target/xtask-grade/class/slot-0").is_dir());

    // One report per student, agreeing with the gradebook.
    for row in rows.values().filter(|r| r[0] != "student") {
        let file = out.join("reports").join(format!("{}.json", row[0]));
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", file.display(), show(&output)));
        let report: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(report["schema_version"], 2, "{}", file.display());
        assert_eq!(
            report["score"].to_string(),
            row[STEPS.len() + 1],
            "{}",
            file.display()
        );
        assert_eq!(report["max_score"], all, "{}", file.display());
        let steps: Vec<&str> = report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["step"].as_str().unwrap())
            .collect();
        assert_eq!(steps, STEPS, "{}", file.display());
        for (step, points) in report["steps"].as_array().unwrap().iter().zip(&row[1..6]) {
            if !points.is_empty() {
                assert_eq!(&step["score"].to_string(), points, "{}", file.display());
            }
        }
    }
    for dir in [&class, &out, &empty] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Every per-student format (gradescope, junit, human; json above): a
/// small class graded on step 1 in each, every report checked against
/// the gradebook.
#[test]
fn every_report_format_validates() {
    let _one = one_at_a_time();
    let class = temp_dir("formats");
    student(&class, "correct", EX1, &reference(EX1));
    student(
        &class,
        "broken",
        EX1,
        &std::fs::read_to_string(
            root().join("xtask/tests/fixtures/ex1_does_not_compile/src/main.rs"),
        )
        .unwrap(),
    );
    let refused = student(&class, "refused", EX1, &reference(EX1));
    write(&refused.join("Cargo.toml"), "[package]\n");
    let expected = [("correct", 10), ("broken", 0), ("refused", 0)];
    for format in ["gradescope", "junit", "human"] {
        let out = temp_dir(&format!("grades-{format}"));
        let (output, csv, rows) = grade_class(&class, &out, &["ex1", "--format", format]);
        for (name, score) in expected {
            assert_eq!(rows[name][2], score.to_string(), "{format}: {csv}");
            let extension = match format {
                "gradescope" => "gradescope.json",
                "junit" => "xml",
                _ => "txt",
            };
            let file = out.join("reports").join(format!("{name}.{extension}"));
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{}: {e}\n{}", file.display(), show(&output)));
            let shown = format!("{}:\n{text}", file.display());
            match format {
                "gradescope" => check_gradescope(&text, score, &shown),
                "junit" => check_junit(&text, score, &shown),
                _ => assert!(
                    text.contains(&format!("total: {score}/10 points")),
                    "{shown}"
                ),
            }
        }
        let _ = std::fs::remove_dir_all(&out);
    }
    let _ = std::fs::remove_dir_all(&class);
}

/// Gradescope's results.json: the fields it reads, each test's score 0
/// or its whole points, and the total theirs.
fn check_gradescope(text: &str, score: u64, shown: &str) {
    let report: serde_json::Value = serde_json::from_str(text).expect(shown);
    let keys = |v: &serde_json::Value| {
        let mut keys: Vec<String> = v.as_object().expect(shown).keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(
        keys(&report),
        ["execution_time", "max_score", "output", "score", "tests"],
        "{shown}"
    );
    assert_eq!(report["score"], score, "{shown}");
    assert_eq!(report["max_score"], 10, "{shown}");
    let tests = report["tests"].as_array().expect(shown);
    assert_eq!(tests.len(), 8, "one test per case: {shown}");
    let mut total = 0;
    for test in tests {
        assert_eq!(
            keys(test),
            [
                "max_score",
                "name",
                "number",
                "output",
                "score",
                "status",
                "visibility"
            ],
            "{shown}"
        );
        let (earned, max) = (
            test["score"].as_u64().unwrap(),
            test["max_score"].as_u64().unwrap(),
        );
        let passed = test["status"] == "passed";
        assert!(passed || test["status"] == "failed", "{shown}");
        assert_eq!(earned, if passed { max } else { 0 }, "{shown}");
        assert!(
            test["number"].as_str().unwrap().starts_with("1."),
            "{shown}"
        );
        total += earned;
    }
    assert_eq!(total, score, "{shown}");
}

/// JUnit XML, parsed by quick-junit and, element by element, by
/// quick-xml: one suite, one testcase per case, a failure for each case
/// that lost its points, whose score properties add up to the total.
fn check_junit(text: &str, score: u64, shown: &str) {
    let (report, suites, cases, failures) = parse_junit(text);
    assert_eq!((suites, cases), (1, 8), "{shown}");
    let property = |case: &quick_junit::TestCase, name: &str| -> u64 {
        case.properties
            .iter()
            .find(|p| p.name.as_str() == name)
            .and_then(|p| p.value.parse().ok())
            .unwrap_or_else(|| panic!("no {name} property: {shown}"))
    };
    let mut total = 0;
    let mut lost = 0;
    for case in &report.test_suites[0].test_cases {
        let earned = property(case, "score");
        lost += (earned < property(case, "max_score")) as usize;
        total += earned;
    }
    assert_eq!(total, score, "{shown}");
    assert_eq!(failures, lost, "{shown}");
}

/// Two `--submission` gradings of one workbook share its checkout: the
/// second waits for the first (here, a lock the test holds), then grades.
#[test]
fn a_submission_waits_for_the_one_before() {
    use nix::fcntl::{Flock, FlockArg};
    use std::io::BufRead;
    let _one = one_at_a_time();
    let submission = temp_dir("waiting");
    write(&submission.join(EX1).join("src/main.rs"), &reference(EX1));
    let area = root().join("target/xtask-grade");
    std::fs::create_dir_all(&area).unwrap();
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(area.join("submission.lock"))
        .unwrap();
    let held = Flock::lock(lock, FlockArg::LockExclusive).unwrap();
    let mut grader = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(root())
        .args(["grade", "ex1", "--submission"])
        .arg(&submission)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(grader.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.contains("waiting for another grading"), "{line}");
    drop(held);
    let output = grader.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("total: 10/10 points"), "{stdout}");
    let _ = std::fs::remove_dir_all(&submission);
}

#[test]
fn a_missing_class_directory_is_a_one_line_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(root())
        .args(["grade", "--submissions", "/nonexistent/class"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("--submissions /nonexistent/class"),
        "{stderr}"
    );
}

/// One CSV line (RFC 4180 quoting).
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().unwrap().push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            c => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}
