//! Grading inside a container, as Gradescope and `docker run` give it: root,
//! but with Docker's default capabilities (no CAP_SYS_ADMIN, so no
//! namespace and no mount; no CAP_SYS_PTRACE) and read-only cgroups. The
//! grader must still grade, with the trace on, contain what it runs as far
//! as the remaining isolation (case uid, Landlock, rlimits) allows, and say
//! which isolation is missing; `--sandbox=require` must refuse.
//!
//! The container is made with util-linux alone: `unshare --mount` to make
//! the cgroup mounts read-only for this test only, then `setpriv` to keep
//! Docker's default capability set. Only as root; skipped otherwise.
//!
//! Rule: every test here that grades holds the one-grading-at-a-time lock
//! (`common::one_at_a_time`, which holds across test processes).

mod common;

use std::path::Path;
use std::process::Command;

use common::{lay_out_fixture, one_at_a_time, root, Run, Scratch};

/// Docker's default capabilities (moby's `DefaultCapabilities`).
const DOCKER_CAPABILITIES: &str = "-all,+chown,+dac_override,+fsetid,+fowner,+mknod,+net_raw,\
+setgid,+setuid,+setfcap,+setpcap,+net_bind_service,+sys_chroot,+kill,+audit_write";

/// `xtask grade ARGS` in a Docker-like container, from the workbook's root;
/// None when this machine cannot make one (not root, no util-linux).
fn grade_in_container(args: &[&str]) -> Option<Run> {
    grade_in_container_with(args, None, "")
}

/// [`grade_in_container`], with `TMPDIR` set to `tmpdir` and `setup` run
/// first in the container's mount namespace.
fn grade_in_container_with(args: &[&str], tmpdir: Option<&Path>, setup: &str) -> Option<Run> {
    let euid = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:").map(str::to_string))
        .and_then(|ids| ids.split_whitespace().nth(1).map(str::to_string));
    if euid.as_deref() != Some("0") {
        return None;
    }
    // Every cgroup mount read-only, as Docker mounts /sys/fs/cgroup, then
    // the capabilities cut down; the grader is exec'd last.
    let script = format!(
        "set -e\n{setup}\
         for m in $(findmnt -rn -t cgroup,cgroup2 -o TARGET); do mount -o remount,bind,ro \"$m\"; done\n\
         exec setpriv --bounding-set={DOCKER_CAPABILITIES} --inh-caps=-all -- \"$@\""
    );
    let mut command = Command::new("unshare");
    command
        .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(script)
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_xtask"))
        .arg("grade")
        .args(args)
        .current_dir(root())
        .env("NO_COLOR", "1");
    if let Some(dir) = tmpdir {
        command.env("TMPDIR", dir);
    }
    let output = command.output().ok()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("unshare failed") || stderr.contains("not found") {
        eprintln!("skipped: cannot make a container here: {stderr}");
        return None;
    }
    Some(Run {
        command: common::command_line(&command),
        output,
    })
}

#[test]
fn the_reference_passes_in_a_container_with_the_trace_on() {
    let _one = one_at_a_time();
    let Some(output) = grade_in_container(&["--solutions", "--jobs", "1"]) else {
        eprintln!("skipped: needs root, unshare, findmnt and setpriv");
        return;
    };
    let stdout = output.stdout();
    // The TCP cases need a network namespace of their own, which this
    // container cannot make: they say so, and every other case passes.
    let failing: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("  FAIL "))
        .collect();
    if failing.is_empty() {
        output.assert_code(0);
    } else {
        output.assert_code(1);
        for line in &failing {
            assert!(
                line.contains("needs a network namespace of its own"),
                "only the TCP cases may fail here: {line}{output}"
            );
        }
    }
    for step in common::STEPS.iter().filter(|s| **s != "ex9_socket_server") {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{step}: ")))
            .unwrap_or_default();
        assert!(
            line.contains(" cases passed") && line.contains("all "),
            "{step}: {line}{output}"
        );
    }
    let isolation = stdout.lines().next().unwrap_or_default();
    for wanted in ["sandbox: own uid", "landlock v", "rlimits", "missing: "] {
        assert!(isolation.contains(wanted), "lacks {wanted:?}: {isolation}");
    }
    assert!(
        !stdout.contains("ptrace is not permitted"),
        "the trace was lost{output}"
    );

    let refused = grade_in_container(&["ex1", "--solutions", "--sandbox", "require"]).unwrap();
    refused.assert_code(1);
    refused.assert_stderr_has("--sandbox=require");
}

