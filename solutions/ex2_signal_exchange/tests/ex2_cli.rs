//! Runs the reference ex2 as a real process: the exchange itself, signals
//! from outside, bad input, and that nothing is left behind.

use labcheck::{Bindings, LabCommand};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn ex2() -> LabCommand {
    LabCommand::new(env!("CARGO_BIN_EXE_ex2_signal_exchange_solution"))
}

const PARENT_EXCHANGE: [&str; 4] = [
    "parent {pid:parent}: forked child {pid:child}, waiting for SIGUSR1",
    "parent {pid:parent}: got SIGUSR1 from process {pid:child}, my child",
    "parent {pid:parent}: sending SIGTERM to child {pid:child}",
    "parent {pid:parent}: child {pid:child} was killed by SIGTERM",
];

#[test]
fn child_signals_and_parent_kills_it() {
    for (delay, shown) in [("0.2", "0.2"), ("0", "0.0")] {
        let outcome = ex2().args(["--delay", delay]).run();
        let mut pids = Bindings::new();
        outcome
            .assert_exit_code(0)
            .assert_nothing_left()
            .expect_role("parent", &PARENT_EXCHANGE, &mut pids)
            .expect_role(
                "child",
                &[
                    &format!("child {{pid:child}} (parent {{pid:parent}}): sending SIGUSR1 to my parent in {shown} s"),
                    "child {pid:child} (parent {pid:parent}): sending SIGUSR1 now",
                ],
                &mut pids,
            );
        assert_eq!(pids["parent"], outcome.pid);
        assert!(
            outcome.line_index("child {any} now")
                < outcome.line_index("parent {any}: got SIGUSR1 {any}")
        );
    }
}

#[test]
fn default_delay_is_five_seconds() {
    // Only the announcement is checked: the test does not wait 5 s.
    let mut run = ex2().start();
    run.wait_for_line("child {int} (parent {int}): sending SIGUSR1 to my parent in 5.0 s");
    run.signal(Signal::SIGTERM);
    run.finish().assert_exit_code(143).assert_nothing_left();
}

#[test]
fn sigusr1_from_a_stranger_is_ignored() {
    let mut run = ex2().args(["--delay", "30"]).start();
    run.wait_for_line("parent {int}: forked child {int}, waiting for SIGUSR1");
    let _ = kill(Pid::from_raw(run.pid()), Signal::SIGUSR1);
    let me = std::process::id();
    run.wait_for_line(&format!(
        "parent {{int}}: ignoring SIGUSR1 from process {me}: it is not my child"
    ));
    run.signal(Signal::SIGTERM);
    run.finish()
        .assert_exit_code(143)
        .assert_nothing_left()
        .expect_role(
            "parent",
            &[
                "parent {pid:parent}: forked child {pid:child}, waiting for SIGUSR1",
                "parent {pid:parent}: ignoring SIGUSR1 from process {int}: it is not my child",
                "parent {pid:parent}: child {pid:child} was killed by SIGKILL",
                "parent {pid:parent}: stopped by SIGTERM",
            ],
            &mut Bindings::new(),
        );
}

#[test]
fn ctrl_c_leaves_nothing_behind() {
    let mut run = ex2().args(["--delay", "30"]).start();
    run.wait_for_line("parent {int}: forked child {int}, waiting for SIGUSR1");
    run.wait_for_line("child {int} (parent {int}): sending SIGUSR1 to my parent in 30.0 s");
    run.signal_group(Signal::SIGINT);
    run.finish()
        .assert_exit_code(130)
        .assert_nothing_left()
        .expect_role(
            "parent",
            &[
                "parent {pid:parent}: forked child {pid:child}, waiting for SIGUSR1",
                "parent {pid:parent}: child {pid:child} was killed by {re:SIGINT|SIGKILL}",
                "parent {pid:parent}: stopped by SIGINT",
            ],
            &mut Bindings::new(),
        );
}

#[test]
fn a_child_killed_from_outside_is_reported() {
    let mut run = ex2().args(["--delay", "30"]).start();
    let line =
        run.wait_for_line("child {int} (parent {int}): sending SIGUSR1 to my parent in 30.0 s");
    let child: i32 = line["child ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let _ = kill(Pid::from_raw(child), Signal::SIGKILL);
    run.finish()
        .assert_exit_code(1)
        .assert_nothing_left()
        .expect_role(
            "parent",
            &[
                "parent {pid:parent}: forked child {pid:child}, waiting for SIGUSR1",
                "parent {pid:parent}: child {pid:child} ended before it signalled",
                "parent {pid:parent}: child {pid:child} was killed by SIGKILL",
            ],
            &mut Bindings::new(),
        );
}

#[test]
fn bad_input_is_a_usage_error() {
    let cases: &[(&[&str], &str)] = &[
        (&["--delay"], "needs a number of seconds"),
        (&["--delay", "soon"], "needs a number of seconds"),
        (&["--delay", "-2"], "between 0 and"),
        (&["--delay", "NaN"], "between 0 and"),
        (&["--delay=99999"], "between 0 and"),
        (&["5"], "unexpected argument"),
    ];
    for (args, message) in cases {
        let outcome = ex2().args(*args).run();
        outcome
            .assert_exit_code(2)
            .assert_nothing_left()
            .expect_one_line_error(&format!("ex2_signal_exchange: {{any}}{message}{{any}}"));
        assert!(outcome.stdout_lines.is_empty(), "{}", outcome.describe());
    }
}
