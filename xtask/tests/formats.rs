//! Every report format validates, and the Gradescope autograder grades a
//! submission laid out as Gradescope lays it out (in a temporary root).
//!
//! - gradescope: `results.json` checked field by field;
//! - junit: the XML parses (quick-junit's reader, and element by element
//!   with quick-xml) with one testsuite per step, one testcase per case;
//! - json: the schema's fields are there (`schema_version` 2), and each
//!   traced case lists its requirements with the events that decided
//!   them, at most 16 each, texts cut to 200 characters;
//! - a failing grade gives 0 to each failed case and exit status 1, a
//!   hidden case's details appear in no format, and every case of a step
//!   that is missing or does not compile counts at 0.
//!
//! Rule: every test here that grades holds the one-grading-at-a-time lock
//! (`common::one_at_a_time`, which holds across test processes), and no
//! more cases run at once than there are CPUs (the grader's default).

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use common::{
    cases_of, copy_tree, grade, lay_out_fixture, one_at_a_time, parse_junit, root, Run, Scratch,
    STEPS,
};

/// The most events a requirement lists, and the longest text an event
/// shows, in the json report (`report::json`).
const MAX_DECIDING: usize = 16;
const EVENT_TEXT_CHARS: usize = 200;

/// A traced case's `observed.requirements`: each with its verdict and its
/// deciding events, bounded; the rules of every traced case among them;
/// and, with `decided` when the case has requirements of its own, some
/// event that decided one (a fake that prints no line a requirement looks
/// for leaves it nothing to judge).
fn check_requirements(observed: &Value, decided: bool) {
    let requirements = observed["requirements"]
        .as_array()
        .unwrap_or_else(|| panic!("no requirements: {observed:#}"));
    let whats: BTreeSet<&str> = requirements
        .iter()
        .filter_map(|r| r["what"].as_str())
        .collect();
    assert!(whats.contains("no_refused_calls"), "{observed:#}");
    let mut deciding = 0;
    for requirement in requirements {
        assert_eq!(
            keys(requirement),
            BTreeSet::from([
                "what",
                "process",
                "passed",
                "diagnosis",
                "events",
                "events_left_off"
            ]),
            "{requirement:#}"
        );
        let diagnosis = requirement["diagnosis"].as_array().unwrap();
        assert_eq!(
            requirement["passed"].as_bool().unwrap(),
            diagnosis.is_empty(),
            "a failed requirement says why, a passed one nothing: {requirement:#}"
        );
        let events = requirement["events"].as_array().unwrap();
        assert!(events.len() <= MAX_DECIDING, "{requirement:#}");
        assert!(requirement["events_left_off"].is_u64(), "{requirement:#}");
        if requirement["events_left_off"].as_u64() > Some(0) {
            assert_eq!(events.len(), MAX_DECIDING, "{requirement:#}");
        }
        let mut last = f64::MIN;
        for event in events {
            assert!(event["at_ms"].is_f64(), "{event:#}");
            assert!(event["pid"].is_i64(), "{event:#}");
            assert!(event["kind"].is_string(), "{event:#}");
            if let Some(text) = event["text"].as_str() {
                assert!(text.chars().count() <= EVENT_TEXT_CHARS, "{event:#}");
            }
            // In the trace's order.
            let at = event["at_ms"].as_f64().unwrap();
            assert!(at >= last, "{requirement:#}");
            last = at;
        }
        deciding += events.len();
    }
    // A case with requirements of its own rests on some event.
    if decided && whats.len() > 2 {
        assert!(deciding > 0, "nothing decided anything: {observed:#}");
    }
}

fn json(text: &[u8]) -> Value {
    serde_json::from_slice(text)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", String::from_utf8_lossy(text)))
}

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect()
}

