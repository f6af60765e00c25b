//! The fixtures, each its own test: a stand-in for a student's checkout
//! (broken, faked, hostile, or a correct variant that does the work
//! another way) and the verdict the grader must give it, in its folder's
//! `expect.txt`.
//!
//! A fixture is its own tree, or (`base: solution` in its `expect.txt`) a
//! patch over today's reference solution: the solution's `src/`, the
//! fixture's own files over it, and each `FILE.patch` (a unified diff)
//! applied to the solution's `FILE` (see `common::lay_out_fixture`). So a
//! change to a solution that a fixture no longer fits is seen at once,
//! by `every_fixture_lays_out`, without grading anything. A patch holds
//! the fixture's point and nothing else: a header comment saying what the
//! fixture is, then its change. A fixture without a `Cargo.toml` gets its
//! step's stand-in manifest (`xtask/tests/fixture-manifests/STEP.toml`);
//! only a fixture whose point is its manifest holds one.
//!
//! When a change to a solution breaks a patch, carry the fixture's change
//! over with a three-way merge (FILE is e.g. `src/main.rs`, 3 lines of
//! context as `diff -u` makes them):
//!
//! ```text
//! git show HEAD:solutions/STEP/FILE > /tmp/old       # what the patch fits
//! patch -o /tmp/fixture /tmp/old FIXTURE/FILE.patch
//! git merge-file -p solutions/STEP/FILE /tmp/old /tmp/fixture > /tmp/new
//! diff -u --label a/FILE --label b/FILE solutions/STEP/FILE /tmp/new > FIXTURE/FILE.patch
//! ```
//!
//! (a conflict is resolved by hand: the fixture's change, today's rest),
//! then grade that fixture: its verdict must not move.
//!
//! `expect.txt`: the step (`ex1`...), then optional lines `base:
//! solution`, `args: ...` (more grader options), `open: <why>` (a known
//! hole: the fixture still gets through, and the test says so the day it
//! no longer does); then the lines the report must hold, `PASS` (a
//! correct variant: every case passes), `SANDBOX_OFF` (graded without the
//! sandbox) and `as user: ...` (held only as an ordinary user).
//!
//! The gradings are the full tier: `cargo test` lays every fixture out
//! but grades none; `cargo test -- --ignored` (what CI runs)
//! grades them all. Run one family: `cargo test -p xtask --test fixtures
//! -- --ignored ex4_`. Every
//! grading holds the one-grading-at-a-time lock for the whole run, and
//! fixtures run one per CPU, each a case at a time, so that no verdict
//! depends on how busy the tests make the machine.

mod common;

use std::path::{Path, PathBuf};

use common::{
    grade_with_pid, instructor_socket, lay_out_fixture, one_at_a_time, root, Scratch, STEPS,
};
use libtest_mimic::{Arguments, Failed, Trial};

fn main() {
    let arguments = Arguments::from_args();
    let fixtures = root().join("xtask/tests/fixtures");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&fixtures)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("expect.txt").is_file())
        .collect();
    names.sort();
    assert!(names.len() >= 8, "fixtures missing");
    let scratch = std::sync::Arc::new(Setting::new());
    let mut trials = vec![
        Trial::test("every_fixture_lays_out", {
            let names = names.clone();
            move || every_fixture_lays_out(&names)
        }),
        Trial::test("fixtures_stay_small", fixtures_stay_small),
    ];
    for fixture in names {
        let name = fixture.file_name().unwrap().to_string_lossy().into_owned();
        let setting = std::sync::Arc::clone(&scratch);
        let kind = name.split('_').next().unwrap_or("").to_string();
        trials.push(
            Trial::test(name, move || {
                let failures = grade_fixture(&fixture, &setting.scratch);
                if failures.is_empty() {
                    Ok(())
                } else {
                    Err(Failed::from(failures.join("\n\n")))
                }
            })
            .with_kind(kind)
            // The full tier (`cargo test -- --ignored`, as CI
            // runs it): grading every fixture takes minutes.
            .with_ignored_flag(true),
        );
    }
    // Listing runs nothing: no lock, no grading.
    if arguments.list {
        let listed = libtest_mimic::run(&arguments, trials);
        let _ = std::fs::remove_dir_all(&scratch.scratch.0);
        listed.exit();
    }
    let mut arguments = arguments;
    // One fixture per CPU, each graded one case at a time.
    if arguments.test_threads.is_none() {
        arguments.test_threads = Some(std::thread::available_parallelism().map_or(2, |n| n.get()));
    }
    let _one = one_at_a_time();
    let scratch_dir = scratch.scratch.0.clone();
    let conclusion = libtest_mimic::run(&arguments, trials);
    // `exit` runs no destructor, and the trials may still hold the setting:
    // its directory goes now, whatever holds it.
    drop(scratch);
    let _ = std::fs::remove_dir_all(&scratch_dir);
    conclusion.exit();
}

