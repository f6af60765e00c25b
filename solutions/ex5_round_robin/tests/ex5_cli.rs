//! Runs the reference ex5 coordinator as a real process: one program at a
//! time (checked from the workers' own timestamps), early exits, schedule
//! errors, shutdown by signal, and that nothing is left behind.

use std::collections::BTreeMap;
use std::path::Path;

use labcheck::{Bindings, LabCommand, Outcome, ScratchDir};
use nix::sys::signal::Signal;

fn ex5() -> LabCommand {
    LabCommand::new(env!("CARGO_BIN_EXE_ex5_round_robin_solution"))
}

/// Worker samples `(unix time, pid)` from `worker PID: TIME` lines.
fn samples(outcome: &Outcome) -> Vec<(f64, i32)> {
    let mut samples: Vec<(f64, i32)> = outcome
        .role_lines("worker")
        .iter()
        .filter_map(|line| {
            let (pid, time) = line["worker ".len()..].split_once(": ")?;
            Some((time.parse().ok()?, pid.parse().ok()?))
        })
        .collect();
    samples.sort_by(|a, b| a.0.total_cmp(&b.0));
    samples
}

/// Runs of consecutive samples from the same worker. If exactly one worker
/// runs at a time, there can be no more runs than slices.
fn runs(samples: &[(f64, i32)]) -> usize {
    samples.windows(2).filter(|w| w[0].1 != w[1].1).count() + usize::from(!samples.is_empty())
}

/// The slice count per program name, from the report table.
fn slices_per_program(outcome: &Outcome) -> BTreeMap<String, usize> {
    let start = outcome.line_index("  program {any}");
    outcome.stdout_lines[start + 1..]
        .iter()
        .take_while(|l| !l.trim_start().starts_with("slice length error"))
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols[0].to_string(), cols[2].parse().unwrap())
        })
        .collect()
}

#[test]
fn copies_take_turns() {
    let outcome = ex5()
        .args([
            "--copies",
            "3",
            "--slice",
            "20ms",
            "--",
            "print_time",
            "0.002",
            "0.4",
        ])
        .run();
    let mut pids = Bindings::new();
    outcome.assert_exit_code(0).assert_nothing_left().expect_role(
        "coordinator",
        &[
            "coordinator {pid:me}: started 3 programs, all stopped: print_time#1 {pid:1}, print_time#2 {pid:2}, print_time#3 {pid:3}",
            "coordinator {pid:me}: print_time#{int} ({int}) exited with status 0",
            "coordinator {pid:me}: print_time#{int} ({int}) exited with status 0",
            "coordinator {pid:me}: print_time#{int} ({int}) exited with status 0",
            "coordinator {pid:me}: report after {float} {re:s|ms}",
        ],
        &mut pids,
    );
    assert_eq!(pids["me"], outcome.pid);
    let samples = samples(&outcome);
    let workers: std::collections::BTreeSet<i32> = samples.iter().map(|s| s.1).collect();
    let expected: std::collections::BTreeSet<i32> =
        ["1", "2", "3"].iter().map(|k| pids[*k]).collect();
    assert_eq!(
        workers, expected,
        "every program ran, and only they printed"
    );
    let slices: usize = slices_per_program(&outcome).values().sum();
    assert!(
        runs(&samples) <= slices,
        "{} runs of samples but only {slices} slices: two programs ran at once\n{}",
        runs(&samples),
        outcome.describe()
    );
    outcome.line_index("  slice length error |real - configured| over {int} full slices: median {any}, p99 {any}, max {any}");
    outcome.line_index("  timeline: {any} per column, {any} in all");
    outcome.line_index("  print_time#1 |{re:[#.]+}|");
}

#[test]
fn the_demo_runs_on_its_defaults() {
    let outcome = ex5().run();
    outcome.assert_exit_code(0).assert_nothing_left();
    outcome.line_index("coordinator {int}: started 3 programs, all stopped: {any}");
    assert_eq!(slices_per_program(&outcome).len(), 3);
}

