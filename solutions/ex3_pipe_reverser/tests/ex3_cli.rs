//! Runs the reference ex3 as a real process: reversal, stop conditions,
//! bad input, a 1 MiB phrase, signals, and that nothing is left behind.

use labcheck::{Bindings, LabCommand};
use nix::sys::signal::Signal;

fn ex3() -> LabCommand {
    LabCommand::new(env!("CARGO_BIN_EXE_ex3_pipe_reverser_solution"))
}

#[test]
fn phrases_come_back_reversed_by_grapheme() {
    let outcome = ex3().run_with_stdin("hello\nnoe\u{308}l 👍🏽\n🇫🇷🇩🇪!\n\nend\nnever sent\n");
    let mut pids = Bindings::new();
    outcome
        .assert_exit_code(0)
        .assert_nothing_left()
        .expect_role(
            "parent",
            &[
                "parent {pid:parent}: forked child {pid:child}",
                "parent {pid:parent}: olleh",
                "parent {pid:parent}: 👍🏽 le\u{308}on",
                "parent {pid:parent}: !🇩🇪🇫🇷",
                "parent {pid:parent}: ",
                "parent {pid:parent}: child {pid:child} exited with status 0",
            ],
            &mut pids,
        )
        .expect_role(
            "child",
            &["child {pid:child} (parent {pid:parent}): reversed 4 phrases, got EOF, exiting"],
            &mut pids,
        );
    assert_eq!(pids["parent"], outcome.pid);
    assert!(
        !outcome.stdout_lines.iter().any(|l| l.contains("phrase>")),
        "no prompt on a pipe"
    );
    assert!(outcome.line_index("child {any}") < outcome.line_index("parent {any} exited {any}"));
}

#[test]
fn end_of_input_stops_too() {
    // No `end`, and the last line has no newline.
    ex3()
        .run_with_stdin("one\r\ntwo")
        .assert_exit_code(0)
        .assert_nothing_left()
        .expect_role(
            "parent",
            &[
                "parent {pid:parent}: forked child {pid:child}",
                "parent {pid:parent}: eno",
                "parent {pid:parent}: owt",
                "parent {pid:parent}: child {pid:child} exited with status 0",
            ],
            &mut Bindings::new(),
        );
    ex3()
        .run()
        .assert_exit_code(0)
        .assert_nothing_left()
        .expect_role(
            "child",
            &["child {int} (parent {int}): reversed 0 phrases, got EOF, exiting"],
            &mut Bindings::new(),
        );
}

#[test]
fn invalid_utf8_is_reported_and_skipped() {
    let outcome = ex3().run_with_stdin(b"abc\n\xff\xfe\ndef\n".to_vec());
    outcome
        .assert_exit_code(1)
        .assert_nothing_left()
        .expect_one_line_error("ex3_pipe_reverser: line 2 is not valid UTF-8; skipped")
        .expect_role(
            "parent",
            &[
                "parent {pid:parent}: forked child {pid:child}",
                "parent {pid:parent}: cba",
                "parent {pid:parent}: fed",
                "parent {pid:parent}: child {pid:child} exited with status 0",
            ],
            &mut Bindings::new(),
        );
}

#[test]
fn a_one_mebibyte_phrase_round_trips() {
    let phrase: String = (0..1024 * 1024 / 8)
        .map(|i| format!("{:07}é", i % 10_000_000))
        .collect();
    let expected: String = phrase.chars().rev().collect();
    let outcome = ex3().run_with_stdin(format!("{phrase}\nshort\n"));
    outcome.assert_exit_code(0).assert_nothing_left();
    let replies = outcome.role_lines("parent");
    let reply = replies[1].split_once(": ").unwrap().1;
    assert!(
        reply == expected,
        "the 1 MiB reply differs ({} bytes back)",
        reply.len()
    );
    assert_eq!(replies[2].split_once(": ").unwrap().1, "trohs");
}

#[test]
fn sigterm_while_waiting_for_input_shuts_down_cleanly() {
    let mut run = ex3().start();
    run.send_line("ping");
    run.wait_for_line("parent {int}: gnip");
    run.signal(Signal::SIGTERM);
    run.finish()
        .assert_exit_code(143)
        .assert_nothing_left()
        .expect_role(
            "parent",
            &[
                "parent {pid:parent}: forked child {pid:child}",
                "parent {pid:parent}: gnip",
                "parent {pid:parent}: child {pid:child} exited with status 0",
                "parent {pid:parent}: stopped by SIGTERM",
            ],
            &mut Bindings::new(),
        );
}

#[test]
fn ctrl_c_leaves_nothing_behind() {
    let mut run = ex3().start();
    run.send_line("ping");
    run.wait_for_line("parent {int}: gnip");
    // Like Ctrl-C at a terminal: the parent and the child both get SIGINT.
    run.signal_group(Signal::SIGINT);
    let outcome = run.finish();
    let mut bindings = Bindings::new();
    outcome
        .assert_exit_code(130)
        .assert_nothing_left()
        .expect_role(
            "parent",
            &[
                "parent {pid:parent}: forked child {pid:child}",
                "parent {pid:parent}: gnip",
                // The child ignores SIGINT: it ends on EOF, cleanly.
                "parent {pid:parent}: child {pid:child} exited with status 0",
                "parent {pid:parent}: stopped by SIGINT",
            ],
            &mut bindings,
        )
        .expect_role(
            "child",
            &["child {pid:child} (parent {pid:parent}): reversed 1 phrase, got EOF, exiting"],
            &mut bindings,
        );
}

#[test]
fn arguments_are_refused() {
    let outcome = ex3().arg("hello").run();
    outcome
        .assert_exit_code(2)
        .assert_nothing_left()
        .expect_one_line_error("ex3_pipe_reverser: unexpected argument \"hello\"{any}");
    assert!(outcome.stdout_lines.is_empty());
}