/// What every fixture is graded beside: a private case an instructor's
/// machine would hold, a descriptor leaked on it, a unix socket of the
/// instructor's; none may be reached.
struct Setting {
    scratch: Scratch,
    _leaked: std::fs::File,
    _socket: std::os::unix::net::UnixListener,
}

impl Setting {
    fn new() -> Self {
        let scratch = Scratch::new("fixtures");
        // A private case beside the submissions, as an instructor's would
        // be: no submission may read it, not even while it is compiled.
        std::fs::write(
            scratch.join("hidden-case.toml"),
            "description = \"hidden\"\n",
        )
        .unwrap();
        // What a careless CI script leaves the grader: a descriptor open
        // on the private case, without close-on-exec.
        let leaked = std::fs::File::open(scratch.join("hidden-case.toml")).unwrap();
        nix::fcntl::fcntl(
            &leaked,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        )
        .unwrap();
        let socket = instructor_socket(&scratch);
        Self {
            scratch,
            _leaked: leaked,
            _socket: socket,
        }
    }
}

/// Every fixture's checkout can be laid out: each patch still applies to
/// today's solutions.
fn every_fixture_lays_out(names: &[PathBuf]) -> Result<(), Failed> {
    let scratch = Scratch::new("fixtures-laid-out");
    let mut broken = Vec::new();
    for fixture in names {
        let name = fixture.file_name().unwrap();
        if let Err(why) = lay_out_fixture(fixture, &scratch.join(name)) {
            broken.push(why);
        }
    }
    if broken.is_empty() {
        Ok(())
    } else {
        Err(Failed::from(broken.join("\n")))
    }
}

/// Fixture data, in all, at most this many lines: a fixture holds its
/// point, not a copy of the solution (which drifts). The hostile
/// fixtures, whatever the step, and then each step's fakes and variants.
const MAX_FIXTURE_LINES: usize = 3_800 + 300 * STEPS.len();

/// Counts every line of fixture data: the fixtures, their stand-in
/// manifests and their cases.
fn fixtures_stay_small() -> Result<(), Failed> {
    fn lines(dir: &Path, sizes: &mut Vec<(usize, PathBuf)>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                lines(&path, sizes);
            } else if kind.is_file() {
                let bytes = std::fs::read(&path).unwrap();
                sizes.push((bytes.iter().filter(|&&b| b == b'\n').count(), path));
            }
        }
    }
    let mut sizes = Vec::new();
    for dir in ["fixtures", "fixture-manifests", "fixture-cases"] {
        lines(&root().join("xtask/tests").join(dir), &mut sizes);
    }
    let total: usize = sizes.iter().map(|(n, _)| n).sum();
    if total <= MAX_FIXTURE_LINES {
        return Ok(());
    }
    sizes.sort();
    let largest: Vec<String> = sizes
        .iter()
        .rev()
        .take(5)
        .map(|(n, p)| format!("  {n:>5} {}", p.display()))
        .collect();
    Err(Failed::from(format!(
        "the fixtures hold {total} lines, over {MAX_FIXTURE_LINES}; the largest files:\n{}",
        largest.join("\n")
    )))
}

