//! Runs reference ex4 members as unrelated processes (each in a session of
//! its own) that meet in a room directory: talking, joining and leaving,
//! stale and hostile files in the room, signals, and idle CPU use.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use labcheck::{LabCommand, LiveRun, ScratchDir};
use nix::sys::signal::Signal;
use nix::sys::stat::Mode;

fn member(name: &str, room: &Path) -> LabCommand {
    LabCommand::new(env!("CARGO_BIN_EXE_ex4_named_pipe_chat_solution"))
        .arg(name)
        .arg("--room")
        .arg(room)
}

fn join(name: &str, room: &Path) -> LiveRun {
    let mut run = member(name, room).start();
    run.wait_for_line(&format!("member {{int}} ({name}): joined room {{any}}"));
    run
}

fn room_in(scratch: &ScratchDir) -> PathBuf {
    scratch.path().join("room")
}

fn fifos_in(room: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(room) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

#[test]
fn two_members_talk_and_leave() {
    let scratch = ScratchDir::new("ex4-two");
    let room = room_in(&scratch);
    let mut alice = join("alice", &room);
    let mut bob = join("bob", &room);
    alice.wait_for_line("* bob joined");
    assert_eq!(fifos_in(&room), ["alice.fifo", "bob.fifo"]);
    let mode = std::fs::metadata(&room).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "the room must be private");
    let fifo_mode = std::fs::metadata(room.join("bob.fifo"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(fifo_mode & 0o777, 0o600, "inboxes must be private");

    bob.send_line("hi alice");
    alice.wait_for_line("bob: hi alice");
    alice.send_line("hello bob");
    bob.wait_for_line("alice: hello bob");
    alice.send_line("/quit");
    bob.wait_for_line("* alice left");
    let alice = alice.finish();
    alice
        .assert_exit_code(0)
        .assert_nothing_left()
        .line_index("member {int} (alice): left (/quit); removed {any}alice.fifo");
    assert_eq!(fifos_in(&room), ["bob.fifo"]);
    let bob = bob.finish(); // stdin closed: end of input
    bob.assert_exit_code(0).assert_nothing_left();
    bob.line_index("member {int} (bob): left (end of input); removed {any}");
    assert!(!room.exists(), "the last member out removes the empty room");
}

#[test]
fn everyone_else_hears_each_line() {
    let scratch = ScratchDir::new("ex4-three");
    let room = room_in(&scratch);
    let mut a = join("a", &room);
    let mut b = join("b", &room);
    let mut c = join("c", &room);
    a.wait_for_line("* c joined");
    b.wait_for_line("* c joined");
    c.send_line("one line for all");
    a.wait_for_line("c: one line for all");
    b.wait_for_line("c: one line for all");
    for run in [a, b] {
        run.finish().assert_exit_code(0).assert_nothing_left();
    }
    let c = c.finish();
    c.assert_exit_code(0).assert_nothing_left();
    assert!(
        !c.stdout_lines.iter().any(|l| l.starts_with("c: ")),
        "a member does not hear its own lines\n{}",
        c.describe()
    );
}

#[test]
fn long_lines_arrive_in_atomic_pieces() {
    let scratch = ScratchDir::new("ex4-long");
    let room = room_in(&scratch);
    let mut a = join("a", &room);
    let mut b = join("b", &room);
    a.wait_for_line("* b joined");
    let text = "x".repeat(10_000);
    b.send_line(&text);
    b.send_line("done");
    a.wait_for_line("b: done");
    let b = b.finish();
    let a = a.finish();
    let pieces: Vec<&str> = a
        .stdout_lines
        .iter()
        .filter(|l| l.starts_with("b: x"))
        .map(|l| l.as_str())
        .collect();
    assert_eq!(pieces.len(), 3, "{}", a.describe());
    assert!(pieces.iter().all(|p| p.len() < 4096));
    assert_eq!(pieces.iter().map(|p| p.len() - 3).sum::<usize>(), 10_000);
    assert!(b.stderr.contains("sent in 3 parts"), "{}", b.describe());
}

#[test]
fn stale_and_foreign_files_neither_block_nor_break_the_room() {
    let scratch = ScratchDir::new("ex4-stale");
    let room = room_in(&scratch);
    let mut a = join("a", &room);
    // A crashed member's inbox: a FIFO nobody reads.
    nix::unistd::mkfifo(&room.join("ghost.fifo"), Mode::S_IRUSR | Mode::S_IWUSR).unwrap();
    // A regular file and a symlink posing as inboxes.
    std::fs::write(room.join("plain.fifo"), "untouched").unwrap();
    symlink(scratch.path().join("target"), room.join("link.fifo")).unwrap();
    std::fs::write(scratch.path().join("target"), "untouched").unwrap();

    let mut b = member("b", &room).start();
    // The stale inbox goes, said in one line; the hostile files stay.
    b.wait_for_line("member {int} (b): removed stale inboxes nobody was reading: ghost.fifo");
    b.wait_for_line("member {int} (b): joined room {any}; here already: a");
    a.wait_for_line("* b joined");
    b.send_line("still here");
    a.wait_for_line("b: still here");
    assert_eq!(
        std::fs::read_to_string(room.join("plain.fifo")).unwrap(),
        "untouched"
    );
    assert_eq!(
        std::fs::read_to_string(scratch.path().join("target")).unwrap(),
        "untouched"
    );

    // A new member may take the name.
    let mut ghost = join("ghost", &room);
    a.wait_for_line("* ghost joined");
    ghost.send_line("boo");
    b.wait_for_line("ghost: boo");

    // A name whose inbox is not a FIFO cannot be used.
    let plain = member("plain", &room).run();
    plain
        .assert_exit_code(1)
        .assert_nothing_left()
        .expect_one_line_error(
            "ex4_named_pipe_chat: {any}plain.fifo exists and is not a FIFO; refusing to touch it",
        );
    for run in [a, b, ghost] {
        run.finish().assert_exit_code(0).assert_nothing_left();
    }
    assert_eq!(fifos_in(&room), ["link.fifo", "plain.fifo"]);
}

#[test]
fn a_killed_members_inbox_is_removed_by_the_next_to_join() {
    let scratch = ScratchDir::new("ex4-killed");
    let room = room_in(&scratch);
    let mut stay = join("stay", &room);
    let doomed = join("doomed", &room);
    stay.wait_for_line("* doomed joined");
    doomed.signal(Signal::SIGKILL);
    doomed.finish().assert_killed_by(Signal::SIGKILL);
    assert_eq!(fifos_in(&room), ["doomed.fifo", "stay.fifo"], "left behind");

    let mut next = member("next", &room).start();
    next.wait_for_line(
        "member {int} (next): removed stale inboxes nobody was reading: doomed.fifo",
    );
    next.wait_for_line("member {int} (next): joined room {any}; here already: stay");
    assert_eq!(fifos_in(&room), ["next.fifo", "stay.fifo"]);
    next.finish().assert_exit_code(0).assert_nothing_left();
    let stay = stay.finish();
    stay.assert_exit_code(0).assert_nothing_left();
    assert!(
        !stay.stdout_lines.iter().any(|l| l.contains("stale")),
        "nothing was stale any more\n{}",
        stay.describe()
    );
    assert!(!room.exists(), "the last member out removes the room");
}

#[test]
fn a_killed_members_inbox_is_removed_by_the_last_to_leave() {
    let scratch = ScratchDir::new("ex4-killed-last");
    let room = room_in(&scratch);
    let mut stay = join("stay", &room);
    let doomed = join("doomed", &room);
    stay.wait_for_line("* doomed joined");
    doomed.signal(Signal::SIGKILL);
    doomed.finish().assert_killed_by(Signal::SIGKILL);
    let stay = stay.finish();
    stay.assert_exit_code(0).assert_nothing_left();
    let removed = stay
        .line_index("member {int} (stay): removed stale inboxes nobody was reading: doomed.fifo");
    let left = stay.line_index("member {int} (stay): left (end of input); removed {any}stay.fifo");
    assert!(removed < left, "{}", stay.describe());
    assert!(!room.exists(), "the last member out removes the room");
}

#[test]
fn a_live_name_is_taken() {
    let scratch = ScratchDir::new("ex4-taken");
    let room = room_in(&scratch);
    let alice = join("alice", &room);
    let second = member("alice", &room).run();
    second
        .assert_exit_code(1)
        .assert_nothing_left()
        .expect_one_line_error(
            "ex4_named_pipe_chat: the name alice is taken in {any}; pick another",
        );
    alice.finish().assert_exit_code(0);
}

#[test]
fn signals_leave_cleanly() {
    for (signal, group) in [
        (Signal::SIGTERM, false),
        (Signal::SIGINT, true),
        (Signal::SIGHUP, false),
    ] {
        let scratch = ScratchDir::new("ex4-signal");
        let room = room_in(&scratch);
        let mut stay = join("stay", &room);
        let go = join("go", &room);
        stay.wait_for_line("* go joined");
        if group {
            go.signal_group(signal);
        } else {
            go.signal(signal);
        }
        stay.wait_for_line("* go left");
        let outcome = go.finish();
        outcome.assert_exit_code(0).assert_nothing_left();
        outcome.line_index("member {int} (go): left (signal); removed {any}go.fifo");
        assert_eq!(fifos_in(&room), ["stay.fifo"], "after {signal}");
        stay.finish().assert_exit_code(0);
    }
}

#[test]
fn an_idle_member_uses_no_cpu() {
    let scratch = ScratchDir::new("ex4-idle");
    let room = room_in(&scratch);
    let idle = join("idle", &room);
    let ticks = |pid: i32| -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    };
    let before = ticks(idle.pid());
    std::thread::sleep(Duration::from_millis(500));
    let used = ticks(idle.pid()) - before;
    // CPU time, not wall time: a polling loop burns ~50 ticks here, a
    // member asleep in poll(2) burns none, however loaded the machine.
    assert!(
        used <= 2,
        "an idle member used {used} clock ticks of CPU in 0.5 s"
    );
    idle.finish().assert_exit_code(0);
}

#[test]
fn bad_names_and_rooms_are_refused() {
    let scratch = ScratchDir::new("ex4-bad");
    let bin = env!("CARGO_BIN_EXE_ex4_named_pipe_chat_solution");
    for args in [
        vec![],
        vec!["a b"],
        vec!["../x"],
        vec![""],
        vec!["x", "y"],
        vec!["x", "--room"],
        vec!["x", "--colour"],
    ] {
        let outcome = LabCommand::new(bin).args(&args).run();
        outcome.assert_exit_code(2).assert_nothing_left();
        outcome.expect_one_line_error("ex4_named_pipe_chat: {any}");
    }
    let open_room = scratch.path().join("open");
    std::fs::create_dir(&open_room).unwrap();
    std::fs::set_permissions(&open_room, std::fs::Permissions::from_mode(0o755)).unwrap();
    member("a", &open_room)
        .run()
        .assert_exit_code(1)
        .expect_one_line_error(
            "ex4_named_pipe_chat: room {any} is open to other users (mode 755){any}",
        );
    let linked = scratch.path().join("linked");
    symlink(&open_room, &linked).unwrap();
    member("a", &linked)
        .run()
        .assert_exit_code(1)
        .expect_one_line_error(
            "ex4_named_pipe_chat: room {any} is a symlink; refusing to follow it",
        );
    let file = scratch.path().join("file");
    std::fs::write(&file, "").unwrap();
    member("a", &file)
        .run()
        .assert_exit_code(1)
        .expect_one_line_error("ex4_named_pipe_chat: room {any} is not a directory");
    member("a", &scratch.path().join("no/such/dir"))
        .run()
        .assert_exit_code(1)
        .expect_one_line_error("ex4_named_pipe_chat: cannot create room {any}");
}
