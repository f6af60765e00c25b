//! Runs the reference ex9 as a real process: TCP and Unix-domain, many
//! clients, `--serve` ended by a signal, bad usage; and that no socket file
//! is left behind.

use labcheck::{Bindings, LabCommand};
use nix::sys::signal::Signal;

fn ex9() -> LabCommand {
    LabCommand::new(env!("CARGO_BIN_EXE_ex9_socket_server_solution"))
}

fn replies(clients: usize, lines: usize) -> Vec<String> {
    (1..=clients)
        .flat_map(|i| {
            (1..=lines).map(move |j| format!("client {i}: server got: client {i} line {j}"))
        })
        .collect()
}

#[test]
fn five_clients_over_tcp_each_get_their_replies() {
    let outcome = ex9().run();
    let expected = replies(5, 3);
    let patterns: Vec<&str> = expected.iter().map(String::as_str).collect();
    outcome
        .assert_exit_code(0)
        .assert_nothing_left()
        .expect_role("client", &patterns, &mut Bindings::new())
        .expect_role(
            "server",
            &[
                "server {pid:main}: listening on 127.0.0.1:{int}",
                "server {pid:main}: served 5 connections, closed",
            ],
            &mut Bindings::new(),
        );
}

#[test]
fn a_unix_socket_is_served_and_its_file_removed() {
    let dir = std::env::temp_dir().join(format!("ex9-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("chat.sock");
    let outcome = ex9()
        .args([
            "--unix",
            path.to_str().unwrap(),
            "--clients",
            "3",
            "--lines",
            "2",
        ])
        .run();
    let expected = replies(3, 2);
    let patterns: Vec<&str> = expected.iter().map(String::as_str).collect();
    outcome
        .assert_exit_code(0)
        .assert_nothing_left()
        .expect_role("client", &patterns, &mut Bindings::new());
    assert!(!path.exists(), "the socket file outlived the server");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_hundred_clients_are_all_answered() {
    let outcome = ex9().args(["--clients", "100", "--lines", "2"]).run();
    outcome.assert_exit_code(0).assert_nothing_left();
    assert_eq!(outcome.role_lines("client").len(), 200);
    outcome.line_index("server {int}: served 100 connections, closed");
}

#[test]
fn serve_ends_on_a_signal_and_removes_its_socket() {
    for (signal, code, name) in [
        (Signal::SIGINT, 130, "SIGINT"),
        (Signal::SIGTERM, 143, "SIGTERM"),
    ] {
        let dir = std::env::temp_dir().join(format!("ex9-serve-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("serve.sock");
        let mut run = ex9()
            .args(["--serve", "--unix", path.to_str().unwrap()])
            .start();
        run.wait_for_line("server {int}: listening on {any}");
        assert!(path.exists());
        run.signal(signal);
        run.wait_for_line(&format!(
            "server {{int}}: stopped by {name}, served 0 connections"
        ));
        run.finish().assert_exit_code(code).assert_nothing_left();
        assert!(!path.exists(), "the socket file outlived the server");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn bad_usage_is_one_line_and_exit_2() {
    for (args, error) in [
        (
            &["--clients", "0"][..],
            "--clients needs a whole number from 1 to 200, got \"0\"",
        ),
        (&["--unix"][..], "--unix needs a path"),
        (&["--port", "80"][..], "unexpected argument \"--port\""),
    ] {
        ex9()
            .args(args)
            .run()
            .assert_exit_code(2)
            .assert_nothing_left()
            .expect_one_line_error(&format!("ex9_socket_server: {error}{{any}}"));
    }
}
