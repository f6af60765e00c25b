//! The grader discriminates: the reference solutions pass, broken or faked
//! submissions (fixtures, each a stand-in for a student's checkout) fail
//! with the right diagnosis, and correct variants that do the work another
//! way (fixtures whose expect.txt says `PASS`) pass. It grades what was built from the tree being
//! graded, whatever target directory is set, and counts every point.
//!
//! That untouched skeletons grade as "not started" is a check of the
//! workbook as shipped (`cargo xtask dev check`), not a test: a learner's
//! progress must never make the test suite fail.
//!
//! Rule: every test here that grades holds the one-grading-at-a-time lock
//! (`common::one_at_a_time`, which holds across test processes), and no
//! more cases run at once than there are CPUs, so that no verdict depends
//! on how busy the tests make the machine.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{
    copy_workbook, grade, grade_with_pid, grader, instructor_socket, lay_out_fixture,
    one_at_a_time, points_of, root, Run, Scratch, STEPS,
};

/// The lock of `common::one_at_a_time` holds between threads of one
/// process (as `cargo test` runs tests) and between processes (as `cargo
/// nextest` does): while a test holds it, neither can take it.
#[test]
fn the_grading_lock_holds_across_threads_and_processes() {
    use nix::fcntl::{Flock, FlockArg};
    let _one = one_at_a_time();
    let file = std::fs::File::open(common::LOCK_FILE).unwrap();
    let taken =
        std::thread::spawn(move || Flock::lock(file, FlockArg::LockExclusiveNonblock).is_ok())
            .join()
            .unwrap();
    assert!(!taken, "another thread took the lock");
    let other = Command::new("flock")
        .args([
            "--nonblock",
            "--conflict-exit-code",
            "75",
            common::LOCK_FILE,
            "true",
        ])
        .status();
    match other {
        Ok(status) => assert_eq!(status.code(), Some(75), "another process: {status}"),
        Err(e) => eprintln!("skipped the other process: cannot run flock(1): {e}"),
    }
}

#[test]
fn reference_solutions_pass_every_case() {
    let _one = one_at_a_time();
    let run = grade(&["--solutions"]);
    run.assert_code(0);
    let stdout = run.stdout();
    for step in STEPS {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(step) && l.contains("cases passed") && l.contains("all")),
            "{}",
            run.differs(
                "a step did not pass",
                &format!("{step}: N/N points, all N cases passed"),
                &stdout
            )
        );
    }
}

#[test]
fn every_point_counts_in_the_total() {
    let _one = one_at_a_time();
    let scratch = Scratch::new("totals");
    let checkout = scratch.join("ex1_does_not_compile");
    lay_out_fixture(
        &root().join("xtask/tests/fixtures/ex1_does_not_compile"),
        &checkout,
    )
    .unwrap();
    let run = grade(&["--workspace", checkout.to_str().unwrap()]);
    run.assert_code(1);
    let total: u64 = STEPS.iter().map(|s| points_of(s)).sum();
    let mut wanted = vec![
        format!(
            "ex1_fibonacci_child: does not compile (0/{} points)",
            points_of(STEPS[0])
        ),
        format!("total: 0/{total} points"),
    ];
    for step in &STEPS[1..] {
        wanted.push(format!("{step}: missing (0/{} points)", points_of(step)));
    }
    // The compiler's whole first diagnostic, and where to see them all.
    wanted.push(" --> src/main.rs:".to_string());
    wanted.push("`cargo build -p ex1_fibonacci_child` shows them all".to_string());
    for line in wanted {
        run.assert_stdout_has(&line);
    }
}

