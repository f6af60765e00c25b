//! The learner's loop, run as a learner runs it: `list`, `reset`,
//! `solution`, a failing step's report, `trace` (in the terminal and as a
//! page) and `watch` in a real terminal (tmux), each in a copy of the
//! workbook.
//!
//! The copy lives in cargo's scratch folder for tests
//! (`target/tmp/learner-workbook`) and keeps its own target directory from
//! one run to the next, so that its builds are warm; every test lays the
//! workbook out in it afresh first, and holds the one-grading lock while
//! it grades. All of them grade, so they are the full tier (`cargo test
//! -- --ignored`).
//!
//! Golden files (`xtask/tests/golden/`) hold what `list` and `trace` print,
//! times and PIDs masked; `XTASK_BLESS=1` rewrites them from this run.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{copy_tree, copy_workbook, one_at_a_time, root, OneAtATime, Run, STEPS};

/// The copy of the workbook, laid out afresh, and the lock.
struct Workbook {
    dir: PathBuf,
    _one: OneAtATime,
}

impl Workbook {
    fn new() -> Self {
        let one = one_at_a_time();
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("learner-workbook");
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            if entry.file_name() != "target" {
                let path = entry.path();
                let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
            }
        }
        copy_workbook(&dir);
        // A maintainer's own progress and backups are not the learner's.
        let _ = std::fs::remove_file(dir.join(".workbook-progress.toml"));
        let _ = std::fs::remove_dir_all(dir.join("backups"));
        Self { dir, _one: one }
    }

    fn xtask(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
        command
            .current_dir(&self.dir)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .args(args);
        command
    }

    fn run(&self, args: &[&str]) -> Run {
        Run::of(&mut self.xtask(args))
    }

    fn exercise(&self, step: &str) -> PathBuf {
        self.dir.join("exercises").join(step).join("src/main.rs")
    }

    fn solution_text(step: &str) -> String {
        std::fs::read_to_string(root().join("solutions").join(step).join("src/main.rs")).unwrap()
    }

    /// Copies the reference solution's sources over the exercise's.
    fn solve(&self, step: &str) {
        let from = root().join("solutions").join(step).join("src");
        copy_tree(&from, &self.dir.join("exercises").join(step).join("src"));
    }

    /// Step 2 left half-written: it does not compile.
    fn break_ex2(&self) {
        let file = self.exercise("ex2_signal_exchange");
        let mut text = std::fs::read_to_string(&file).unwrap();
        text.push_str("\nfn half_written( {\n");
        std::fs::write(file, text).unwrap();
    }
}