/// Checks a Gradescope results.json field by field; `passed(n)` says
/// whether the case numbered n ("1.3") must have passed.
fn check_gradescope(
    report: &Value,
    steps: &[&str],
    cases_dir: &Path,
    passed: impl Fn(&str) -> bool,
) {
    assert_eq!(
        keys(report),
        BTreeSet::from(["score", "max_score", "execution_time", "output", "tests"]),
        "{report:#}"
    );
    assert!(report["execution_time"].is_u64(), "{report:#}");
    assert!(report["output"].is_string());
    let tests = report["tests"].as_array().unwrap();
    let mut expected = Vec::new();
    for (index, step) in steps.iter().enumerate() {
        for (n, case) in cases_of(&cases_dir.join(step)).into_iter().enumerate() {
            expected.push((format!("{}.{}", index + 1, n + 1), step, case));
        }
    }
    assert_eq!(tests.len(), expected.len(), "one test per case");
    let (mut score, mut max) = (0, 0);
    for (test, (number, step, (name, points, _))) in tests.iter().zip(&expected) {
        assert_eq!(
            keys(test),
            BTreeSet::from([
                "name",
                "number",
                "score",
                "max_score",
                "status",
                "output",
                "visibility"
            ]),
            "{test:#}"
        );
        assert_eq!(test["number"], number.as_str(), "{test:#}");
        assert!(
            test["name"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{step}: ")),
            "{test:#}"
        );
        assert_eq!(test["max_score"], *points, "{name}: {test:#}");
        let visibility = test["visibility"].as_str().unwrap();
        assert!(
            ["visible", "hidden", "after_due_date", "after_published"].contains(&visibility),
            "{test:#}"
        );
        let output = test["output"].as_str().unwrap();
        if passed(number) {
            assert_eq!(test["status"], "passed", "{name}: {test:#}");
            assert_eq!(test["score"], *points, "{name}: {test:#}");
        } else {
            assert_eq!(test["status"], "failed", "{name}: {test:#}");
            assert_eq!(test["score"], 0, "a failed case scores 0: {test:#}");
            assert!(!output.is_empty(), "a failure says why: {test:#}");
        }
        score += test["score"].as_u64().unwrap();
        max += points;
    }
    assert_eq!(report["score"], score);
    assert_eq!(report["max_score"], max);
}

/// A student's wrong step 1, graded with a copy of the cases in which one
/// case is hidden and one names its visibility: every format says 0 for
/// every failed case, exit status 1, and nothing of the hidden case.
#[test]
fn a_failing_grade_in_every_format() {
    let _one = one_at_a_time();
    let scratch = Scratch::new("formats-failing");
    let checkout = scratch.join("checkout");
    lay_out_fixture(
        &root().join("xtask/tests/fixtures/ex1_wrong_numbers"),
        &checkout,
    )
    .unwrap();
    let cases = scratch.join("cases");
    copy_tree(&root().join("tests").join(STEPS[0]), &cases.join(STEPS[0]));
    let prepend = |file: &str, line: &str| {
        let path = cases.join(STEPS[0]).join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("{line}\n{text}")).unwrap();
    };
    prepend("fib_10.toml", "hidden = true");
    prepend("bad_input.toml", "visibility = \"after_due_date\"");
    let list = cases_of(&cases.join(STEPS[0]));
    let hidden_at = list.iter().position(|c| c.0 == "fib_10").unwrap();
    let hidden_description = list[hidden_at].2.clone();
    let hidden_number = format!("1.{}", hidden_at + 1);
    let secret_numbers = "0 1 1 2 3 5 8 13 21 34 55";

    let args = |format: &'static str| {
        vec![
            "ex1".to_string(),
            "--workspace".into(),
            checkout.display().to_string(),
            "--tests".into(),
            cases.display().to_string(),
            "--format".into(),
            format.into(),
        ]
    };
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = grade(&args);
        run.assert_code(1);
        run
    };

    // gradescope, to a file: stdout then carries the human report.
    let results = scratch.join("results/results.json");
    let mut with_output = args("gradescope");
    with_output.extend(["--output".to_string(), results.display().to_string()]);
    assert!(!checkout.join("Cargo.lock").exists());
    run(with_output).assert_stdout_has("ex1_fibonacci_child: 0/10 points, 0 of 8 cases passed");
    // The checkout had no lock file: it was built with the workbook's, not
    // with whatever this machine's cargo cache would have resolved.
    let locked = |path: &std::path::Path| -> std::collections::BTreeSet<(String, String)> {
        let table: toml::Table = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        table["package"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p.get("source").is_some())
            .map(|p| (p["name"].to_string(), p["version"].to_string()))
            .collect()
    };
    let built_with = locked(&checkout.join("Cargo.lock"));
    assert!(!built_with.is_empty());
    assert!(
        built_with.is_subset(&locked(&root().join("Cargo.lock"))),
        "{built_with:?}"
    );
    let text = std::fs::read_to_string(&results).unwrap();
    let report = json(text.as_bytes());
    check_gradescope(&report, &STEPS[..1], &cases, |_| false);
    let tests = report["tests"].as_array().unwrap();
    assert_eq!(tests[0]["visibility"], "after_due_date", "{:#}", tests[0]);
    let hidden = &tests[hidden_at];
    assert_eq!(hidden["number"], hidden_number.as_str());
    assert_eq!(hidden["visibility"], "after_published", "{hidden:#}");
    assert_eq!(hidden["name"], "ex1_fibonacci_child: hidden case fib_10");
    for other in tests
        .iter()
        .filter(|t| t["number"] != hidden_number.as_str())
    {
        assert_eq!(
            other["visibility"],
            if other["number"] == "1.1" {
                "after_due_date"
            } else {
                "visible"
            }
        );
    }
    assert!(
        !text.contains(&hidden_description) && !text.contains(secret_numbers),
        "the hidden case leaks:\n{text}"
    );

    // junit, on stdout.
    let output = run(args("junit"));
    let xml = String::from_utf8(output.stdout.clone()).unwrap();
    let (junit, suites, testcases, failures) = parse_junit(&xml);
    assert_eq!((suites, testcases, failures), (1, 8, 8), "{xml}");
    let suite = &junit.test_suites[0];
    assert_eq!(suite.name.as_str(), STEPS[0]);
    for case in &suite.test_cases {
        let quick_junit::TestCaseStatus::NonSuccess { kind, ty, .. } = &case.status else {
            panic!("{:?} passed", case.name);
        };
        assert_eq!(*kind, quick_junit::NonSuccessKind::Failure);
        assert_eq!(ty.as_ref().map(|t| t.as_str()), Some("failed"));
        let score = case.properties.iter().find(|p| p.name.as_str() == "score");
        assert_eq!(score.map(|p| p.value.as_str()), Some("0"));
    }
    assert!(
        !xml.contains(&hidden_description) && !xml.contains(secret_numbers),
        "the hidden case leaks:\n{xml}"
    );

    // json, on stdout.
    let output = run(args("json"));
    let report = json(&output.stdout);
    assert_eq!(report["schema_version"], 2);
    assert_eq!(report["score"], 0);
    assert_eq!(report["max_score"], 10);
    assert_eq!(report["full_marks"], false);
    assert!(report["duration_s"].is_f64());
    let isolation = &report["isolation"];
    assert!(isolation["summary"].is_string(), "{isolation:#}");
    assert!(isolation["traced"].is_boolean());
    assert!(keys(isolation).contains("sandbox") && keys(isolation).contains("untraced_because"));
    let step = &report["steps"][0];
    assert_eq!(step["step"], STEPS[0]);
    assert_eq!(step["status"], "graded");
    let json_cases = step["cases"].as_array().unwrap();
    assert_eq!(json_cases.len(), 8);
    for case in json_cases {
        for key in [
            "case",
            "number",
            "description",
            "hidden",
            "score",
            "max_score",
            "status",
            "duration_s",
            "diagnosis",
            "observed",
        ] {
            assert!(keys(case).contains(key), "{key} missing: {case:#}");
        }
        assert_eq!(case["score"], 0, "{case:#}");
        assert_eq!(case["status"], "failed", "{case:#}");
        assert!(case["duration_s"].is_f64());
        if case["hidden"] == true {
            assert!(case["observed"].is_null(), "{case:#}");
        } else {
            assert!(case["observed"]["event_count"].is_u64(), "{case:#}");
            assert!(!case["diagnosis"].as_array().unwrap().is_empty());
            check_requirements(&case["observed"], false);
        }
    }
    let text = output.stdout();
    assert!(
        !text.contains(&hidden_description) && !text.contains(secret_numbers),
        "the hidden case leaks:\n{text}"
    );
}

