//! Judging what the programs did, from the supervisor's trace: a
//! transcript that claims a fork, a signal or a FIFO it never made fails
//! here, with a diagnosis that names the missing action.

use std::collections::{BTreeMap, BTreeSet};

use labcheck::{Bindings, LinePattern};

use super::case::{full_signal_name, parse_duration, Case, Requirement};
use super::runner::{CaseRun, ProcessRun};
use super::supervisor::Event;
use super::verdict::{problem_with, Problem};

/// The largest write POSIX promises is atomic on a pipe, on Linux.
const PIPE_BUF: u64 = 4096;

struct Trace<'a> {
    events: &'a [Event],
    grader: i32,
}

impl Trace<'_> {
    fn of_kind<'b>(&'b self, kind: &'b str) -> impl Iterator<Item = &'b Event> + 'b {
        self.events.iter().filter(move |e| e.kind == kind)
    }

    /// The processes `parent` created.
    fn children(&self, parent: i32) -> BTreeSet<i32> {
        self.of_kind("spawn")
            .filter(|e| e.other == Some(parent))
            .map(|e| e.pid)
            .collect()
    }
}

/// Every requirement of the case, plus the ones that hold for every case:
/// each process a program created was reaped by a program of the case.
pub fn check(case: &Case, run: &CaseRun, bindings: &Bindings) -> Vec<Problem> {
    let mut problems = Vec::new();
    // Without a trace there is nothing to check. A case killed for a limit
    // has failed already; one whose script could not go on is still worth
    // a diagnosis of what was never done, but its processes were killed
    // before they could reap anything.
    let script_stopped = run.script_error.is_some();
    if run.untraced.is_some() || (run.killed_because.is_some() && !script_stopped) {
        return problems;
    }
    let trace = Trace {
        events: &run.events,
        grader: run.grader_pid,
    };
    if !script_stopped {
        check_all_reaped(&trace, &mut problems);
    }
    for requirement in &case.require {
        let name = requirement
            .process
            .clone()
            .unwrap_or_else(|| case.process[0].name.clone());
        let Some(process) = run.processes.iter().find(|p| p.name == name) else {
            continue;
        };
        if !process.started {
            continue;
        }
        let found = match requirement.what.as_str() {
            "fork" => fork(&trace, process),
            "written_by_child" => written_by_child(&trace, process, requirement),
            "computed_by_child" => computed_by_child(&trace, process, requirement),
            "signal" => signal(&trace, process, requirement),
            "child_killed" => child_killed(&trace, process, requirement),
            "reaped" => reaped(&trace, process),
            "pid_is_child" => pid_is_child(&trace, process, requirement, bindings),
            "fifos" => fifos(&trace, process),
            "one_at_a_time" => one_at_a_time(&trace, process, requirement),
            "slices" => slices(&trace, process, requirement),
            "pipes" => pipes(&trace, process),
            "cpu_at_most" => cpu_at_most(&trace, process, requirement),
            _ => None,
        };
        problems.extend(found);
    }
    problems
}

fn check_all_reaped(trace: &Trace, problems: &mut Vec<Problem>) {
    let reaped: BTreeSet<i32> = trace.of_kind("reap").filter_map(|e| e.other).collect();
    for spawn in trace.of_kind("spawn") {
        let (child, parent) = (spawn.pid, spawn.other.unwrap_or(0));
        if parent != trace.grader && !reaped.contains(&child) {
            problems.push(problem_with(
                format!("process {child}, created by {parent}, was never reaped (wait/waitpid): it was left a zombie or an orphan"),
                vec![],
            ));
        }
    }
}

fn fork(trace: &Trace, process: &ProcessRun) -> Option<Problem> {
    trace.children(process.pid).is_empty().then(|| {
        problem_with(
            format!(
                "{} (pid {}) created no process: it never forked",
                process.name, process.pid
            ),
            vec![],
        )
    })
}

fn matching_lines<'a>(process: &'a ProcessRun, pattern: &str) -> Vec<&'a str> {
    let Ok(pattern) = LinePattern::new(pattern) else {
        return Vec::new();
    };
    process
        .stdout
        .iter()
        .map(|l| l.text.as_str())
        .filter(|l| pattern.matches(l, &mut Bindings::new()))
        .collect()
}

/// Everything each process wrote to `fd` (or to any descriptor), in order:
/// one line may take several writes, and one write several lines.
fn written(trace: &Trace, fd: Option<i32>) -> BTreeMap<i32, String> {
    let mut streams: BTreeMap<i32, String> = BTreeMap::new();
    for e in trace
        .of_kind("write")
        .filter(|e| fd.is_none() || e.fd == fd)
    {
        streams
            .entry(e.pid)
            .or_default()
            .push_str(e.text.as_deref().unwrap_or(""));
    }
    streams
}

