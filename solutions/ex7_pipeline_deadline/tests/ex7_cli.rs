//! Runs the reference ex7 as a real process: a pipeline in time, one past
//! its deadline, a stage that ignores SIGTERM, Ctrl-C and SIGTERM, bad
//! usage, and that nothing is left behind.

use labcheck::{Bindings, LabCommand};
use nix::sys::signal::Signal;

fn ex7() -> LabCommand {
    LabCommand::new(env!("CARGO_BIN_EXE_ex7_pipeline_deadline_solution"))
}

#[test]
fn a_pipeline_in_time_passes_the_data_through_every_stage() {
    let outcome = ex7()
        .args([
            "--deadline",
            "20",
            "--",
            "sort",
            "|",
            "tr",
            "a-z",
            "A-Z",
            "|",
            "head",
            "-n",
            "2",
        ])
        .run_with_stdin("cherry\nbanana\napple\n");
    outcome
        .assert_exit_code(0)
        .assert_nothing_left()
        // The stages print while the program does: its lines are in
        // order among themselves, theirs among theirs.
        .expect_role(
            "pipeline",
            &[
                "pipeline {pid:main}: stage 1 is {pid:s1}: sort",
                "pipeline {pid:main}: stage 2 is {pid:s2}: tr a-z A-Z",
                "pipeline {pid:main}: stage 3 is {pid:s3}: head -n 2",
                "pipeline {pid:main}: 3 stages in process group {pid:s1}, deadline 20.0 s",
                "pipeline {pid:main}: stage 1 (child {pid:s1}) exited with status 0",
                "pipeline {pid:main}: stage 2 (child {pid:s2}) exited with status 0",
                "pipeline {pid:main}: stage 3 (child {pid:s3}) exited with status 0",
                "pipeline {pid:main}: finished in time, exit status 0",
            ],
            &mut Bindings::new(),
        );
    assert!(outcome.line_index("APPLE") < outcome.line_index("BANANA"));
}

#[test]
fn the_deadline_ends_the_whole_group() {
    let outcome = ex7()
        .args([
            "--deadline",
            "0.3",
            "--",
            "sh",
            "-c",
            "echo tick; exec sleep 30",
            "|",
            "cat",
        ])
        .run();
    outcome
        .assert_exit_code(124)
        .assert_nothing_left()
        .expect_role(
            "pipeline",
            &[
                "pipeline {pid:main}: stage 1 is {pid:s1}: sh -c echo tick; exec sleep 30",
                "pipeline {pid:main}: stage 2 is {pid:s2}: cat",
                "pipeline {pid:main}: 2 stages in process group {pid:s1}, deadline 0.3 s",
                "pipeline {pid:main}: deadline of 0.3 s passed: sending SIGTERM to process group {pid:s1}",
                "pipeline {pid:main}: stage 1 (child {pid:s1}) was killed by SIGTERM",
                "pipeline {pid:main}: stage 2 (child {pid:s2}) was killed by SIGTERM",
                "pipeline {pid:main}: timed out, exit status 124",
            ],
            &mut Bindings::new(),
        );
    outcome.line_index("tick");
}

#[test]
fn a_stage_that_ignores_sigterm_gets_sigkill_after_the_grace() {
    let outcome = ex7()
        .args([
            "--deadline",
            "0.3",
            "--grace",
            "0.2",
            "--",
            "sh",
            "-c",
            "trap '' TERM; echo ready; exec sleep 30",
        ])
        .run();
    outcome
        .assert_exit_code(124)
        .assert_nothing_left()
        .expect_role(
            "pipeline",
            &[
                "pipeline {pid:main}: stage 1 is {pid:s1}: {any}",
                "pipeline {pid:main}: 1 stage in process group {pid:s1}, deadline 0.3 s",
                "pipeline {pid:main}: deadline of 0.3 s passed: sending SIGTERM to process group {pid:s1}",
                "pipeline {pid:main}: grace of 0.2 s passed: sending SIGKILL to process group {pid:s1}",
                "pipeline {pid:main}: stage 1 (child {pid:s1}) was killed by SIGKILL",
                "pipeline {pid:main}: timed out, exit status 124",
            ],
            &mut Bindings::new(),
        );
}

#[test]
fn ctrl_c_reaches_the_program_which_ends_the_pipeline() {
    let mut run = ex7()
        .args(["--", "sh", "-c", "echo tick; exec sleep 30", "|", "cat"])
        .start();
    run.wait_for_line("tick");
    // The terminal's Ctrl-C: our group only; the stages have their own.
    run.signal_group(Signal::SIGINT);
    run.wait_for_line("pipeline {int}: stopped by SIGINT: sending SIGTERM to process group {int}");
    run.finish()
        .assert_exit_code(130)
        .assert_nothing_left()
        .expect_role(
            "pipeline",
            &[
                "pipeline {pid:main}: stage 1 is {pid:s1}: {any}",
                "pipeline {pid:main}: stage 2 is {pid:s2}: cat",
                "pipeline {pid:main}: 2 stages in process group {pid:s1}, deadline 10.0 s",
                "pipeline {pid:main}: stopped by SIGINT: sending SIGTERM to process group {pid:s1}",
                "pipeline {pid:main}: stage 1 (child {pid:s1}) was killed by SIGTERM",
                "pipeline {pid:main}: stage 2 (child {pid:s2}) was killed by SIGTERM",
                "pipeline {pid:main}: stopped by SIGINT, exit status 130",
            ],
            &mut Bindings::new(),
        );
}

#[test]
fn sigterm_ends_the_pipeline_too() {
    let mut run = ex7()
        .args(["--", "sh", "-c", "echo tick; exec sleep 30"])
        .start();
    run.wait_for_line("tick");
    run.signal(Signal::SIGTERM);
    run.finish().assert_exit_code(143).assert_nothing_left();
}

#[test]
fn the_exit_status_is_the_last_stages() {
    ex7()
        .args(["--", "true", "|", "sh", "-c", "exit 7"])
        .run()
        .assert_exit_code(7)
        .assert_nothing_left();
    ex7()
        .args(["--", "true", "|", "sh", "-c", "kill -TERM $$"])
        .run()
        .assert_exit_code(143)
        .assert_nothing_left();
}

#[test]
fn a_missing_program_exits_127() {
    let outcome = ex7().args(["--", "no-such-program-here"]).run();
    outcome
        .assert_exit_code(127)
        .assert_nothing_left()
        .expect_one_line_error(
            "ex7_pipeline_deadline: cannot run no-such-program-here: No such file or directory",
        );
}

#[test]
fn bad_usage_is_one_line_and_exit_2() {
    for (args, error) in [
        (&["--", "cat", "|", "|", "cat"][..], "stage 2 is empty"),
        (&["cat"][..], "unexpected argument \"cat\" before `--`"),
        (&["--deadline", "-1", "--", "cat"][..], "--deadline needs"),
        (&[][..], "no pipeline"),
    ] {
        ex7()
            .args(args)
            .run()
            .assert_exit_code(2)
            .assert_nothing_left()
            .expect_one_line_error(&format!("ex7_pipeline_deadline: {error}{{any}}"));
    }
}