/// The reference step 1: full marks, exit status 0, in every format.
#[test]
fn full_marks_in_every_format() {
    let _one = one_at_a_time();
    let output = grade(&["ex1", "--solutions", "--format", "gradescope"]);
    output.assert_code(0);
    let report = json(&output.stdout);
    check_gradescope(&report, &STEPS[..1], &root().join("tests"), |_| true);
    assert_eq!(report["score"], report["max_score"]);

    let output = grade(&["ex1", "--solutions", "--format", "junit"]);
    output.assert_code(0);
    let xml = output.stdout();
    let (_, suites, testcases, failures) = parse_junit(&xml);
    let count = cases_of(&root().join("tests").join(STEPS[0])).len();
    assert_eq!((suites, testcases, failures), (1, count, 0), "{xml}");

    let output = grade(&["ex1", "--solutions", "--format", "json"]);
    output.assert_code(0);
    let report = json(&output.stdout);
    assert_eq!(report["full_marks"], true);
    assert_eq!(report["score"], report["max_score"]);
    for case in report["steps"][0]["cases"].as_array().unwrap() {
        check_requirements(&case["observed"], true);
        for requirement in case["observed"]["requirements"].as_array().unwrap() {
            assert_eq!(requirement["passed"], true, "{requirement:#}");
        }
    }
}