#[test]
fn a_target_dir_setting_never_grades_a_stale_binary() {
    let _one = one_at_a_time();
    let scratch = Scratch::new("target-dir");
    let reference = reference_ex1();
    let failing = format!("0/{} points, 0 of", points_of(STEPS[0]));
    for (fixture, setting, wanted) in [
        // A target directory outside the tree (maybe another checkout's).
        ("ex1_does_not_compile", "env", "does not compile"),
        // One inside the tree, set in its cargo configuration.
        ("ex1_wrong_numbers", "config", failing.as_str()),
    ] {
        let checkout = scratch.join(fixture);
        lay_out_fixture(
            &root().join("xtask/tests/fixtures").join(fixture),
            &checkout,
        )
        .unwrap();
        // A correct binary where the old grader looked: it must not count.
        for dir in ["target/debug", "elsewhere/debug"] {
            std::fs::create_dir_all(checkout.join(dir)).unwrap();
            std::fs::copy(&reference, checkout.join(dir).join("ex1_fibonacci_child")).unwrap();
        }
        let shared = scratch.join("shared-target");
        let mut command = grader(
            &root(),
            &[
                "ex1",
                "--workspace",
                checkout.to_str().unwrap(),
                "--jobs",
                "1",
            ],
        );
        if setting == "env" {
            command.env("CARGO_TARGET_DIR", &shared);
        } else {
            std::fs::create_dir_all(checkout.join(".cargo")).unwrap();
            std::fs::write(
                checkout.join(".cargo/config.toml"),
                "[build]\ntarget-dir = \"elsewhere\"\n",
            )
            .unwrap();
        }
        let run = Run::of(&mut command);
        run.assert_code(1);
        run.assert_stdout_has(&format!("ex1_fibonacci_child: {wanted}"));
    }
}

/// A submission ships its own `target/`: a build of the reference solution,
/// newer than its sources, which are the untouched skeleton (dated before
/// that build, as a tarball keeps them). Cargo finds that build fresh and
/// compiles nothing; the grader must still grade the skeleton, never a
/// binary it did not build.
#[test]
fn a_binary_shipped_in_target_is_never_graded() {
    let _one = one_at_a_time();
    let scratch = Scratch::new("shipped-target");
    let checkout = scratch.join("submission");
    std::fs::create_dir_all(checkout.join("src")).unwrap();
    std::fs::write(
        checkout.join("Cargo.toml"),
        "[package]\nname = \"ex1_fibonacci_child\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
         [dependencies]\n\
         nix = { version = \"0.31\", features = [\"process\", \"signal\", \"fs\", \"poll\", \"time\", \"user\"] }\n\
         signal-hook = { version = \"0.4\", features = [\"extended-siginfo\"] }\n\
         os_pipe = \"1.2\"\n\n[workspace]\n",
    )
    .unwrap();
    std::fs::copy(root().join("Cargo.lock"), checkout.join("Cargo.lock")).unwrap();
    let main = checkout.join("src/main.rs");
    std::fs::copy(
        root().join("solutions/ex1_fibonacci_child/src/main.rs"),
        &main,
    )
    .unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let built = Command::new(cargo)
        .current_dir(&checkout)
        .args(["build", "--quiet", "--offline"])
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .unwrap();
    assert!(
        built.success(),
        "the reference does not build as a submission"
    );
    std::fs::copy(
        root().join("exercises/ex1_fibonacci_child/src/main.rs"),
        &main,
    )
    .unwrap();
    let long_ago =
        std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    for file in ["src/main.rs", "Cargo.toml", "Cargo.lock"] {
        let file = std::fs::File::options()
            .write(true)
            .open(checkout.join(file))
            .unwrap();
        file.set_modified(long_ago).unwrap();
    }
    let (run, _) = grade_with_pid(&[
        "ex1",
        "--workspace",
        checkout.to_str().unwrap(),
        "--jobs",
        "1",
        "--prebuilt-dependencies",
    ]);
    // The skeleton, whatever its target/ holds.
    run.assert_stdout_has("ex1_fibonacci_child: not started");
}

/// The reference ex1, built by cargo: its path is cargo's to say.
fn reference_ex1() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(root())
        .args(["build", "-q", "-p", "ex1_fibonacci_child_solution"])
        .args(["--message-format", "json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains("\"executable\":\"") && l.contains("ex1_fibonacci_child_solution"))
        .expect("cargo names the reference binary");
    let start = line.find("\"executable\":\"").unwrap() + "\"executable\":\"".len();
    let end = start + line[start..].find('"').unwrap();
    PathBuf::from(&line[start..end])
}

