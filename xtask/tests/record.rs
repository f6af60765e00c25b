//! Grades of record: what a submission scores depends on it and on the
//! workbook as released, never on the grading checkout's `exercises/`, and
//! submissions are taken as students make them.
//!
//! - An instructor checkout with every step solved grades an empty
//!   submission 0 and a partial one partially, through `--submission`,
//!   `--submissions` and the Gradescope autograder (whose zip ships the
//!   released skeletons, whatever the checkout holds).
//! - Each layout students upload (step folders with macOS clutter, a
//!   clone, a zip of `exercises/`, GitHub's "Download ZIP", `main.rs` or
//!   `src/main.rs` alone) gets the points of the work in it, alone and in
//!   a class mixing them all, and in an autograder made for one step.
//!
//! Rule (as in every grading test): one grading at a time, across test
//! processes too (`common::one_at_a_time`).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{copy_workbook, grader, one_at_a_time, points_of, root, row, Run, Scratch, STEPS};

const EX1: &str = STEPS[0];
const EX3: &str = STEPS[2];

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn reference(step: &str) -> Vec<u8> {
    std::fs::read(root().join("solutions").join(step).join("src/main.rs")).unwrap()
}

/// Copies every reference step's sources over `workbook/exercises/`: an
/// instructor who solved every step in the checkout they grade from.
fn solve_every_step(workbook: &Path) {
    for step in STEPS {
        common::copy_tree(
            &root().join("solutions").join(step).join("src"),
            &workbook.join("exercises").join(step).join("src"),
        );
    }
}

/// The `total: X/Y points` of a human report, as `X/Y`.
fn total(run: &Run) -> String {
    let stdout = run.stdout();
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("total: "))
        .and_then(|l| l.split(' ').next())
        .unwrap_or_else(|| panic!("no total{run}"))
        .to_string()
}

/// `xtask grade ARGS --submission DIR` from the workbook at `workbook`.
fn grade_submission(workbook: &Path, args: &[&str], dir: &Path) -> Run {
    let mut command = grader(workbook, args);
    command.arg("--submission").arg(dir);
    Run::of(&mut command)
}

/// `xtask grade ARGS --submissions CLASS` from `workbook`: the gradebook's
/// rows by student, each `points per step...,total,max,status`, and the
/// reasons by student.
fn grade_class(
    workbook: &Path,
    args: &[&str],
    class: &Path,
    out: &Path,
) -> (BTreeMap<String, String>, BTreeMap<String, String>, String) {
    let mut command = grader(workbook, args);
    command
        .arg("--submissions")
        .arg(class)
        .arg("--output-dir")
        .arg(out);
    let run = Run::of(&mut command);
    run.assert_code(0);
    let csv = std::fs::read_to_string(out.join("grades.csv")).unwrap();
    let columns = if args.is_empty() { STEPS.len() } else { 1 };
    let mut points = BTreeMap::new();
    let mut reasons = BTreeMap::new();
    for line in csv.lines().skip(1) {
        // Student, the steps, total, max, status: then the reason, the only
        // field that may hold commas.
        let fields: Vec<&str> = line.split(',').collect();
        let reason_at = 1 + columns + 3;
        points.insert(fields[0].to_string(), fields[1..reason_at].join(","));
        reasons.insert(fields[0].to_string(), fields[reason_at..].join(","));
    }
    (points, reasons, format!("{csv}{run}"))
}

/// Lays out an upload in a folder.
type MakeUpload = fn(&Path);

/// The layouts students upload, each holding the reference step 1 (and
/// nothing else of their own): name, and how to make it in a folder.
fn layouts() -> Vec<(&'static str, MakeUpload)> {
    vec![
        ("step_folder", |dir| {
            write(&dir.join(EX1).join("src/main.rs"), &reference(EX1));
            write(&dir.join(".DS_Store"), b"\0\0\0\x01Bud1");
            write(&dir.join("__MACOSX").join(EX1).join("src/._main.rs"), b"x");
        }),
        ("clone", |dir| {
            copy_workbook(dir);
            write(
                &dir.join("exercises").join(EX1).join("src/main.rs"),
                &reference(EX1),
            );
            // The student's own cases and grader: never used.
            write(&dir.join("tests").join(EX1).join("mine.toml"), b"junk");
            write(&dir.join("xtask/src/main.rs"), b"junk");
        }),
        ("exercises_zip", |dir| {
            common::copy_tree(&root().join("exercises"), &dir.join("exercises"));
            write(
                &dir.join("exercises").join(EX1).join("src/main.rs"),
                &reference(EX1),
            );
        }),
        ("exercises_zip_contents", |dir| {
            common::copy_tree(&root().join("exercises"), dir);
            write(&dir.join(EX1).join("src/main.rs"), &reference(EX1));
        }),
        ("download_zip", |dir| {
            let top = dir.join("workbook-main");
            copy_workbook(&top);
            write(
                &top.join("exercises").join(EX1).join("src/main.rs"),
                &reference(EX1),
            );
        }),
        ("download_zip_of_steps", |dir| {
            write(
                &dir.join("workbook-main").join(EX1).join("src/main.rs"),
                &reference(EX1),
            );
        }),
        ("main_alone", |dir| {
            write(&dir.join("main.rs"), &reference(EX1))
        }),
        ("src_alone", |dir| {
            write(&dir.join("src/main.rs"), &reference(EX1))
        }),
    ]
}

