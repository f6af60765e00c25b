//! Runs the reference ex6 as a real process: commands and their endings,
//! stops and continues sent from outside, the built-ins, Ctrl-C and
//! SIGTERM, and that nothing is left behind.

use labcheck::{Bindings, LabCommand};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn ex6() -> LabCommand {
    LabCommand::new(env!("CARGO_BIN_EXE_ex6_exit_statuses_solution"))
}

/// A command that says when it is running, then sleeps: signals sent after
/// its line reach the program, not a child that has not exec'd yet.
const SLEEPER: &str = "sh -c 'echo running; exec sleep 30'";

#[test]
fn each_ending_is_reported_as_waitpid_returned_it() {
    let outcome = ex6().run_with_stdin(
        "true\nfalse\nsh -c 'exit 3'\nsh -c 'kill -TERM $$'\nnosuch-command\n# a comment\n\n",
    );
    let mut pids = Bindings::new();
    outcome
        .assert_exit_code(0)
        .assert_nothing_left()
        .expect_role(
            "shell",
            &[
                "shell {pid:shell}: ready",
                "shell {pid:shell}: started {pid:a}: true",
                "shell {pid:shell}: child {pid:a} exited with status 0",
                "shell {pid:shell}: started {pid:b}: false",
                "shell {pid:shell}: child {pid:b} exited with status 1",
                "shell {pid:shell}: started {pid:c}: sh -c 'exit 3'",
                "shell {pid:shell}: child {pid:c} exited with status 3",
                "shell {pid:shell}: started {pid:d}: sh -c 'kill -TERM $$'",
                "shell {pid:shell}: child {pid:d} was killed by SIGTERM",
                "shell {pid:shell}: started {pid:e}: nosuch-command",
                "shell {pid:shell}: child {pid:e} exited with status 127",
                "shell {pid:shell}: end of input",
            ],
            &mut pids,
        )
        .expect_one_line_error("ex6_exit_statuses: nosuch-command: command not found");
    assert_eq!(pids["shell"], outcome.pid);
}

#[test]
fn a_file_that_is_not_executable_exits_126() {
    let outcome = ex6().run_with_stdin("/etc/passwd\n");
    let mut pids = Bindings::new();
    outcome
        .assert_exit_code(0)
        .assert_nothing_left()
        .expect_role(
            "shell",
            &[
                "shell {pid:shell}: ready",
                "shell {pid:shell}: started {pid:a}: /etc/passwd",
                "shell {pid:shell}: child {pid:a} exited with status 126",
                "shell {pid:shell}: end of input",
            ],
            &mut pids,
        )
        .expect_one_line_error("ex6_exit_statuses: /etc/passwd: cannot run it: Permission denied");
}

#[test]
fn a_stop_and_a_continue_are_reported_before_the_end() {
    let mut run = ex6().start();
    run.send_line(SLEEPER);
    run.wait_for_line("running");
    let started = run.wait_for_line("shell {int}: started {int}: {any}");
    let command: i32 = started
        .split(' ')
        .nth(3)
        .and_then(|pid| pid.trim_end_matches(':').parse().ok())
        .expect("the started line names the command's PID");
    let command = Pid::from_raw(command);
    kill(command, Signal::SIGSTOP).unwrap();
    run.wait_for_line(&format!(
        "shell {{int}}: child {command} was stopped by SIGSTOP"
    ));
    kill(command, Signal::SIGCONT).unwrap();
    run.wait_for_line(&format!("shell {{int}}: child {command} was continued"));
    kill(command, Signal::SIGKILL).unwrap();
    run.wait_for_line(&format!(
        "shell {{int}}: child {command} was killed by SIGKILL"
    ));
    run.send_line("exit 4");
    let outcome = run.finish();
    // The command prints while the shell does: its line may come before
    // or after the shell's `started` line.
    outcome.line_index("running");
    outcome
        .assert_exit_code(4)
        .assert_nothing_left()
        .expect_role(
            "shell",
            &[
                "shell {pid:shell}: ready",
                "shell {pid:shell}: started {pid:c}: sh -c 'echo running; exec sleep 30'",
                "shell {pid:shell}: child {pid:c} was stopped by SIGSTOP",
                "shell {pid:shell}: child {pid:c} was continued",
                "shell {pid:shell}: child {pid:c} was killed by SIGKILL",
                "shell {pid:shell}: exiting with status 4",
            ],
            &mut Bindings::new(),
        );
}

#[test]
fn cd_changes_the_directory_the_next_command_inherits() {
    let outcome = ex6().run_with_stdin("cd /usr\npwd\ncd /no/such/dir\nexit 7\npwd\n");
    outcome
        .assert_exit_code(7)
        .assert_nothing_left()
        .expect_role(
            "shell",
            &[
                "shell {pid:shell}: ready",
                "shell {pid:shell}: started {pid:p}: pwd",
                "shell {pid:shell}: child {pid:p} exited with status 0",
                "shell {pid:shell}: exiting with status 7",
            ],
            &mut Bindings::new(),
        )
        .expect_one_line_error("ex6_exit_statuses: cd: /no/such/dir: No such file or directory");
    // pwd's own line, in whatever order against the shell's.
    outcome.line_index("/usr");
}

#[test]
fn ctrl_c_ends_the_command_and_not_the_shell() {
    let mut run = ex6().start();
    run.send_line(SLEEPER);
    run.wait_for_line("running");
    run.signal_group(Signal::SIGINT);
    run.wait_for_line("shell {int}: child {int} was killed by SIGINT");
    run.close_stdin();
    run.finish().assert_exit_code(0).assert_nothing_left();
}

#[test]
fn sigterm_kills_the_running_command_first() {
    let mut run = ex6().start();
    run.send_line(SLEEPER);
    run.wait_for_line("running");
    run.signal(Signal::SIGTERM);
    run.wait_for_line("shell {int}: child {int} was killed by SIGKILL");
    run.wait_for_line("shell {int}: stopped by SIGTERM");
    run.finish().assert_exit_code(143).assert_nothing_left();
}

#[test]
fn sigterm_at_the_prompt_ends_the_shell() {
    let mut run = ex6().start();
    run.wait_for_line("shell {int}: ready");
    run.signal(Signal::SIGTERM);
    run.wait_for_line("shell {int}: stopped by SIGTERM");
    run.finish().assert_exit_code(143).assert_nothing_left();
}

#[test]
fn the_rest_of_stdin_belongs_to_the_command() {
    let outcome =
        ex6().run_with_stdin("sh -c 'read line; echo \"read: $line\"'\nfor the command\nexit 0\n");
    outcome
        .assert_exit_code(0)
        .assert_nothing_left()
        .expect_role("read:", &["read: for the command"], &mut Bindings::new());
}

#[test]
fn an_argument_is_a_usage_error() {
    ex6()
        .arg("--verbose")
        .run()
        .assert_exit_code(2)
        .assert_nothing_left()
        .expect_one_line_error("ex6_exit_statuses: unexpected argument \"--verbose\" {any}");
}