#[test]
fn a_frame_schedule_runs_its_windows() {
    let scratch = ScratchDir::new("ex5-frame");
    let schedule = scratch.path().join("frame.toml");
    std::fs::write(
        &schedule,
        r#"
major_frame = "50ms"

[[program]]
name = "left"
command = ["print_time", "0.002", "0.3"]

[[program]]
name = "right"
command = ["print_time", "0.002", "0.3"]

[[window]]
program = "right"
start = "25ms"
duration = "20ms"

[[window]]
program = "left"
start = "0ms"
duration = "20ms"
"#,
    )
    .unwrap();
    let outcome = ex5().arg(&schedule).run();
    outcome.assert_exit_code(0).assert_nothing_left();
    let slices: usize = slices_per_program(&outcome).values().sum();
    let samples = samples(&outcome);
    assert!(runs(&samples) <= slices, "{}", outcome.describe());
}

#[test]
fn an_early_exit_hands_over_at_once() {
    // Slices of 30 s: if an exit did not hand over at once, this would run
    // for a minute. The check is on run time in the report, which a correct
    // coordinator keeps far below one slice.
    let outcome = ex5()
        .args([
            "--copies", "2", "--slice", "30s", "--", "sh", "-c", "exit 3",
        ])
        .run();
    outcome.assert_exit_code(1).assert_nothing_left();
    let table = outcome.line_index("  program {any}");
    for line in &outcome.stdout_lines[table + 1..table + 3] {
        assert!(line.ends_with("exited with status 3"), "{line}");
        assert!(!line.contains(" s "), "a whole second of run time: {line}");
    }
    outcome.line_index("  slice length error: no slice ran to its deadline");
}

#[test]
fn ctrl_c_and_sigterm_stop_everything() {
    for (signal, group) in [(Signal::SIGINT, true), (Signal::SIGTERM, false)] {
        // Programs that ignore SIGTERM (once they have exec'd: before that,
        // SIGTERM kills them) and start a child of their own.
        let mut run = ex5()
            .args([
                "--copies",
                "3",
                "--slice",
                "5ms",
                "--",
                "sh",
                "-c",
                "trap '' TERM; sleep 60 & while :; do :; done",
            ])
            .start();
        run.wait_for_line("coordinator {int}: started 3 programs{any}");
        if group {
            run.signal_group(signal);
        } else {
            run.signal(signal);
        }
        let outcome = run.finish();
        outcome
            .assert_exit_code(128 + signal as i32)
            .assert_nothing_left();
        outcome.line_index(&format!(
            "coordinator {{int}}: {signal}: stopping every program"
        ));
        let killed = outcome
            .role_lines("coordinator")
            .iter()
            .filter(|l| l.contains("was killed by SIG"))
            .count();
        assert_eq!(killed, 3, "{}", outcome.describe());
    }
}

fn expect_schedule_error(dir: &Path, text: &str, message: &str) {
    let path = dir.join("schedule.toml");
    std::fs::write(&path, text).unwrap();
    let outcome = ex5().arg(&path).run();
    outcome
        .assert_exit_code(2)
        .assert_nothing_left()
        .expect_one_line_error(&format!("ex5_round_robin: {}{message}", path.display()));
}