/// Grades one fixture; returns what was wrong with the grader's verdict.
fn grade_fixture(fixture: &Path, scratch: &Path) -> Vec<String> {
    let mut failures = Vec::new();
    let name = fixture.file_name().unwrap().to_string_lossy().into_owned();
    let expect = std::fs::read_to_string(fixture.join("expect.txt")).unwrap();
    let mut lines = expect.lines().peekable();
    let step = lines.next().unwrap();
    // Optional lines after the step: `args: ...` (more grader options) and
    // `open: <why>`, a known hole: the fixture is expected to still get
    // through, so that the day it is stopped the test says so.
    let mut extra: Vec<&str> = Vec::new();
    let mut open = None;
    while let Some(line) = lines.peek() {
        if line.trim() == "base: solution" {
            // Laid out by `lay_out_fixture`.
        } else if let Some(args) = line.strip_prefix("args: ") {
            extra.extend(args.split_whitespace());
        } else if let Some(why) = line.strip_prefix("open: ") {
            open = Some(why);
        } else {
            break;
        }
        lines.next();
    }
    let checkout = scratch.join(&name);
    if let Err(why) = lay_out_fixture(fixture, &checkout) {
        return vec![format!("{name}: {why}")];
    }
    // The workbook's lock file: a fixture with dependencies then builds
    // from the local registry cache, offline.
    if !checkout.join("Cargo.lock").exists() {
        std::fs::copy(root().join("Cargo.lock"), checkout.join("Cargo.lock")).unwrap();
    }
    // `PASS`: a correct variant, which must pass every case of its step.
    let must_pass = lines.clone().any(|l| l == "PASS");
    // `SANDBOX_OFF`: a fake the sandbox stops first (writing into another
    // program's descriptors through /proc), graded without it to show that
    // the trace catches it too.
    let sandbox_off = lines.clone().any(|l| l == "SANDBOX_OFF");
    // Dependencies (nix...) come compiled from the workbook's store, into
    // a target of this grading's own: built once for the whole run.
    let mut args = vec![
        step,
        "--workspace",
        checkout.to_str().unwrap(),
        "--jobs",
        "1",
        "--prebuilt-dependencies",
    ];
    if sandbox_off {
        args.extend(["--sandbox", "off"]);
    }
    args.extend(extra);
    let (run, grader) = grade_with_pid(&args);
    // The report, and any refusal to build (an error, on stderr).
    let said = run.stdout() + &run.stderr();
    let mut failed = |report: String| failures.push(format!("{name}: {report}"));
    if let Err(report) = run.check_code(if must_pass { 0 } else { 1 }) {
        failed(report);
    }
    if must_pass && !said.contains("cases passed") {
        failed(run.differs("no case passed", "N/N points, all N cases passed", &said));
    }
    // A hostile fixture says so when an attack was not stopped.
    if said.contains("GOT THROUGH") {
        failed(run.differs("an attack got through", "no GOT THROUGH", &said));
    }
    // Without colours (NO_COLOR), the report holds no control character: a
    // program's output must not reach the reader's terminal as it came.
    if said
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        failed(run.differs(
            "raw control characters in the report",
            "no control character but newlines and tabs",
            &said,
        ));
    }
    // `as user: ...`: checked only as an ordinary user (see
    // hostile_fixtures_are_contained_for_an_ordinary_user).
    let wanted_lines =
        lines.filter(|l| !["PASS", "SANDBOX_OFF"].contains(l) && !l.starts_with("as user: "));
    for wanted in wanted_lines {
        if let Err(report) = run.check_has(&said, wanted) {
            failed(report);
        }
    }
    // Nothing the fixture started may survive its grading.
    let mut leftovers = labcheck_leftovers(&checkout);
    let staged = std::env::temp_dir().join(format!("xtask-bins-{grader}"));
    leftovers.extend(labcheck_leftovers(&staged));
    if !leftovers.is_empty() {
        failures.push(format!("{name}: left running after grading: {leftovers:?}"));
    }
    match open {
        None => failures,
        Some(why) if failures.is_empty() => vec![format!(
            "{name}: marked as a known open hole ({why}), but the grader now stops it: remove the `open:` line"
        )],
        Some(why) => {
            eprintln!("known open hole: {name}: {why}");
            Vec::new()
        }
    }
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