fn written_by_child(
    trace: &Trace,
    process: &ProcessRun,
    requirement: &Requirement,
) -> Option<Problem> {
    let pattern = requirement.line.as_deref().unwrap_or("");
    let line = *matching_lines(process, pattern).first()?;
    let children = trace.children(process.pid);
    let writers: Vec<i32> = written(trace, Some(1))
        .into_iter()
        .filter(|(_, text)| text.contains(line))
        .map(|(pid, _)| pid)
        .collect();
    if writers.iter().any(|w| children.contains(w)) {
        return None;
    }
    let who = match writers.first() {
        Some(&pid) if pid == process.pid => format!("{} itself (pid {pid})", process.name),
        Some(&pid) => format!("pid {pid}, which {} did not create", process.name),
        None => "no process the trace saw".to_string(),
    };
    Some(problem_with(
        format!(
            "`{line}` was written by {who}, not by a process {} created",
            process.name
        ),
        vec![],
    ))
}

fn computed_by_child(
    trace: &Trace,
    process: &ProcessRun,
    requirement: &Requirement,
) -> Option<Problem> {
    let pattern = requirement.line.as_deref().unwrap_or("");
    let children = trace.children(process.pid);
    for line in matching_lines(process, pattern) {
        let Some((_, payload)) = line.split_once(": ") else {
            continue;
        };
        if payload.is_empty() {
            continue;
        }
        let printed_at = trace
            .of_kind("write")
            .find(|e| {
                e.pid == process.pid
                    && e.fd == Some(1)
                    && e.text.as_deref().is_some_and(|t| t.contains(payload))
            })
            .map_or(f64::MAX, |e| e.at_ms);
        // What each child had written, on any descriptor, by then.
        let mut before: BTreeMap<i32, String> = BTreeMap::new();
        for e in trace
            .of_kind("write")
            .filter(|e| children.contains(&e.pid) && e.at_ms <= printed_at)
        {
            before
                .entry(e.pid)
                .or_default()
                .push_str(e.text.as_deref().unwrap_or(""));
        }
        let computed = before.values().any(|text| text.contains(payload));
        if !computed {
            return Some(problem_with(
                format!("{} printed `{payload}` before any process it created wrote it: the work must be done in the child", process.name),
                vec![],
            ));
        }
    }
    None
}

/// The PIDs a role names: `main` (the process) or `child` (its children).
fn role(trace: &Trace, process: &ProcessRun, name: Option<&str>) -> BTreeSet<i32> {
    match name.unwrap_or("main") {
        "child" => trace.children(process.pid),
        _ => BTreeSet::from([process.pid]),
    }
}

fn signal_matches(event: &Event, wanted: &str) -> bool {
    wanted == "any" || event.signal.as_deref() == Some(&full_signal_name(wanted))
}

fn signal(trace: &Trace, process: &ProcessRun, requirement: &Requirement) -> Option<Problem> {
    let wanted = requirement.signal.as_deref().unwrap_or("any");
    let senders = role(trace, process, requirement.from.as_deref());
    let targets = role(trace, process, requirement.to.as_deref());
    let from_name = requirement
        .from
        .as_deref()
        .unwrap_or("main")
        .replace("main", &process.name);
    let to_name = requirement
        .to
        .as_deref()
        .unwrap_or("main")
        .replace("main", &process.name);
    let after = requirement.after_receiving.as_ref().map(|received| {
        trace
            .of_kind("signal")
            .filter(|e| senders.contains(&e.pid) && signal_matches(e, received))
            .map(|e| e.at_ms)
            .fold(f64::MAX, f64::min)
    });
    let sent: Vec<&Event> = trace
        .of_kind("kill")
        .filter(|e| {
            senders.contains(&e.pid)
                && e.other.is_some_and(|t| targets.contains(&t))
                && signal_matches(e, wanted)
        })
        .collect();
    let what = if wanted == "any" {
        "a signal".to_string()
    } else {
        full_signal_name(wanted)
    };
    let Some(first) = sent.iter().find(|e| after.is_none_or(|t| e.at_ms >= t)) else {
        let mut headline = format!("no {from_name} sent {what} to {to_name}");
        if let (Some(received), false) = (&requirement.after_receiving, sent.is_empty()) {
            headline = format!(
                "{from_name} sent {what} to {to_name} before it received {}",
                full_signal_name(received)
            );
        }
        if requirement.after_receiving.is_some() && after == Some(f64::MAX) {
            headline = format!(
                "{from_name} never received {}, so {headline}",
                full_signal_name(requirement.after_receiving.as_deref().unwrap_or(""))
            );
        }
        let seen: Vec<String> = trace
            .of_kind("kill")
            .map(|e| {
                format!(
                    "pid {} sent {} to {}",
                    e.pid,
                    e.signal.as_deref().unwrap_or("?"),
                    e.other.unwrap_or(0)
                )
            })
            .collect();
        let detail = if seen.is_empty() {
            "signals sent: none".to_string()
        } else {
            format!("signals sent: {}", seen.join("; "))
        };
        return Some(problem_with(headline, vec![detail]));
    };
    if let (Some(at), Some(tolerance)) = (&requirement.at, &requirement.tolerance) {
        let (at, tolerance) = (parse_duration(at).ok()?, parse_duration(tolerance).ok()?);
        let seen = (first.at_ms - process.started_ms) / 1e3;
        if (seen - at.as_secs_f64()).abs() > tolerance.as_secs_f64() {
            return Some(problem_with(
                format!(
                    "{what} from {from_name} came {seen:.3} s after the start, not between {:.3} and {:.3} s",
                    (at.as_secs_f64() - tolerance.as_secs_f64()).max(0.0),
                    at.as_secs_f64() + tolerance.as_secs_f64()
                ),
                vec![],
            ));
        }
    }
    None
}