#[test]
fn unusable_schedules_name_the_line() {
    let scratch = ScratchDir::new("ex5-bad");
    let dir = scratch.path();
    let program = "[[program]]\nname = \"a\"\ncommand = [\"true\"]\n";
    expect_schedule_error(dir, "", ": no [[program]] given: nothing to run");
    expect_schedule_error(dir, "[[program]\n", ":1: {any}");
    expect_schedule_error(
        dir,
        "[[program]]\ncommand = [\"true\"]\nslise = \"2ms\"\n",
        ":3: unknown field `slise`{any}",
    );
    expect_schedule_error(
        dir,
        "[[program]]\ncommand = [\"true\"]\n",
        ":1: program \"true\" needs a `slice`{any}",
    );
    expect_schedule_error(
        dir,
        "[[program]]\ncommand = [\"true\"]\nslice = \"20\"\n",
        ":3: slice needs a unit{any}",
    );
    expect_schedule_error(
        dir,
        "[[program]]\ncommand = []\nslice = \"2ms\"\n",
        ":1: `command` must name a program to run",
    );
    expect_schedule_error(
        dir,
        &format!("major_frame = \"100ms\"\n{program}[[window]]\nprogram = \"a\"\nstart = \"0ms\"\nduration = \"60ms\"\n[[window]]\nprogram = \"a\"\nstart = \"50ms\"\nduration = \"10ms\"\n"),
        ":9: this window (50.000 ms to 60.000 ms) overlaps the one on line 5 (0 ms to 60.000 ms)",
    );
    expect_schedule_error(
        dir,
        &format!("major_frame = \"100ms\"\n{program}[[window]]\nprogram = \"a\"\nstart = \"90ms\"\nduration = \"20ms\"\n"),
        ":5: window 90.000 ms + 20.000 ms ends at 110.000 ms, past the major frame of 100.000 ms",
    );
    expect_schedule_error(
        dir,
        &format!("major_frame = \"100ms\"\n{program}[[window]]\nprogram = \"b\"\nstart = \"0ms\"\nduration = \"20ms\"\n"),
        ":6: no program is named \"b\" (known: a)",
    );
    let path = dir.join("missing.toml");
    std::fs::write(
        &path,
        "\n[[program]]\nname = \"a\"\ncommand = [\"/no/such/program\"]\nslice = \"5ms\"\n",
    )
    .unwrap();
    ex5().arg(&path).run().assert_exit_code(2).expect_one_line_error(
        "ex5_round_robin: program a (line 2): command \"/no/such/program\" not found or not executable",
    );
}

#[test]
fn bad_command_lines_are_usage_errors() {
    let cases: &[(&[&str], &str)] = &[
        (&["/no/such/schedule.toml"], "/no/such/schedule.toml: cannot read{any}"),
        (&["--copies", "0", "--slice", "5ms", "--", "true"], "--copies must be between 1 and 64, got 0"),
        (&["--copies", "x"], "--copies needs a whole number, got \"x\""),
        (&["--copies", "2", "--slice", "5", "--", "true"], "--slice needs a unit{any}"),
        (&["--copies", "2", "--slice", "1us", "--", "true"], "--slice must be between{any}"),
        (&["--copies", "2", "--slice", "5ms"], "--copies and --slice need a command after `--`{any}"),
        (&["--copies", "2", "--slice", "5ms", "--"], "missing the command to run after `--`"),
        (&["--copies", "2", "--slice", "5ms", "--", "no-such-command-here"], "program no-such-command-here#1: command \"no-such-command-here\" not found or not executable"),
        (&["--frobnicate"], "unknown option \"--frobnicate\"{any}"),
    ];
    for (args, message) in cases {
        let outcome = ex5().args(*args).run();
        outcome
            .assert_exit_code(2)
            .assert_nothing_left()
            .expect_one_line_error(&format!("ex5_round_robin: {message}"));
        assert!(outcome.stdout_lines.is_empty(), "{}", outcome.describe());
    }
}

#[test]
fn what_programs_leave_behind_is_cleaned_up() {
    // Each program starts a background child and exits: as subreaper the
    // coordinator gets those orphans, and kills them at the end.
    let outcome = ex5()
        .args([
            "--copies",
            "2",
            "--slice",
            "20ms",
            "--",
            "sh",
            "-c",
            "sleep 60 & exit 0",
        ])
        .run();
    outcome.assert_exit_code(0).assert_nothing_left();
    outcome.line_index("coordinator {int}: killed 2 process(es) the programs left behind");
}