/// A learner solves step 1 and is half-way through step 2 (it does not
/// compile yet), in a copy of the workbook. The README's test command
/// builds none of the exercises, and the grader, run from inside that copy,
/// grades the copy (not the tree it was built from): step 1 in full, step 2
/// as not compiling.
#[test]
fn a_learners_progress_never_breaks_the_suite() {
    let _one = one_at_a_time();
    let scratch = Scratch::new("learner");
    let copy = scratch.join("workbook");
    copy_workbook(&copy);
    std::fs::copy(
        copy.join("solutions/ex1_fibonacci_child/src/main.rs"),
        copy.join("exercises/ex1_fibonacci_child/src/main.rs"),
    )
    .unwrap();
    let ex2 = copy.join("exercises/ex2_signal_exchange/src/main.rs");
    let mut text = std::fs::read_to_string(&ex2).unwrap();
    text.push_str("\nfn half_written( {\n");
    std::fs::write(&ex2, text).unwrap();

    // `cargo test` builds the default members only: no exercise among them.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let metadata = Command::new(cargo)
        .current_dir(&copy)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .unwrap();
    let metadata = String::from_utf8_lossy(&metadata.stdout);
    let defaults = metadata
        .split("\"workspace_default_members\":")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .expect("cargo metadata lists the default members");
    assert!(defaults.contains("_solution@"), "{defaults}");
    for step in STEPS {
        assert!(
            !defaults.contains(&format!("#{step}@")),
            "`cargo test` would build the exercise {step}: {defaults}"
        );
    }

    // The copy's solved step 1.
    let full = points_of(STEPS[0]);
    let solved = format!("ex1_fibonacci_child: {full}/{full} points, all");
    Run::of(&mut grader(&copy, &["ex1", "--jobs", "1"])).assert_stdout_has(&solved);
    // The instructor's way: the copy as a student's clone, graded from the
    // workbook with --submission (step sources only, in the sandbox).
    grade(&[
        "ex1",
        "--submission",
        copy.to_str().unwrap(),
        "--jobs",
        "1",
        "--prebuilt-dependencies",
    ])
    .assert_stdout_has(&solved);
    // The copy's half-written step 2.
    Run::of(&mut grader(&copy, &["ex2", "--jobs", "1"]))
        .assert_stdout_has("ex2_signal_exchange: does not compile");
}