fn child_killed(trace: &Trace, process: &ProcessRun, requirement: &Requirement) -> Option<Problem> {
    let wanted = requirement.signal.as_deref().unwrap_or("any");
    let children = trace.children(process.pid);
    let killed = trace.of_kind("exit").any(|exit| {
        children.contains(&exit.pid)
            && exit.signal.is_some()
            && signal_matches(exit, wanted)
            && trace.of_kind("kill").any(|k| {
                k.pid == process.pid
                    && k.other == Some(exit.pid)
                    && k.signal == exit.signal
                    && k.at_ms <= exit.at_ms
            })
    });
    (!killed).then(|| {
        let ends: Vec<String> = trace
            .of_kind("exit")
            .filter(|e| children.contains(&e.pid))
            .map(|e| match (&e.signal, e.code) {
                (Some(s), _) => format!("{} died of {s}", e.pid),
                (None, code) => format!("{} exited with {}", e.pid, code.unwrap_or(-1)),
            })
            .collect();
        let what = if wanted == "any" {
            "a signal".to_string()
        } else {
            full_signal_name(wanted)
        };
        problem_with(
            format!(
                "no child of {} died of {what} that {} sent it",
                process.name, process.name
            ),
            vec![format!(
                "its children: {}",
                if ends.is_empty() {
                    "none".to_string()
                } else {
                    ends.join("; ")
                }
            )],
        )
    })
}

fn reaped(trace: &Trace, process: &ProcessRun) -> Option<Problem> {
    let reaped: BTreeSet<i32> = trace
        .of_kind("reap")
        .filter(|e| e.pid == process.pid)
        .filter_map(|e| e.other)
        .collect();
    let missing: Vec<String> = trace
        .children(process.pid)
        .difference(&reaped)
        .map(i32::to_string)
        .collect();
    (!missing.is_empty()).then(|| {
        problem_with(
            format!(
                "{} never reaped its child {} (no wait/waitpid returned it)",
                process.name,
                missing.join(", ")
            ),
            vec![],
        )
    })
}

fn pid_is_child(
    trace: &Trace,
    process: &ProcessRun,
    requirement: &Requirement,
    bindings: &Bindings,
) -> Option<Problem> {
    let binding = requirement.binding.as_deref().unwrap_or("child");
    let pid = *bindings.get(binding)?;
    let children = trace.children(process.pid);
    (!children.contains(&pid)).then(|| {
        let list: Vec<String> = children.iter().map(i32::to_string).collect();
        problem_with(
            format!(
                "{} claims {pid} as a child ({{pid:{binding}}}), but created no such process",
                process.name
            ),
            vec![format!(
                "processes it created: {}",
                if list.is_empty() {
                    "none".into()
                } else {
                    list.join(", ")
                }
            )],
        )
    })
}

/// `paths` and every name they were later linked or renamed to.
fn with_later_names(trace: &Trace, mut paths: BTreeSet<String>) -> BTreeSet<String> {
    for e in trace.of_kind("link").chain(trace.of_kind("rename")) {
        if e.text.as_ref().is_some_and(|from| paths.contains(from)) {
            paths.extend(e.target.clone());
        }
    }
    paths
}