/// Compares `got` with the golden file `name`, or writes it with
/// `XTASK_BLESS=1`.
fn golden(name: &str, got: &str, run: &Run) {
    let path = root().join("xtask/tests/golden").join(name);
    if std::env::var_os("XTASK_BLESS").is_some() {
        std::fs::write(&path, got).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (XTASK_BLESS=1 writes it)", path.display()));
    if expected != got {
        panic!(
            "{}",
            run.differs(
                &format!(
                    "not as {} (XTASK_BLESS=1 rewrites it, if the change is meant)",
                    path.display()
                ),
                &expected,
                got
            )
        );
    }
}

/// A trace as printed, its times and PIDs masked: the time column becomes
/// `[ms]`, each process's PID `[P1]`, `[P2]`... in the header's order.
fn masked_trace(text: &str) -> String {
    let mut pids: Vec<String> = Vec::new();
    let mut out = String::new();
    for line in text.lines() {
        let mut line = line.to_string();
        if line.trim_start().starts_with("ms  ") {
            // The header: `ms  3 main      6 child`.
            pids = line
                .split_whitespace()
                .filter(|w| w.chars().all(|c| c.is_ascii_digit()))
                .map(str::to_string)
                .collect();
        }
        if line.len() > 10 && line[..10].trim().parse::<f64>().is_ok() {
            line = format!("      [ms]{}", &line[10..]);
        }
        for (n, pid) in pids.iter().enumerate() {
            let with = format!("[P{}]", n + 1);
            if line.trim_start().starts_with("ms  ") {
                line = mask_number(&line, pid, &with);
                continue;
            }
            // Only where a PID stands: `parent 3`, never fib's 3.
            for before in ["parent ", "child ", "process ", "→ ", "reaped "] {
                line = line
                    .split(before)
                    .map(str::to_string)
                    .reduce(|done, next| {
                        let next = match next.strip_prefix(pid.as_str()) {
                            Some(rest) if !rest.starts_with(|c: char| c.is_ascii_digit()) => {
                                format!("{with}{rest}")
                            }
                            _ => next,
                        };
                        format!("{done}{before}{next}")
                    })
                    .unwrap_or_default();
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// `text` with every `number` that stands alone (no digit either side)
/// replaced (for the header, which holds nothing but PIDs and names).
fn mask_number(text: &str, number: &str, with: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(number) {
        let before = rest[..at].chars().last();
        let after = rest[at + number.len()..].chars().next();
        let digit = |c: Option<char>| c.is_some_and(|c| c.is_ascii_digit() || c == '.');
        out.push_str(&rest[..at]);
        if digit(before) || digit(after) {
            out.push_str(number);
        } else {
            out.push_str(with);
        }
        rest = &rest[at + number.len()..];
    }
    out.push_str(rest);
    out
}

#[test]
#[ignore = "full tier: grades a copy of the workbook"]
fn list_shows_every_step_and_the_next() {
    let book = Workbook::new();
    book.solve("ex1_fibonacci_child");
    book.break_ex2();
    // No progress yet: rebuilt by grading, and said so.
    let first = book.run(&["list"]);
    first.assert_code(0);
    first.assert_stderr_has("no progress recorded yet: grading every step once");
    assert!(book.dir.join(".workbook-progress.toml").is_file());
    // An edit since is shown as such, without grading.
    let ex3 = book.exercise("ex3_pipe_reverser");
    let text = std::fs::read_to_string(&ex3).unwrap() + "\n// started\n";
    std::fs::write(&ex3, text).unwrap();
    let listed = book.run(&["list"]);
    listed.assert_code(0);
    assert_eq!(listed.stderr(), "", "{listed}");
    golden("list.txt", &listed.stdout(), &listed);
    let json = book.run(&["list", "--json"]);
    json.assert_code(0);
    golden("list.json", &json.stdout(), &json);

    // A corrupt file is reported in one line and rebuilt, never a panic.
    std::fs::write(
        book.dir.join(".workbook-progress.toml"),
        "version = 1\n[steps.ex1\n",
    )
    .unwrap();
    let rebuilt = book.run(&["list"]);
    rebuilt.assert_code(0);
    rebuilt.assert_stderr_has(".workbook-progress.toml is corrupt (");
    assert_eq!(rebuilt.stderr().lines().count(), 1, "{rebuilt}");
    assert!(!rebuilt.stderr().contains("panicked"), "{rebuilt}");
    // (The columns are as wide as the longest step's name.)
    assert!(
        rebuilt
            .stdout()
            .lines()
            .any(|l| l.starts_with("> ex2_signal_exchange ")
                && l.trim_end().ends_with(" does not compile")),
        "{rebuilt}"
    );
}

#[test]
#[ignore = "full tier: grades a copy of the workbook"]
fn a_failing_step_is_told_to_its_learner_first() {
    let book = Workbook::new();
    // An off-by-one: one number fewer than asked for.
    let text = Workbook::solution_text("ex1_fibonacci_child")
        .replace("for _ in 0..=n {", "for _ in 0..n {");
    std::fs::write(book.exercise("ex1_fibonacci_child"), text).unwrap();
    book.break_ex2();
    let graded = book.run(&["grade", "ex1"]);
    graded.assert_code(1);
    let out = graded.stdout();
    let lines: Vec<&str> = out.lines().collect();
    let summary = lines
        .iter()
        .position(|l| l.starts_with("ex1_fibonacci_child: "))
        .expect("a summary line");
    // One sentence per failing case first, naming the line it missed.
    let after = lines[summary + 1];
    assert!(after.starts_with("  FAIL fib_"), "{graded}");
    assert!(
        after.contains(": expected `child {pid:child} (parent {pid:parent}): "),
        "{graded}"
    );
    assert!(out.contains("\n  passed: "), "{graded}");
    assert!(
        out.contains(" in detail (tests/ex1_fibonacci_child/"),
        "{graded}"
    );
    graded.assert_stdout_has("        expected:");
    graded.assert_stdout_has("        got:");
    graded.assert_stdout_has("cargo xtask trace ex1 --case ");
    graded.assert_stdout_has("(PIDs are the sandbox's own");

    // A step that does not compile: the compiler's whole first diagnostic.
    let broken = book.run(&["grade", "ex2"]);
    broken.assert_code(1);
    let out = broken.stdout();
    assert!(
        out.contains("ex2_signal_exchange: does not compile"),
        "{broken}"
    );
    assert!(out.contains("error"), "{broken}");
    assert!(out.contains("--> "), "the diagnostic's place: {broken}");
    assert!(
        out.contains(" | "),
        "the diagnostic's source lines: {broken}"
    );
    assert!(
        out.contains("`cargo build -p ex2_signal_exchange` shows them all"),
        "{broken}"
    );
}

#[test]
#[ignore = "full tier: grades a copy of the workbook"]
fn reset_asks_first_and_keeps_a_backup() {
    let book = Workbook::new();
    book.solve("ex1_fibonacci_child");
    let skeleton =
        std::fs::read_to_string(root().join("exercises/ex1_fibonacci_child/src/main.rs")).unwrap();
    let solution = Workbook::solution_text("ex1_fibonacci_child");
    // Without a terminal to ask on, and without --yes: nothing changes.
    let refused = book.run(&["reset", "ex1"]);
    refused.assert_code(1);
    refused.assert_stderr_has("run it in a terminal, or give --yes");
    assert_eq!(
        std::fs::read_to_string(book.exercise("ex1_fibonacci_child")).unwrap(),
        solution
    );
    let reset = book.run(&["reset", "ex1", "--yes"]);
    reset.assert_code(0);
    reset.assert_stdout_has("your files are in backups/ex1_fibonacci_child/1/");
    assert_eq!(
        std::fs::read_to_string(book.exercise("ex1_fibonacci_child")).unwrap(),
        skeleton
    );
    let backup = book.dir.join("backups/ex1_fibonacci_child/1/src/main.rs");
    assert_eq!(std::fs::read_to_string(backup).unwrap(), solution);
    let again = book.run(&["reset", "ex1", "--yes"]);
    again.assert_stdout_has("already its skeleton");
}

#[test]
#[ignore = "full tier: grades a copy of the workbook"]
fn the_solution_comes_once_the_step_passes() {
    let book = Workbook::new();
    let early = book.run(&["solution", "ex1"]);
    early.assert_code(1);
    early.assert_stderr_has("is not done yet");
    let forced = book.run(&["solution", "ex1", "--force"]);
    forced.assert_code(0);
    forced.assert_stderr_has("--force: this shows the whole reference solution");
    forced.assert_stdout_has("the reference solution: solutions/ex1_fibonacci_child/src");
    forced.assert_stdout_has("+++ the reference: solutions/ex1_fibonacci_child/src/main.rs");
    book.solve("ex1_fibonacci_child");
    book.run(&["list"]).assert_code(0);
    let earned = book.run(&["solution", "ex1"]);
    earned.assert_code(0);
    earned.assert_stdout_has("the same as yours");
    assert_eq!(earned.stderr(), "", "{earned}");
}

#[test]
#[ignore = "full tier: grades a copy of the workbook"]
fn trace_draws_what_the_processes_did() {
    let book = Workbook::new();
    let traced = book.run(&["trace", "ex1", "--solution", "--", "5"]);
    traced.assert_code(0);
    golden("trace_ex1.txt", &masked_trace(&traced.stdout()), &traced);
    let slices = book.run(&["trace", "ex5", "--solution"]);
    slices.assert_code(0);
    slices.assert_stdout_has("who ran when (each column is");
    assert!(
        slices.stdout().contains('░') && slices.stdout().contains('█'),
        "{slices}"
    );
}

#[test]
#[ignore = "full tier: grades a copy of the workbook"]
fn the_trace_page_has_its_lanes_and_arrows() {
    let book = Workbook::new();
    let page = book.dir.join("target/trace-ex2.html");
    let file = page.to_string_lossy().into_owned();
    let traced = book.run(&[
        "trace",
        "ex2",
        "--compare",
        "--case",
        "exchange",
        "--html",
        &file,
    ]);
    traced.assert_code(0);
    let html = std::fs::read_to_string(&page).unwrap();
    assert_eq!(
        html.matches("<svg class=\"run\"").count(),
        2,
        "yours and the reference's"
    );
    assert_eq!(
        html.matches("<script>").count(),
        1,
        "the page's own script only"
    );
    // The reference's run: its own section, the second.
    let reference = html.split("<section>").nth(2).expect("a second section");
    assert!(reference.contains("the reference: case exchange"));
    let lanes: Vec<&str> = reference.matches("<g class=\"lane\" data-pid=").collect();
    assert_eq!(lanes.len(), 2, "main and its child:\n{reference}");
    // Every arrow, as (kind, from, to), PIDs named by lane.
    let pid_of = |name: &str| {
        let at = reference.find(&format!(" {name}</text>")).unwrap();
        let start = reference[..at].rfind('>').unwrap() + 1;
        reference[start..at].to_string()
    };
    let (main, child) = (pid_of("main"), pid_of("child"));
    let mut arrows = Vec::new();
    for piece in reference.split("<g class=\"mark ").skip(1) {
        let class = &piece[..piece.find('"').unwrap()];
        let Some(kind) = class.strip_suffix(" arrow") else {
            continue; // a mark on one lane
        };
        let attr = |name: &str| {
            let at = piece.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
            piece[at..at + piece[at..].find('"').unwrap()].to_string()
        };
        let title = piece.split("<title>").nth(1).unwrap_or("");
        let title = title.split("</title>").next().unwrap_or("");
        arrows.push((
            kind.to_string(),
            attr("data-from"),
            attr("data-to"),
            title.to_string(),
        ));
    }
    let has = |kind: &str, from: &str, to: &str, words: &str| {
        arrows
            .iter()
            .any(|(k, f, t, l)| k == kind && f == from && t == to && l.contains(words))
    };
    assert!(has("fork", &main, &child, "fork"), "{arrows:?}");
    assert!(has("signal", &child, &main, "SIGUSR1"), "{arrows:?}");
    assert!(has("signal", &main, &child, "SIGTERM"), "{arrows:?}");
    assert!(has("reap", &main, &child, "reaped"), "{arrows:?}");
}

/// A tmux session of its own, killed when dropped.
struct Tmux {
    name: String,
}

impl Tmux {
    fn start(dir: &Path, command: &str) -> Self {
        let name = format!("xtask-watch-{}", std::process::id());
        let status = Command::new("tmux")
            .args(["new-session", "-d", "-s", &name, "-x", "160", "-y", "60"])
            .arg(format!(
                "cd '{}' && {command}; echo WATCH-ENDED $?; sleep 600",
                dir.display()
            ))
            .status()
            .expect("tmux (CI installs it)");
        assert!(status.success());
        Self { name }
    }

    fn screen(&self) -> String {
        let output = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn keys(&self, keys: &str) {
        Command::new("tmux")
            .args(["send-keys", "-t", &self.name, keys])
            .status()
            .unwrap();
    }

    /// Waits until the screen holds `wanted`; the screen, or a panic
    /// showing it.
    #[track_caller]
    fn wait_for(&self, wanted: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let screen = self.screen();
            if screen.contains(wanted) {
                return screen;
            }
            if Instant::now() > deadline {
                panic!("the screen never showed {wanted:?}; it shows:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .status();
    }
}

/// Processes whose environment holds `mark`.
fn marked_processes(mark: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ.split(|&b| b == 0).any(|v| v == mark.as_bytes()) {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            found.push(format!(
                "{}: {}",
                entry.file_name().to_string_lossy(),
                String::from_utf8_lossy(&cmdline).replace('\0', " ")
            ));
        }
    }
    found
}

#[test]
#[ignore = "full tier: drives watch in a real terminal (tmux)"]
fn watch_grades_each_save_once_and_moves_on() {
    let book = Workbook::new();
    // Grade every step once first, so that watch starts at ex1 at once.
    book.run(&["list"]).assert_code(0);
    let mark = format!("XTASK_WATCH_TEST={}", std::process::id());
    let tmux = Tmux::start(
        &book.dir,
        &format!("env {mark} {} watch ex1", env!("CARGO_BIN_EXE_xtask")),
    );
    tmux.wait_for("not started");
    tmux.wait_for("grading 1 ·");
    let file = book.exercise("ex1_fibonacci_child");
    let solution = Workbook::solution_text("ex1_fibonacci_child");

    // A save in place (truncate and write) of a step that fails a case:
    // graded once.
    let wrong = solution.replace("for _ in 0..=n {", "for _ in 0..n {");
    std::fs::write(&file, &wrong).unwrap();
    let screen = tmux.wait_for("grading 2 ·");
    tmux.wait_for("  FAIL ");
    std::thread::sleep(Duration::from_secs(3));
    let screen_later = tmux.screen();
    assert!(
        screen_later.contains("grading 2 ·"),
        "graded again:\n{screen_later}\nbefore:\n{screen}"
    );

    // `h` shows a hint.
    tmux.keys("h");
    tmux.wait_for("hint 1 of ");

    // A save by rename (as vim and JetBrains save) of another failing
    // version: graded once.
    let also_wrong = wrong.replace("// `checked_add`", "// (a comment changed) `checked_add`");
    let swap = file.with_file_name(".main.rs.swp");
    std::fs::write(&swap, &also_wrong).unwrap();
    std::fs::rename(&swap, &file).unwrap();
    tmux.wait_for("grading 3 ·");
    tmux.wait_for("  FAIL ");
    std::thread::sleep(Duration::from_secs(3));
    let screen = tmux.screen();
    assert!(screen.contains("grading 3 ·"), "graded again:\n{screen}");

    // The right one, by rename again: ex1 passes and watch moves on.
    std::fs::write(&swap, &solution).unwrap();
    std::fs::rename(&swap, &file).unwrap();
    tmux.wait_for("ex1_fibonacci_child passes: well done. Now ex2_signal_exchange");
    tmux.wait_for(&format!(
        "watch: ex2_signal_exchange (step 2 of {})",
        STEPS.len()
    ));

    // `q` leaves nothing running.
    tmux.keys("q");
    tmux.wait_for("WATCH-ENDED 0");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !marked_processes(&mark).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        marked_processes(&mark),
        Vec::<String>::new(),
        "left running after q"
    );
}