/// Grades a fixture with step 1's case `fib_10` alone, in json.
fn grade_with_fib_10(fixture: &str) -> Run {
    let _one = one_at_a_time();
    let scratch = Scratch::new(&format!("formats-{fixture}"));
    let checkout = scratch.join("checkout");
    lay_out_fixture(
        &root().join("xtask/tests/fixtures").join(fixture),
        &checkout,
    )
    .unwrap();
    let cases = scratch.join("cases").join(STEPS[0]);
    std::fs::create_dir_all(&cases).unwrap();
    std::fs::copy(
        root().join("tests").join(STEPS[0]).join("fib_10.toml"),
        cases.join("fib_10.toml"),
    )
    .unwrap();
    grade(&[
        "ex1",
        "--workspace",
        checkout.to_str().unwrap(),
        "--tests",
        scratch.join("cases").to_str().unwrap(),
        "--format",
        "json",
    ])
}

/// What was observed of `fib_10` graded on a fixture, which must pass or not.
fn observed_in_fib_10(fixture: &str, passes: bool) -> Value {
    let output = grade_with_fib_10(fixture);
    output.assert_code(if passes { 0 } else { 1 });
    let report = json(&output.stdout);
    report["steps"][0]["cases"][0]["observed"].clone()
}

/// A child that prints its line one byte per write: the requirement that
/// it wrote the line rests on a write per byte (40 or more), of which the
/// report keeps the first 16, every one a write of the child's to its
/// stdout, and says how many more.
#[test]
fn deciding_events_are_bounded() {
    let observed = &observed_in_fib_10("ex1_byte_writes", true);
    check_requirements(observed, true);
    let main = observed["processes"][0]["pid"].as_i64().unwrap();
    let requirements = observed["requirements"].as_array().unwrap();
    let written = requirements
        .iter()
        .find(|r| r["what"] == "written_by_child")
        .unwrap_or_else(|| panic!("{observed:#}"));
    let events = written["events"].as_array().unwrap();
    assert_eq!(events.len(), MAX_DECIDING, "{written:#}");
    let child = events[0]["pid"].as_i64().unwrap();
    assert_ne!(child, main);
    // One write per byte of the line, all counted.
    let line = format!("child {child} (parent {main}): 0 1 1 2 3 5 8 13 21 34 55");
    assert_eq!(
        written["events_left_off"].as_u64().unwrap() as usize,
        line.len() - MAX_DECIDING,
        "{written:#}"
    );
    for event in events {
        assert_eq!(event["kind"], "write", "{event:#}");
        assert_eq!(event["fd"], 1, "{event:#}");
        assert_eq!(event["pid"], child, "{event:#}");
    }
    let text: String = events.iter().filter_map(|e| e["text"].as_str()).collect();
    assert_eq!(text.len(), MAX_DECIDING, "one byte each: {written:#}");
    assert!(
        text.starts_with("child "),
        "the first writes, in order: {written:#}"
    );
    // The fork it rests on names the same child.
    let fork = requirements.iter().find(|r| r["what"] == "fork").unwrap();
    assert_eq!(fork["events"][0]["kind"], "spawn", "{fork:#}");
    assert_eq!(fork["events"][0]["pid"], child, "{fork:#}");
}