fn fifos(trace: &Trace, process: &ProcessRun) -> Option<Problem> {
    let made: BTreeSet<String> = trace
        .of_kind("mkfifo")
        .filter(|e| e.pid == process.pid)
        .filter_map(|e| e.text.clone())
        .collect();
    if made.is_empty() {
        return Some(problem_with(
            format!("{} made no FIFO (mkfifo)", process.name),
            vec![],
        ));
    }
    // A FIFO's names: made, then linked or renamed.
    let names = with_later_names(trace, made);
    // Access mode 1 is O_WRONLY: anything else can read.
    let opened_for_reading = trace.of_kind("open").any(|e| {
        e.pid == process.pid
            && e.code != Some(1)
            && e.text.as_ref().is_some_and(|p| names.contains(p))
    });
    if !opened_for_reading {
        return Some(problem_with(
            format!("{} never opened its own FIFO for reading", process.name),
            vec![],
        ));
    }
    let unlinked: BTreeSet<String> = trace
        .of_kind("unlink")
        .filter_map(|e| e.text.clone())
        .collect();
    let renamed_away: BTreeSet<String> = trace
        .of_kind("rename")
        .filter_map(|e| e.text.clone())
        .collect();
    let left: Vec<&String> = names
        .iter()
        .filter(|n| !unlinked.contains(*n) && !renamed_away.contains(*n))
        .collect();
    if !left.is_empty() {
        return Some(problem_with(
            format!("{} did not unlink its FIFO {}", process.name, left[0]),
            vec![],
        ));
    }
    // Every FIFO of the case, under all its names, whoever made it.
    let every_fifo = with_later_names(
        trace,
        trace
            .of_kind("mkfifo")
            .filter_map(|e| e.text.clone())
            .collect(),
    );
    for write in trace
        .of_kind("write")
        .filter(|e| e.pid == process.pid && !matches!(e.fd, Some(1) | Some(2)))
    {
        let Some(target) = write.target.as_deref() else {
            continue;
        };
        if target.starts_with("pipe:")
            || target.starts_with("socket:")
            || target.starts_with("anon_inode:")
        {
            continue;
        }
        if !every_fifo.contains(target) {
            return Some(problem_with(
                format!("{} wrote to {target}, which is not a FIFO: members must talk through FIFOs only", process.name),
                vec![],
            ));
        }
        if write.bytes.unwrap_or(0) > PIPE_BUF {
            return Some(problem_with(
                format!("{} wrote {} bytes to {target} at once: more than PIPE_BUF ({PIPE_BUF}), so it may interleave", process.name, write.bytes.unwrap_or(0)),
                vec![],
            ));
        }
    }
    None
}

/// Running intervals of each child of `process`, in ms since the start:
/// a child runs from its creation or a `cont` until a `stop` or its exit.
fn running_intervals(trace: &Trace, process: &ProcessRun) -> BTreeMap<i32, Vec<(f64, f64)>> {
    let children = trace.children(process.pid);
    let mut open: BTreeMap<i32, f64> = BTreeMap::new();
    let mut intervals: BTreeMap<i32, Vec<(f64, f64)>> = BTreeMap::new();
    let end_of_trace = trace.events.last().map_or(0.0, |e| e.at_ms);
    for e in trace.events.iter().filter(|e| children.contains(&e.pid)) {
        match e.kind.as_str() {
            "spawn" | "cont" => {
                open.entry(e.pid).or_insert(e.at_ms);
            }
            "stop" | "exit" => {
                if let Some(start) = open.remove(&e.pid) {
                    intervals.entry(e.pid).or_default().push((start, e.at_ms));
                }
            }
            _ => {}
        }
    }
    for (pid, start) in open {
        intervals
            .entry(pid)
            .or_default()
            .push((start, end_of_trace));
    }
    intervals
}

fn one_at_a_time(
    trace: &Trace,
    process: &ProcessRun,
    requirement: &Requirement,
) -> Option<Problem> {
    let tolerance_ms = requirement
        .tolerance
        .as_deref()
        .and_then(|t| parse_duration(t).ok())
        .map_or(2.0, |d| d.as_secs_f64() * 1e3);
    let intervals = running_intervals(trace, process);
    let all: Vec<(i32, f64, f64)> = intervals
        .iter()
        .flat_map(|(pid, list)| list.iter().map(move |&(a, b)| (*pid, a, b)))
        .collect();
    let mut worst = (0.0, 0, 0);
    for (i, &(p, a, b)) in all.iter().enumerate() {
        for &(q, c, d) in &all[i + 1..] {
            let overlap = b.min(d) - a.max(c);
            if p != q && overlap > worst.0 {
                worst = (overlap, p, q);
            }
        }
    }
    (worst.0 > tolerance_ms).then(|| {
        problem_with(
            format!(
                "programs {} and {} ran at the same time for {:.1} ms: only one may run at a time",
                worst.1, worst.2, worst.0
            ),
            vec![],
        )
    })
}