/// Whether the layout holds the other steps' skeletons (then they are
/// graded "not started", not "missing").
fn has_skeletons(layout: &str) -> bool {
    matches!(
        layout,
        "clone" | "exercises_zip" | "exercises_zip_contents" | "download_zip"
    )
}

#[test]
fn submissions_as_students_make_them() {
    let _one = one_at_a_time();
    let root = root();
    let scratch = Scratch::new("record-layouts");
    let class = scratch.join("class");
    let ex1 = points_of(EX1);
    let all: u64 = STEPS.iter().map(|s| points_of(s)).sum();
    for (name, make) in layouts() {
        make(&class.join(name));
    }
    // One step graded: every layout earns the step's points.
    for (name, _) in layouts() {
        let run = grade_submission(&root, &["ex1"], &class.join(name));
        assert_eq!(total(&run), format!("{ex1}/{ex1}"), "{name}{run}");
        run.assert_code(0);
    }
    // Every step graded: main.rs alone names no step, and is refused with
    // a reason; a Download ZIP earns step 1's points.
    let run = grade_submission(&root, &[], &class.join("main_alone"));
    assert_eq!(total(&run), format!("0/{all}"), "{run}");
    run.assert_stdout_has("main.rs is not in a step's folder");
    let run = grade_submission(&root, &[], &class.join("download_zip_of_steps"));
    assert_eq!(total(&run), format!("{ex1}/{all}"), "{run}");
    run.assert_stdout_has("ex2_signal_exchange: missing");

    // The same uploads as one class, graded on every step.
    let out = scratch.join("grades");
    let (points, reasons, shown) = grade_class(&root, &[], &class, &out);
    assert_eq!(points.len(), layouts().len(), "{shown}");
    for (name, _) in layouts() {
        let (expected, why) = match name {
            "main_alone" | "src_alone" => (row(&[], all, "refused"), "for which step"),
            _ => (row(&[(0, ex1)], all, "incomplete"), ""),
        };
        assert_eq!(points[name], expected, "{name}: {shown}");
        let reason = &reasons[name];
        if why.is_empty() {
            let wanted = if has_skeletons(name) {
                "ex2_signal_exchange: not started"
            } else {
                "ex2_signal_exchange: missing: not in the submission"
            };
            assert!(reason.contains(wanted), "{name}: {reason}\n{shown}");
        } else {
            assert!(
                reason.contains("not in a step's folder"),
                "{name}: {reason}"
            );
        }
    }
    // Graded on step 1 alone, every layout earns its points.
    let out = scratch.join("grades-ex1");
    let (points, _, shown) = grade_class(&root, &["ex1"], &class, &out);
    for (name, _) in layouts() {
        assert_eq!(
            points[name],
            format!("{ex1},{ex1},{ex1},graded"),
            "{name}: {shown}"
        );
    }
}

/// The autograder's zip, made by `build_zip.sh ARGS` from `workbook`,
/// unpacked in `into/source`.
fn autograder_from(workbook: &Path, args: &[&str], into: &Path) -> PathBuf {
    let zip = into.join("autograder.zip");
    let run = Run::of(
        Command::new(workbook.join("autograder/build_zip.sh"))
            .args(args)
            .arg(&zip),
    );
    run.assert_code(0);
    let source = into.join("source");
    let unzipped = Command::new("unzip")
        .arg("-q")
        .arg(&zip)
        .arg("-d")
        .arg(&source)
        .status()
        .or_else(|_| {
            Command::new("python3")
                .args(["-m", "zipfile", "-e"])
                .arg(&zip)
                .arg(&source)
                .status()
        })
        .expect("unzip or python3");
    assert!(unzipped.success());
    source
}

/// `ROOT/source/run_autograder` on the upload in `ROOT/submission`: the
/// score and the summary of `results.json`.
fn run_autograder(root_dir: &Path) -> (u64, String) {
    let run = Run::of(
        Command::new(root_dir.join("source/run_autograder"))
            .env("AUTOGRADER_ROOT", root_dir)
            .env("XTASK", env!("CARGO_BIN_EXE_xtask")),
    );
    run.assert_code(0);
    let results = std::fs::read(root_dir.join("results/results.json")).unwrap();
    let report: serde_json::Value = serde_json::from_slice(&results).unwrap();
    let score = report["score"]
        .as_f64()
        .unwrap_or_else(|| panic!("no score{run}")) as u64;
    (score, format!("{report:#}{run}"))
}

