//! A whole class at once (`cargo xtask grade --submissions DIR`): a class
//! directory with a correct, a partial, a broken, a hostile and an empty
//! submission (and two clones of the workbook) gives the expected
//! gradebook, and every student's report validates.
//!
//! Rule (as in `grading.rs`): one grading at a time in this test binary.
//! Only step 1 is graded, to keep the run short.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};

fn root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::current_dir().unwrap());
    manifest.parent().unwrap().to_path_buf()
}

fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn show(output: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xtask-class-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
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

const EX1: &str = "ex1_fibonacci_child";

/// `student/ex1_fibonacci_child/src/main.rs` = `source`.
fn student(class: &Path, name: &str, source: &str) -> PathBuf {
    let dir = class.join(name);
    write(&dir.join(EX1).join("src/main.rs"), source);
    dir
}

#[test]
fn a_class_gives_the_expected_gradebook() {
    let _one = one_at_a_time();
    let root = root();
    let class = temp_dir("submissions");
    let out = temp_dir("grades");
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
    let reference = read("solutions/ex1_fibonacci_child/src/main.rs");

    let correct = student(&class, "correct", &reference);
    let theirs = correct.join(EX1).join("src/main.rs");
    // The reference, refusing N above 100: fib(186) is lost.
    let partial = reference.replace("Ok(n) if n <= MAX_N", "Ok(n) if n <= 100");
    assert_ne!(partial, reference);
    student(&class, "partial", &partial);
    student(
        &class,
        "broken_compile",
        &read("xtask/tests/fixtures/ex1_does_not_compile/src/main.rs"),
    );
    let build_rs = student(&class, "broken_build_rs", &reference);
    write(&build_rs.join(EX1).join("build.rs"), "fn main() {}\n");
    // Hostile at run time: it earns its points only if it can read, and
    // overwrite, a classmate's submission.
    student(
        &class,
        "hostile_read",
        &format!(
            "fn main() {{\n    let other = {:?};\n    let text = std::fs::read_to_string(other).expect(\"read a classmate\");\n    std::fs::write(other, \"stolen\").expect(\"overwrite a classmate\");\n    print!(\"{{text}}\");\n}}\n",
            theirs.display().to_string()
        ),
    );
    // Hostile at build time: compiles only if the build can read it.
    student(
        &class,
        "hostile_include",
        &format!(
            "const STOLEN: &str = include_str!({:?});\nfn main() {{ print!(\"{{STOLEN}}\"); }}\n",
            theirs.display().to_string()
        ),
    );
    std::fs::create_dir_all(class.join("empty")).unwrap();
    // A clone of the workbook with the reference step 1: graded as
    // "correct" is, to the point. Its own tests/ and xtask/ are ignored.
    let clone = class.join("clone");
    copy_dir(&root.join("exercises"), &clone.join("exercises"));
    std::fs::copy(root.join("Cargo.toml"), clone.join("Cargo.toml")).unwrap();
    write(
        &clone.join("exercises").join(EX1).join("src/main.rs"),
        &reference,
    );
    write(&clone.join("tests/ex1_fibonacci_child/mine.toml"), "junk");
    write(&clone.join("xtask/src/main.rs"), "junk");
    // A clone whose manifest changed.
    let changed = class.join("clone_changed_manifest");
    copy_dir(&root.join("exercises"), &changed.join("exercises"));
    let manifest = read("Cargo.toml") + "\n[profile.dev]\nopt-level = 1\n";
    write(&changed.join("Cargo.toml"), &manifest);

    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(&root)
        .args(["grade", "ex1", "--format", "json", "--submissions"])
        .arg(&class)
        .arg("--output-dir")
        .arg(&out)
        .env("NO_COLOR", "1")
        .output()
        .expect("run xtask grade --submissions");
    assert!(output.status.success(), "{}", show(&output));
    let csv = std::fs::read_to_string(out.join("grades.csv")).unwrap();
    let rows: Vec<Vec<String>> = csv.lines().map(split_csv).collect();
    assert_eq!(
        rows[0],
        ["student", EX1, "total", "max", "status", "reason"],
        "{csv}"
    );
    let row = |name: &str| {
        rows.iter()
            .find(|r| r[0] == name)
            .unwrap_or_else(|| panic!("no row for {name}:\n{csv}\n{}", show(&output)))
            .clone()
    };
    let points = |name: &str| row(name)[1..5].join(",");
    assert_eq!(rows.len(), 10, "{csv}");
    assert_eq!(points("correct"), "10,10,10,graded", "{csv}");
    assert_eq!(points("clone"), "10,10,10,graded", "{csv}");
    assert_eq!(points("partial"), "9,9,10,graded", "{csv}");
    assert_eq!(points("broken_compile"), "0,0,10,incomplete", "{csv}");
    assert!(
        row("broken_compile")[5].contains("does not compile"),
        "{csv}"
    );
    assert_eq!(points("broken_build_rs"), "0,0,10,refused", "{csv}");
    assert!(row("broken_build_rs")[5].contains("build.rs"), "{csv}");
    assert_eq!(points("clone_changed_manifest"), "0,0,10,refused", "{csv}");
    assert!(
        row("clone_changed_manifest")[5].contains("Cargo.toml (changed)"),
        "{csv}"
    );
    assert_eq!(points("hostile_read"), "0,0,10,graded", "{csv}");
    assert_eq!(points("hostile_include"), "0,0,10,incomplete", "{csv}");
    assert!(
        row("hostile_include")[5].contains("does not compile"),
        "{csv}"
    );
    assert_eq!(points("empty"), "0,0,10,incomplete", "{csv}");
    assert!(row("empty")[5].contains("not started"), "{csv}");
    // Nobody changed the classmate's file.
    assert_eq!(std::fs::read_to_string(&theirs).unwrap(), reference);

    // One report per student, in the format asked for, agreeing with the
    // gradebook.
    for row in &rows[1..] {
        let file = out.join("reports").join(format!("{}.json", row[0]));
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", file.display(), show(&output)));
        let report: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(report["schema_version"], 1, "{}", file.display());
        assert_eq!(
            report["score"].to_string(),
            row[2],
            "{}: {text}",
            file.display()
        );
        assert_eq!(report["max_score"], 10, "{}", file.display());
        assert_eq!(report["steps"][0]["step"], EX1);
    }
    let _ = std::fs::remove_dir_all(&class);
    let _ = std::fs::remove_dir_all(&out);
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