fn slices(trace: &Trace, process: &ProcessRun, requirement: &Requirement) -> Option<Problem> {
    let slice_ms = parse_duration(requirement.slice.as_deref()?)
        .ok()?
        .as_secs_f64()
        * 1e3;
    let tolerance_ms = requirement
        .tolerance
        .as_deref()
        .and_then(|t| parse_duration(t).ok())
        .map_or(5.0, |d| d.as_secs_f64() * 1e3);
    let intervals = running_intervals(trace, process);
    // A child waits while it is alive but not running.
    let lifetime: BTreeMap<i32, (f64, f64)> = intervals
        .iter()
        .map(|(pid, list)| {
            (
                *pid,
                (
                    list.first().map_or(0.0, |i| i.0),
                    list.last().map_or(0.0, |i| i.1),
                ),
            )
        })
        .collect();
    let ran_within = |pid: &i32, a: f64, b: f64| -> f64 {
        intervals[pid]
            .iter()
            .map(|&(c, d)| (b.min(d) - a.max(c)).max(0.0))
            .sum()
    };
    // Judged by the median stretch: on an overloaded machine a correct
    // coordinator now and then wakes late and lets one stretch run long,
    // but most of its stretches stay near the slice. A fake that never
    // stops a program, or stops it rarely, has long stretches throughout.
    for (pid, list) in &intervals {
        let mut stretches: Vec<f64> = list
            .iter()
            .filter(|&&(a, b)| {
                b - a > 1.0
                    && lifetime.iter().any(|(other, &(born, died))| {
                        other != pid
                            && b.min(died) - a.max(born) > (b - a) / 2.0
                            && ran_within(other, a, b) < (b - a) / 2.0
                    })
            })
            .map(|&(a, b)| b - a)
            .collect();
        if stretches.is_empty() {
            continue;
        }
        stretches.sort_by(f64::total_cmp);
        let median = stretches[stretches.len() / 2];
        if median > slice_ms + tolerance_ms {
            let longest = stretches[stretches.len() - 1];
            return Some(problem_with(
                format!(
                    "program {pid} ran {median:.1} ms at a stretch (the median of {} stretches; longest {longest:.1} ms) while others waited; the slice is {slice_ms:.1} ms",
                    stretches.len()
                ),
                vec![],
            ));
        }
    }
    None
}

fn pipes(trace: &Trace, process: &ProcessRun) -> Option<Problem> {
    let children = trace.children(process.pid);
    let ends = |kind: &str, by_child: bool| -> BTreeSet<String> {
        trace
            .of_kind(kind)
            .filter(|e| {
                if by_child {
                    children.contains(&e.pid)
                } else {
                    e.pid == process.pid
                }
            })
            .filter_map(|e| e.target.clone())
            .filter(|t| t.starts_with("pipe:"))
            .collect()
    };
    let down: BTreeSet<String> = ends("write", false)
        .intersection(&ends("read", true))
        .cloned()
        .collect();
    let up: BTreeSet<String> = ends("write", true)
        .intersection(&ends("read", false))
        .cloned()
        .collect();
    let name = &process.name;
    if down.is_empty() {
        return Some(problem_with(
            format!("no pipe carried data from {name} to a process it created"),
            vec![],
        ));
    }
    if up.is_empty() {
        return Some(problem_with(
            format!("no pipe carried data back from a child to {name}"),
            vec![],
        ));
    }
    if down.len() == 1 && down == up {
        return Some(problem_with(
            format!("{name} and its child used one pipe both ways: a pipe is one-way"),
            vec![],
        ));
    }
    None
}

fn cpu_at_most(trace: &Trace, process: &ProcessRun, requirement: &Requirement) -> Option<Problem> {
    let limit = parse_duration(requirement.limit.as_deref()?)
        .ok()?
        .as_secs_f64()
        * 1e3;
    let exit = trace.of_kind("exit").find(|e| e.pid == process.pid)?;
    let used = exit.cpu_ms?;
    (used > limit).then(|| {
        problem_with(
            format!(
                "{} used {used:.0} ms of CPU time, more than {limit:.0} ms: an idle program must sleep, not poll",
                process.name
            ),
            vec![],
        )
    })
}
