//! Runs the reference ex8 as a real process: the waiters, the three
//! counters on one CPU, Ctrl-C and SIGTERM, bad usage.

use labcheck::{Bindings, LabCommand};
use nix::libc;
use nix::sys::signal::Signal;

fn ex8() -> LabCommand {
    LabCommand::new(env!("CARGO_BIN_EXE_ex8_threads_lock_solution"))
}

#[test]
fn waiters_are_woken_in_turn_and_the_safe_counters_are_exact() {
    let outcome = ex8()
        .args(["--waiters", "3", "--threads", "2", "--increments", "5000"])
        .run();
    outcome
        .assert_exit_code(0)
        .assert_nothing_left()
        .expect_stdout_lines(
            &[
                "main {pid:main}: 3 waiters blocked in poll, computing",
                "main {pid:main}: 17984 primes below 200000, while the waiters waited",
                "waiter 1 (thread {int}): woken by main",
                "waiter 2 (thread {int}): woken by main",
                "waiter 3 (thread {int}): woken by main",
                "counter racy: {int} of 10000, {int} lost",
                "counter atomic: 10000 of 10000, 0 lost",
                "counter locked: 10000 of 10000, 0 lost",
            ],
            &mut Bindings::new(),
        );
}

#[test]
fn on_one_cpu_with_a_yield_the_racy_counter_loses_updates() {
    // A child inherits the affinity of the thread that forks it: this
    // test's thread alone is pinned, for the run, then set free again.
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: affinity calls on this thread (0) with sets of the right
    // size; a zeroed cpu_set_t is an empty set.
    let free = unsafe {
        let mut free: libc::cpu_set_t = std::mem::zeroed();
        assert_eq!(libc::sched_getaffinity(0, size, &mut free), 0);
        let cpu = (0..libc::CPU_SETSIZE as usize)
            .find(|&c| libc::CPU_ISSET(c, &free))
            .unwrap();
        let mut one: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut one);
        assert_eq!(libc::sched_setaffinity(0, size, &one), 0);
        free
    };
    let outcome = ex8()
        .args(["--waiters", "0", "--primes-below", "10"])
        .args(["--threads", "4", "--increments", "20000", "--yield"])
        .run();
    // SAFETY: as above.
    unsafe { libc::sched_setaffinity(0, size, &free) };
    outcome
        .assert_exit_code(0)
        .assert_nothing_left()
        .expect_role(
            "counter",
            &[
                "counter racy: {int} of 80000, {re:[1-9][0-9]*} lost",
                "counter atomic: 80000 of 80000, 0 lost",
                "counter locked: 80000 of 80000, 0 lost",
            ],
            &mut Bindings::new(),
        );
    // What the program says it lost adds up.
    let racy = outcome.role_lines("counter")[0].to_string();
    let numbers: Vec<u64> = racy
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    assert_eq!(numbers[0] + numbers[2], numbers[1], "{racy}");
}

#[test]
fn ctrl_c_during_the_computation_joins_the_waiters() {
    for (signal, code, name) in [
        (Signal::SIGINT, 130, "SIGINT"),
        (Signal::SIGTERM, 143, "SIGTERM"),
    ] {
        let mut run = ex8()
            .args(["--waiters", "2", "--primes-below", "1000000000000"])
            .start();
        run.wait_for_line("main {int}: 2 waiters blocked in poll, computing");
        run.signal(signal);
        run.wait_for_line(&format!("main {{int}}: stopped by {name}"));
        run.finish()
            .assert_exit_code(code)
            .assert_nothing_left()
            .expect_role(
                "waiter",
                &[
                    "waiter 1 (thread {int}): woken by main",
                    "waiter 2 (thread {int}): woken by main",
                ],
                &mut Bindings::new(),
            );
    }
}

#[test]
fn bad_usage_is_one_line_and_exit_2() {
    for (args, error) in [
        (
            &["--threads", "0"][..],
            "--threads needs a whole number from 1 to 64, got \"0\"",
        ),
        (&["--waiters"][..], "--waiters needs a number"),
        (&["--fast"][..], "unexpected argument \"--fast\""),
    ] {
        ex8()
            .args(args)
            .run()
            .assert_exit_code(2)
            .assert_nothing_left()
            .expect_one_line_error(&format!("ex8_threads_lock: {error}{{any}}"));
    }
}