/// A `TMPDIR` that only its owner may enter (a `mktemp -d` folder, a
/// private home, systemd's private temp): the cases' user, which is not
/// root, could reach no binary under it. The grader makes its scratch and
/// binary directories in /tmp instead, and says so; with /tmp closed too,
/// it stops at once with one line naming TMPDIR.
#[test]
fn a_tmpdir_closed_to_the_cases_user_still_grades_or_says_why_not() {
    use std::os::unix::fs::PermissionsExt;
    let _one = one_at_a_time();
    let private = Scratch::new("container-private-tmpdir");
    std::fs::set_permissions(&*private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let args = ["ex1", "--solutions", "--jobs", "1"];
    let Some(output) = grade_in_container_with(&args, Some(&private), "") else {
        eprintln!("skipped: needs root, unshare, findmnt and setpriv");
        return;
    };
    output.assert_code(0);
    output.assert_stdout_has("their binaries and scratch directories are in /tmp");
    output.assert_stdout_has("ex1_fibonacci_child: 10/10 points");
    let left: Vec<_> = std::fs::read_dir(&*private).unwrap().flatten().collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");

    // /tmp closed to others as well (a tmpfs of mode 0700 over it). The
    // real /tmp stays reachable under /mnt/tmp (a tmpfs of this mount
    // namespace over /mnt), where the workbook and the grader are then run
    // from, should they be under /tmp (a CI checkout).
    let closed = "mount -t tmpfs tmpfs /mnt\n\
                  mkdir /mnt/tmp\n\
                  mount --bind /tmp /mnt/tmp\n\
                  mount -t tmpfs -o mode=0700 tmpfs /tmp\n\
                  case \"$PWD\" in /tmp/*) cd \"/mnt$PWD\";; esac\n\
                  bin=\"$1\"; shift\n\
                  case \"$bin\" in /tmp/*) bin=\"/mnt$bin\";; esac\n\
                  set -- \"$bin\" \"$@\"\n";
    let output = grade_in_container_with(&args, Some(&private), closed).unwrap();
    output.assert_code(1);
    output.assert_stderr_has("TMPDIR (");
    output.assert_stderr_has("nor can /tmp: set TMPDIR to a directory every user may enter");
    assert_eq!(output.stderr().trim().lines().count(), 1, "{output}");
    assert!(!output.stdout().contains("points"), "{output}");
}

const EX1: &str = "ex1_fibonacci_child";

/// A submission made of a fixture's step sources.
fn submission_of(fixture: &str, class: &Path) {
    let laid_out = class.join(format!(".{fixture}-checkout"));
    lay_out_fixture(
        &root().join("xtask/tests/fixtures").join(fixture),
        &laid_out,
    )
    .unwrap();
    let into = class.join(fixture).join(EX1).join("src");
    std::fs::create_dir_all(&into).unwrap();
    for entry in std::fs::read_dir(laid_out.join("src")).unwrap().flatten() {
        std::fs::copy(entry.path(), into.join(entry.file_name())).unwrap();
    }
    std::fs::remove_dir_all(&laid_out).unwrap();
}

/// Gradescope's path (`--submission`, through a class): every attack that
/// the remaining isolation is meant to stop is stopped, the trace still
/// tells a fake from a correct variant, and the build says what it lacks.
#[test]
#[ignore = "full tier: cargo test -- --ignored"]
fn hostile_submissions_are_contained_in_a_container() {
    let _one = one_at_a_time();
    let class = Scratch::new("container-class");
    let out = Scratch::new("container-grades");
    // Stopped by the case uid, Landlock and rlimits, which a container
    // keeps; not the network or scratch-size fixtures, which need the
    // namespaces it lacks (and which the isolation line names).
    let hostile = [
        "ex1_hostile_exec_reference",
        "ex1_hostile_forge_report",
        "ex1_hostile_tamper",
        "ex1_hostile_signal_grader",
        "ex1_hostile_deep_tree",
        "ex1_fork_bomb",
        "ex1_redteam_signal_everyone",
        "ex1_redteam_raise_limits",
    ];
    // The trace at work: a fake that prints the right lines, and a correct
    // variant that writes them another way.
    let (fake, variant) = ("ex1_parent_computes", "ex1_writev");
    for fixture in hostile.iter().chain([&fake, &variant]) {
        submission_of(fixture, &class);
    }
    let mut args = vec!["ex1", "--format", "json", "--jobs", "1", "--submissions"];
    args.push(class.to_str().unwrap());
    args.extend(["--output-dir", out.to_str().unwrap()]);
    let Some(output) = grade_in_container(&args) else {
        eprintln!("skipped: needs root, unshare, findmnt and setpriv");
        return;
    };
    output.assert_code(0);
    let csv = std::fs::read_to_string(out.join("grades.csv")).unwrap();
    let report = |name: &str| {
        std::fs::read_to_string(out.join("reports").join(format!("{name}.json")))
            .unwrap_or_else(|e| panic!("{name}: {e}\n{csv}{output}"))
    };
    let score = |name: &str| {
        let text = report(name);
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        (json["score"].as_f64().unwrap_or(-1.0), text)
    };
    let mut failures = Vec::new();
    for name in hostile.iter().chain([&fake]) {
        let (points, text) = score(name);
        // A fake earns the cases it really does (bad input); an attack
        // earns nothing.
        let most = if *name == fake { 9.0 } else { 0.0 };
        if points > most {
            failures.push(format!("{name}: scored {points}\n{text}"));
        }
        if text.contains("GOT THROUGH") {
            failures.push(format!("{name}: an attack got through\n{text}"));
        }
        // What the fixture's own expectations say was blocked, or how the
        // trace caught it.
        let expect = std::fs::read_to_string(
            root()
                .join("xtask/tests/fixtures")
                .join(name)
                .join("expect.txt"),
        )
        .unwrap();
        let wanted = expect
            .lines()
            .skip(1)
            .filter(|l| l.contains("blocked") || *name == fake);
        for line in wanted {
            if !text.contains(&json_escaped(line)) {
                failures.push(format!("{name}: the report lacks {line:?}\n{text}"));
            }
        }
    }
    let (points, text) = score(variant);
    if points != 10.0 {
        failures.push(format!(
            "{variant}: a correct variant scored {points}\n{text}"
        ));
    }
    let isolation = report(variant);
    if !isolation.contains("missing: no network namespace") {
        failures.push(format!(
            "the build's isolation does not say what it lacks\n{isolation}"
        ));
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

/// `text` as it appears inside a JSON string.
fn json_escaped(text: &str) -> String {
    let quoted = serde_json::to_string(text).unwrap();
    quoted[1..quoted.len() - 1].to_string()
}