/// The jail holds for an ordinary user too: each run-time hostile fixture
/// is built (as we are), then one case runs it under a case helper started
/// as uid 65534 (`nobody`). Only when running as root, with `setpriv`.
#[test]
#[ignore = "full tier: cargo test -- --ignored"]
fn hostile_fixtures_are_contained_for_an_ordinary_user() {
    if !nix_is_root() || Command::new("setpriv").arg("--help").output().is_err() {
        eprintln!("skipped: needs root and setpriv to become an ordinary user");
        return;
    }
    let _one = one_at_a_time();
    let fixtures = root().join("xtask/tests/fixtures");
    let scratch = Scratch::new("unprivileged");
    let bins = scratch.join("bins");
    std::fs::create_dir_all(&bins).unwrap();
    let _socket = instructor_socket(&scratch);
    let mut failures = Vec::new();
    let hostile = [
        "ex1_hostile_exec_reference",
        "ex1_hostile_forge_report",
        "ex1_hostile_tamper",
        "ex1_hostile_network",
        "ex1_hostile_signal_grader",
        "ex1_hostile_fill_disk",
        "ex1_hostile_deep_tree",
        "ex1_redteam_unix_socket",
        "ex1_redteam_shared_memory",
        "ex1_redteam_signal_everyone",
        "ex1_redteam_raise_limits",
        "ex1_redteam_unreadable_name",
        // A PID namespace of the case's own hides every other process.
        "ex1_redteam_case_names",
        "ex1_redteam_proc_scan",
        // Kernel-enforced limits: the RLIMIT path (no memory cgroup).
        "ex1_hostile_memory_hog",
        "ex1_hostile_shared_memory_hog",
        "ex1_hostile_open_files",
        "ex1_hostile_file_size",
        "ex1_hostile_cpu_time",
        // Landlock does not cover chmod or utime: a read-only host does.
        "ex1_redteam_chmod_host",
    ];
    for name in hostile {
        let checkout = scratch.join(name);
        lay_out_fixture(&fixtures.join(name), &checkout).unwrap();
        let built = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--offline", "--manifest-path"])
            .arg(checkout.join("Cargo.toml"))
            .env_remove("CARGO_TARGET_DIR")
            .status()
            .unwrap();
        assert!(built.success(), "{name} does not build");
        std::fs::copy(
            checkout.join("target/debug/ex1_fibonacci_child"),
            bins.join("ex1_fibonacci_child"),
        )
        .unwrap();
        std::fs::copy(
            root().join("target/debug/spin_probe"),
            bins.join("spin_probe"),
        )
        .ok();
        let _ = Command::new("chmod")
            .args(["-R", "a+rX"])
            .arg(&*scratch)
            .status();
        // The binaries belonging to the keeper's uid, as when an ordinary
        // user grades: theirs to chmod, but for the sandbox.
        let owner = if name == "ex1_redteam_chmod_host" {
            "65534:65534"
        } else {
            "0:0"
        };
        let _ = Command::new("chown")
            .args(["-R", owner])
            .arg(&bins)
            .status();
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_xtask"));
        let run = run_keeper_on_fib_10(&mut command, &bins);
        let report = run.stdout();
        if let Err(why) = run
            .check_code(0)
            .and_then(|()| run.check_has(&report, "user_ns = true"))
            .and_then(|()| run.check_has(&report, "pid_ns = true"))
        {
            failures.push(format!("{name}: no sandboxed report{why}"));
        }
        if report.contains("GOT THROUGH") {
            failures.push(format!(
                "{name}: {}",
                run.differs(
                    "an attack got through as uid 65534",
                    "no GOT THROUGH",
                    &report
                )
            ));
        }
        let expect = std::fs::read_to_string(fixtures.join(name).join("expect.txt")).unwrap();
        // Attacks blocked, and limits named (the keeper reports the limit
        // itself, the grader adds "limit reached: "); `as user: ` lines
        // hold only here.
        let blocked = expect.lines().skip(1).filter_map(|l| {
            l.strip_prefix("limit reached: ")
                .or(l.strip_prefix("as user: "))
                .or(l.contains("blocked").then_some(l))
        });
        for wanted in blocked {
            if let Err(why) = run.check_has(&report, wanted) {
                failures.push(format!("{name}, as uid 65534: {why}"));
            }
        }
        // No program of the case may outlive its keeper.
        let survivors = running_from(&bins);
        if !survivors.is_empty() {
            failures.push(format!(
                "{name}: still running after its case, as uid 65534: {survivors:?}"
            ));
            for pid in survivors {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

/// Where no PID namespace can be made, a keeper says so and runs the case
/// as before. Made real here: the keeper runs in a user namespace whose
/// `max_pid_namespaces` its owner set to 0, as uid 65534 there (root's own
/// uid mapped: only a one-line map may be written from inside), so that it
/// takes the ordinary user's path.
#[test]
fn a_keeper_without_a_pid_namespace_says_so_and_still_runs_the_case() {
    use std::ffi::CString;
    use std::os::unix::process::CommandExt;
    if !nix_is_root() {
        eprintln!("skipped: needs root to own a user namespace with no PID namespaces");
        return;
    }
    let _one = one_at_a_time();
    let scratch = Scratch::new("no-pid-namespace");
    let bins = scratch.join("bins");
    std::fs::create_dir_all(&bins).unwrap();
    std::fs::copy(reference_ex1(), bins.join("ex1_fibonacci_child")).unwrap();
    let _ = Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(&*scratch)
        .status();
    // Written by the child between fork and exec: prepared here.
    let c = |text: &str| CString::new(text).unwrap();
    let writes = [
        (c("/proc/self/setgroups"), c("deny")),
        (c("/proc/self/uid_map"), c("65534 0 1")),
        (c("/proc/self/gid_map"), c("65534 0 1")),
        (c("/proc/sys/user/max_pid_namespaces"), c("0")),
    ];
    let mut keeper = Command::new(env!("CARGO_BIN_EXE_xtask"));
    // SAFETY: the closure runs in the forked child of this threaded test
    // and makes only raw system calls on memory prepared before the fork.
    unsafe {
        keeper.pre_exec(move || {
            use nix::libc;
            let fail = || Err(std::io::Error::last_os_error());
            if libc::unshare(libc::CLONE_NEWUSER) != 0 {
                return fail();
            }
            for (path, text) in &writes {
                let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                let len = text.as_bytes().len();
                if fd < 0 || libc::write(fd, text.as_ptr().cast(), len) != len as isize {
                    return fail();
                }
                libc::close(fd);
            }
            Ok(())
        });
    }
    let run = run_keeper_on_fib_10(&mut keeper, &bins);
    let survivors = running_from(&bins);
    let report = run.stdout();
    run.assert_code(0);
    for wanted in [
        "pid_ns = false",
        "user_ns = true",
        "no PID namespace (cannot make one (ENOSPC",
        "exit_code = 0",
        "leftovers = []",
    ] {
        if let Err(why) = run.check_has(&report, wanted) {
            panic!("{why}");
        }
    }
    assert!(survivors.is_empty(), "still running: {survivors:?}");
}

/// Runs a case helper (`command`, the xtask binary or a wrapper ending in
/// it) on step 1's fib_10 case with the binaries in `bins`, sending the
/// request on stdin as the grader does (no case file named on a command
/// line), and removes its scratch directory afterwards: hidden from it
/// under its own /tmp, that is left to whoever started it.
fn run_keeper_on_fib_10(command: &mut Command, bins: &Path) -> Run {
    let request = format!(
        "case = {:?}\nbins = {:?}\nprobe = {:?}\nsuffix = \"\"\nstep = \"ex1_fibonacci_child\"\ntrace = true\n",
        root().join("tests/ex1_fibonacci_child/fib_10.toml"),
        bins,
        bins.join("spin_probe"),
    );
    command
        .arg("grade-case")
        .current_dir("/")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut keeper = command.spawn().unwrap();
    {
        use std::io::Write;
        let mut stdin = keeper.stdin.take().unwrap();
        stdin.write_all(request.as_bytes()).unwrap();
    }
    let keeper_pid = keeper.id();
    let run = Run {
        command: common::command_line(command),
        output: keeper.wait_with_output().unwrap(),
    };
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!("xtask-grade-{keeper_pid}")));
    run
}

/// Processes whose executable lies in `dir`, whatever they call themselves.
fn running_from(dir: &Path) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let state = std::fs::read(entry.path().join("stat")).unwrap_or_default();
        let zombie = state
            .iter()
            .rposition(|&b| b == b')')
            .is_some_and(|close| state.get(close + 2) == Some(&b'Z'));
        let exe = std::fs::read_link(entry.path().join("exe"));
        if !zombie && exe.is_ok_and(|exe| exe.starts_with(dir)) {
            found.push(pid);
        }
    }
    found
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        .unwrap_or(false)
}