/// Step 1 does not compile and the others are missing: every case of every
/// step appears, at 0, with its step's status, and the totals count them.
#[test]
fn every_case_of_an_ungraded_step_counts() {
    let _one = one_at_a_time();
    let scratch = Scratch::new("formats-ungraded");
    let checkout = scratch.join("checkout");
    lay_out_fixture(
        &root().join("xtask/tests/fixtures/ex1_does_not_compile"),
        &checkout,
    )
    .unwrap();
    let output = grade(&[
        "--workspace",
        checkout.to_str().unwrap(),
        "--format",
        "json",
    ]);
    output.assert_code(1);
    let report = json(&output.stdout);
    let mut total = 0;
    for (index, step) in STEPS.iter().enumerate() {
        let wanted = if index == 0 {
            "does_not_compile"
        } else {
            "missing"
        };
        let reported = &report["steps"][index];
        assert_eq!(reported["step"], *step);
        assert_eq!(reported["status"], wanted, "{reported:#}");
        assert!(reported["diagnosis"].is_string(), "{reported:#}");
        let cases = cases_of(&root().join("tests").join(step));
        let listed = reported["cases"].as_array().unwrap();
        assert_eq!(listed.len(), cases.len(), "{step}: every case listed");
        for (case, (name, points, _)) in listed.iter().zip(&cases) {
            assert_eq!(case["case"], name.as_str());
            assert_eq!(case["status"], wanted, "{case:#}");
            assert_eq!(case["score"], 0);
            assert_eq!(case["max_score"], *points);
            assert!(case["observed"].is_null());
            total += points;
        }
    }
    assert_eq!(report["score"], 0);
    assert_eq!(report["max_score"], total);
}

/// A program that never ends: its case is "timed_out" (at 0), not merely
/// "failed". One case only: it takes its whole time limit.
#[test]
fn a_case_past_its_time_limit_is_timed_out() {
    let output = grade_with_fib_10("ex1_hangs");
    output.assert_code(1);
    let report = json(&output.stdout);
    let case = &report["steps"][0]["cases"][0];
    assert_eq!(case["status"], "timed_out", "{case:#}");
    assert_eq!(case["score"], 0);
    assert!(
        case["observed"]["killed_because"]
            .as_str()
            .is_some_and(|why| why.starts_with("timed out")),
        "{case:#}"
    );
}

/// The GitHub Classroom example: one test per step, run by the step's
/// grading command (its exit status), worth every point of the step.
#[test]
fn the_classroom_example_matches_the_cases() {
    let path = root().join("examples/github-classroom/autograding.json");
    let example = json(&std::fs::read(&path).unwrap());
    let tests = example["tests"].as_array().unwrap();
    assert_eq!(tests.len(), STEPS.len());
    for (index, (test, step)) in tests.iter().zip(STEPS).enumerate() {
        let points: u64 = cases_of(&root().join("tests").join(step))
            .iter()
            .map(|c| c.1)
            .sum();
        assert_eq!(test["points"], points, "{step}: {test:#}");
        assert_eq!(
            test["run"],
            format!("cargo xtask grade ex{}", index + 1).as_str()
        );
    }
}

/// Unpacks a zip with whichever tool the machine has.
fn unzip(zip: &Path, into: &Path) {
    let status = Command::new("unzip")
        .arg("-q")
        .arg(zip)
        .arg("-d")
        .arg(into)
        .status()
        .or_else(|_| {
            Command::new("python3")
                .args(["-m", "zipfile", "-e"])
                .arg(zip)
                .arg(into)
                .status()
        })
        .expect("unzip or python3");
    assert!(status.success());
}

fn run_autograder(root_dir: &Path) -> (Run, Value) {
    let output = Run::of(
        Command::new(root_dir.join("source/run_autograder"))
            .env("AUTOGRADER_ROOT", root_dir)
            .env("XTASK", env!("CARGO_BIN_EXE_xtask")),
    );
    output.assert_code(0);
    let results = std::fs::read(root_dir.join("results/results.json"))
        .unwrap_or_else(|e| panic!("no results.json ({e}){output}"));
    (output, json(&results))
}