/// Replaces the upload in `root_dir/submission` with `make`'s.
fn upload(root_dir: &Path, make: impl Fn(&Path)) {
    let submission = root_dir.join("submission");
    let _ = std::fs::remove_dir_all(&submission);
    std::fs::create_dir_all(&submission).unwrap();
    make(&submission);
}

#[test]
fn an_instructor_checkout_with_every_step_solved_grades_by_the_release() {
    let _one = one_at_a_time();
    let scratch = Scratch::new("record-solved");
    let ex1 = points_of(EX1);
    let ex3 = points_of(EX3);
    let all: u64 = STEPS.iter().map(|s| points_of(s)).sum();

    // The instructor's checkout: the workbook as released, committed, then
    // every step solved in it.
    let checkout = scratch.join("checkout");
    copy_workbook(&checkout);
    let git = |args: &[&str]| {
        let run = Run::of(
            Command::new("git")
                .args([
                    "-c",
                    "user.name=instructor",
                    "-c",
                    "user.email=i@example.org",
                ])
                .arg("-C")
                .arg(&checkout)
                .args(args),
        );
        run.assert_code(0);
    };
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "the workbook as released"]);
    solve_every_step(&checkout);

    // Its autograder ships the released skeletons, from git's history.
    let gradescope = scratch.join("autograder");
    let source = autograder_from(&checkout, &[], &gradescope);
    for step in STEPS {
        let file = format!("exercises/{step}/src/main.rs");
        assert_eq!(
            std::fs::read(source.join(&file)).unwrap(),
            std::fs::read(root().join(&file)).unwrap(),
            "{file} in the zip is not the released skeleton"
        );
    }
    assert!(!source.join("STEP").exists());
    // The instructor then solves the steps in the unpacked autograder too
    // (no git there): grading still goes by the release.
    solve_every_step(&source);

    let class = scratch.join("class");
    std::fs::create_dir_all(class.join("empty")).unwrap();
    let partial = class.join("partial");
    write(&partial.join(EX1).join("src/main.rs"), &reference(EX1));
    write(&partial.join(EX3).join("src/main.rs"), &reference(EX3));

    // --submission.
    let run = grade_submission(&source, &[], &class.join("empty"));
    assert_eq!(total(&run), format!("0/{all}"), "{run}");
    run.assert_stdout_has("skeletons are not the released ones");
    for step in STEPS {
        run.assert_stdout_has(&format!("{step}: missing"));
    }
    let run = grade_submission(&source, &[], &partial);
    assert_eq!(total(&run), format!("{}/{all}", ex1 + ex3), "{run}");

    // --submissions.
    let (points, reasons, shown) = grade_class(&source, &[], &class, &scratch.join("grades"));
    assert_eq!(points["empty"], row(&[], all, "incomplete"), "{shown}");
    assert_eq!(
        points["partial"],
        row(&[(0, ex1), (2, ex3)], all, "incomplete"),
        "{shown}"
    );
    assert!(
        reasons["empty"].contains("missing: not in the submission"),
        "{shown}"
    );

    // The Gradescope autograder, as Gradescope runs it.
    upload(&gradescope, |_| {});
    let (score, shown) = run_autograder(&gradescope);
    assert_eq!(score, 0, "{shown}");
    upload(&gradescope, |dir| {
        common::copy_tree(&partial, dir);
    });
    let (score, shown) = run_autograder(&gradescope);
    assert_eq!(score, ex1 + ex3, "{shown}");
    // A whole-workbook autograder and main.rs alone: refused, with why.
    upload(&gradescope, |dir| {
        write(&dir.join("main.rs"), &reference(EX1))
    });
    let (score, shown) = run_autograder(&gradescope);
    assert_eq!(score, 0, "{shown}");
    assert!(shown.contains("not in a step's folder"), "{shown}");

    // An autograder made for step 1 (build_zip.sh --step ex1) names it in
    // STEP; made so here, each upload earns step 1's points.
    let one_step = scratch.join("autograder-ex1");
    let made = autograder_from(&checkout, &["--step", "ex1"], &one_step);
    assert_eq!(
        std::fs::read_to_string(made.join("STEP")).unwrap(),
        format!("{EX1}\n")
    );
    std::fs::copy(made.join("STEP"), source.join("STEP")).unwrap();
    for (name, make) in layouts() {
        upload(&gradescope, make);
        let (score, shown) = run_autograder(&gradescope);
        assert_eq!(score, ex1, "{name}: {shown}");
    }
}
