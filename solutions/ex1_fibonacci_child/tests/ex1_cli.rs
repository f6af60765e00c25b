//! Runs the reference ex1 as a real process: output, exit status, signals,
//! and that nothing is left behind.

use labcheck::{Bindings, LabCommand};
use nix::sys::signal::Signal;

fn ex1() -> LabCommand {
    LabCommand::new(env!("CARGO_BIN_EXE_ex1_fibonacci_child_solution"))
}

#[test]
fn child_prints_the_sequence_and_parent_reports() {
    let outcome = ex1().arg("10").run();
    let mut pids = Bindings::new();
    outcome
        .assert_exit_code(0)
        .assert_nothing_left()
        .expect_role(
            "parent",
            &[
                "parent {pid:parent}: forked child {pid:child}",
                "parent {pid:parent}: child {pid:child} exited with status 0",
            ],
            &mut pids,
        )
        .expect_role(
            "child",
            &["child {pid:child} (parent {pid:parent}): 0 1 1 2 3 5 8 13 21 34 55"],
            &mut pids,
        );
    assert_eq!(
        pids["parent"], outcome.pid,
        "the parent line must show the real PID"
    );
    assert_ne!(pids["child"], pids["parent"]);
    // Causality: the report follows the child's output.
    assert!(outcome.line_index("child {any}") < outcome.line_index("parent {any} exited {any}"));
}

#[test]
fn smallest_and_largest_n() {
    ex1().arg("0").run().assert_exit_code(0).expect_role(
        "child",
        &["child {int} (parent {int}): 0"],
        &mut Bindings::new(),
    );
    let outcome = ex1().arg("186").run();
    outcome.assert_exit_code(0);
    let line = outcome.role_lines("child")[0];
    assert!(
        line.ends_with(
            " 205697230343233228174223751303346572685 332825110087067562321196029789634457848"
        ),
        "{line}"
    );
    assert_eq!(line.split(": ").nth(1).unwrap().split(' ').count(), 187);
}

#[test]
fn bad_input_is_a_usage_error() {
    let cases: &[(&[&str], &str)] = &[
        (&[], "missing N"),
        (&["abc"], "non-negative integer"),
        (&["1.5"], "non-negative integer"),
        (&["-3"], "must not be negative"),
        (&["187"], "at most 186"),
        (&["99999999999999999999"], "at most 186"),
        (&["5", "6"], "unexpected extra argument"),
        (&["5", "--sleep"], "needs a number of seconds"),
        (&["5", "--sleep", "soon"], "needs a number of seconds"),
        (&["5", "--sleep", "-1"], "between 0 and"),
        (&["5", "--sleep=inf"], "between 0 and"),
        (&["5", "--verbose"], "unknown option"),
    ];
    for (args, message) in cases {
        let outcome = ex1().args(*args).run();
        outcome
            .assert_exit_code(2)
            .assert_nothing_left()
            .expect_one_line_error(&format!("ex1_fibonacci_child: {{any}}{message}{{any}}"));
        assert!(outcome.stdout_lines.is_empty(), "{}", outcome.describe());
    }
}

#[test]
fn sleep_comes_before_the_numbers() {
    let outcome = ex1().args(["5", "--sleep", "0.2"]).run();
    outcome
        .assert_exit_code(0)
        .assert_nothing_left()
        .expect_role(
            "child",
            &[
                "child {pid:child} (parent {pid:parent}): sleeping 0.2 s (try `ps ax` now)",
                "child {pid:child} (parent {pid:parent}): 0 1 1 2 3 5",
            ],
            &mut Bindings::new(),
        );
}

#[test]
fn sigterm_to_the_parent_takes_the_child_down() {
    let mut run = ex1().args(["5", "--sleep", "30"]).start();
    run.wait_for_line("child {int} (parent {int}): sleeping {any}");
    run.wait_for_line("parent {int}: forked child {int}");
    run.signal(Signal::SIGTERM);
    let outcome = run.finish();
    outcome
        .assert_exit_code(128 + Signal::SIGTERM as i32)
        .assert_nothing_left()
        .expect_role(
            "parent",
            &[
                "parent {pid:parent}: forked child {pid:child}",
                "parent {pid:parent}: child {pid:child} was killed by SIGKILL",
                "parent {pid:parent}: stopped by SIGTERM",
            ],
            &mut Bindings::new(),
        );
}

#[test]
fn ctrl_c_leaves_nothing_behind() {
    let mut run = ex1().args(["5", "--sleep", "30"]).start();
    run.wait_for_line("child {int} (parent {int}): sleeping {any}");
    run.wait_for_line("parent {int}: forked child {int}");
    // The terminal sends SIGINT to the whole foreground process group.
    run.signal_group(Signal::SIGINT);
    let outcome = run.finish();
    outcome
        .assert_exit_code(128 + Signal::SIGINT as i32)
        .assert_nothing_left()
        .expect_role(
            "parent",
            &[
                "parent {pid:parent}: forked child {pid:child}",
                // The child may die of the SIGINT itself or of the parent's SIGKILL.
                "parent {pid:parent}: child {pid:child} was killed by {re:SIGINT|SIGKILL}",
                "parent {pid:parent}: stopped by SIGINT",
            ],
            &mut Bindings::new(),
        );
}