/// The autograder as Gradescope runs it, in a temporary root: the zip that
/// build_zip.sh makes, unpacked in source/; a refused submission, then the
/// reference step 1 as a student would submit it.
#[test]
fn the_gradescope_autograder_grades_a_submission() {
    let _one = one_at_a_time();
    let scratch = Scratch::new("autograder");
    let zip = scratch.join("autograder.zip");
    let status = Command::new(root().join("autograder/build_zip.sh"))
        .arg(&zip)
        .status()
        .unwrap();
    assert!(status.success());
    let source = scratch.join("source");
    unzip(&zip, &source);
    for file in ["setup.sh", "run_autograder", "Cargo.toml", "tests", "xtask"] {
        assert!(source.join(file).exists(), "the zip lacks {file}");
    }
    assert!(
        !source.join("solutions").exists(),
        "the answer key is in the zip"
    );

    // A manifest and a link to a grader's file: refused, nothing built.
    let submission = scratch.join("submission");
    std::fs::create_dir_all(submission.join("ex1_fibonacci_child/src")).unwrap();
    std::fs::write(submission.join("ex1_fibonacci_child/Cargo.toml"), "").unwrap();
    std::os::unix::fs::symlink(
        source.join("tests/ex1_fibonacci_child/fib_10.toml"),
        submission.join("ex1_fibonacci_child/src/main.rs"),
    )
    .unwrap();
    let (output, report) = run_autograder(&scratch);
    check_gradescope(&report, &STEPS, &source.join("tests"), |_| false);
    let summary = report["output"].as_str().unwrap();
    assert!(
        summary.contains("refused") && summary.contains("ex1_fibonacci_child/Cargo.toml"),
        "{output}\n{report:#}"
    );

    // The reference step 1, under exercises/ as in a student's repository.
    std::fs::remove_dir_all(&submission).unwrap();
    let placed = submission.join("exercises/ex1_fibonacci_child/src");
    std::fs::create_dir_all(&placed).unwrap();
    std::fs::copy(
        root().join("solutions/ex1_fibonacci_child/src/main.rs"),
        placed.join("main.rs"),
    )
    .unwrap();
    let skeleton = std::fs::read(source.join("exercises/ex1_fibonacci_child/src/main.rs")).unwrap();
    let (output, report) = run_autograder(&scratch);
    check_gradescope(&report, &STEPS, &source.join("tests"), |number| {
        number.starts_with("1.")
    });
    assert_eq!(
        std::fs::read(source.join("exercises/ex1_fibonacci_child/src/main.rs")).unwrap(),
        skeleton,
        "the submission was graded in a checkout of its own, not over the workbook's"
    );
    let ex1: u64 = cases_of(&source.join("tests").join(STEPS[0]))
        .iter()
        .map(|c| c.1)
        .sum();
    assert_eq!(report["score"], ex1, "{output}");

    // A step that compiles the instructor's case into itself: its build,
    // in the sandbox, cannot read the workbook (as ex1_hostile_include_str).
    let case = source.join("tests/ex1_fibonacci_child/fib_10.toml");
    std::fs::write(
        placed.join("main.rs"),
        format!(
            "const CASE: &str = include_str!({:?});\nfn main() {{ print!(\"{{CASE}}\"); }}\n",
            case.display().to_string()
        ),
    )
    .unwrap();
    let (output, report) = run_autograder(&scratch);
    check_gradescope(&report, &STEPS, &source.join("tests"), |_| false);
    let summary = report["output"].as_str().unwrap();
    assert!(
        summary.contains("ex1_fibonacci_child: does not compile"),
        "{output}\n{report:#}"
    );
}

/// A parent that prints the child's line itself and forks nothing: each
/// failed requirement lists what happened instead (main's own writes that
/// carried the line; main's start and end, with no fork between).
#[test]
fn a_failed_requirement_shows_what_happened_instead() {
    let observed = &observed_in_fib_10("ex1_parent_computes", false);
    check_requirements(observed, true);
    let main = observed["processes"][0]["pid"].as_i64().unwrap();
    let requirement = |what: &str| {
        observed["requirements"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["what"] == what)
            .unwrap_or_else(|| panic!("no {what}: {observed:#}"))
            .clone()
    };
    let written = requirement("written_by_child");
    assert_eq!(written["passed"], false, "{written:#}");
    assert!(
        written["diagnosis"][0]
            .as_str()
            .unwrap()
            .contains("was written by main itself"),
        "{written:#}"
    );
    let events = written["events"].as_array().unwrap();
    assert!(!events.is_empty(), "{written:#}");
    for event in events {
        assert_eq!(event["kind"], "write", "{event:#}");
        assert_eq!(event["pid"], main, "{event:#}");
    }
    let text: String = events.iter().filter_map(|e| e["text"].as_str()).collect();
    assert!(text.contains("child "), "{written:#}");
    let fork = requirement("fork");
    assert_eq!(fork["passed"], false, "{fork:#}");
    let kinds: Vec<&str> = fork["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["pid"] == main)
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["spawn", "exec", "exit"], "{fork:#}");
}
