//! Processes: forks, reaps, exit statuses, PIDs, and the CPU a program
//! uses (at most, and when it has nothing to do).

use std::collections::BTreeSet;

use super::data::matching_lines;
use super::{Context, Finding};
use crate::grade::case::parse_duration;
use crate::grade::facts::{Event, EventKind};
use crate::grade::judge::problem::problem_with;

pub(super) fn fork<'a>(c: &Context<'a>) -> Finding<'a> {
    let me = c.process.pid;
    let spawns: Vec<&Event> = c.trace.spawns_by(me).collect();
    if !spawns.is_empty() {
        return Finding::held(spawns);
    }
    // What it did instead: it ran, perhaps had forks refused, and ended.
    Finding::failed(
        problem_with(
            format!(
                "{} (pid {me}) created no process: it never forked",
                c.process.name
            ),
            vec![],
        ),
        c.trace.events.iter().filter(|e| {
            e.pid == me && matches!(e.kind, EventKind::Spawn | EventKind::Exec | EventKind::Exit)
        }),
    )
}

pub(super) fn reaped<'a>(c: &Context<'a>) -> Finding<'a> {
    let me = c.process.pid;
    let reaps: Vec<&Event> = c
        .trace
        .of_kind(EventKind::Reap)
        .filter(|e| e.pid == me)
        .collect();
    let reaped: BTreeSet<i32> = reaps.iter().filter_map(|e| e.other).collect();
    let missing: Vec<&Event> = c
        .trace
        .spawns_by(me)
        .filter(|e| !reaped.contains(&e.pid))
        .collect();
    if missing.is_empty() {
        return Finding::held(reaps);
    }
    let list: Vec<String> = missing.iter().map(|e| e.pid.to_string()).collect();
    // What it did instead: its waits that consumed no exit status.
    let waits = c.trace.events.iter().filter(|e| {
        e.pid == me
            && matches!(
                e.kind,
                EventKind::WaitedStop | EventKind::WaitedCont | EventKind::WaitedExit
            )
    });
    Finding::failed(
        problem_with(
            format!(
                "{} never reaped its child {} (no wait/waitpid returned its exit status)",
                c.process.name,
                list.join(", ")
            ),
            vec![],
        ),
        missing
            .iter()
            .copied()
            .chain(waits)
            .chain(reaps.iter().copied()),
    )
}

/// The stdout line matching `line` ends with the status the process
/// reports for its child (`status N` or a signal name): it must be the one
/// its wait consumed, which is the one the kernel gave.
pub(super) fn reported_status<'a>(c: &Context<'a>) -> Finding<'a> {
    let pattern = c.requirement.line.as_deref().unwrap_or("");
    let Some(&line) = matching_lines(c.process, pattern).first() else {
        return Finding::held([]);
    };
    let Some(reported) = line.split_whitespace().last() else {
        return Finding::held([]);
    };
    let children = c.the_child();
    let Some(&child) = children.first() else {
        return Finding::held([]);
    };
    let describe = |code: Option<i32>, signal: Option<&str>| match (code, signal) {
        (Some(code), _) => code.to_string(),
        (_, Some(signal)) => signal.to_string(),
        _ => "unknown".to_string(),
    };
    let exit = c.trace.of_kind(EventKind::Exit).find(|e| e.pid == child);
    let reap = c
        .trace
        .of_kind(EventKind::Reap)
        .find(|e| e.pid == c.process.pid && e.other == Some(child));
    let kernel = exit.map(|e| describe(e.code, e.signal.as_deref()));
    let consumed = reap.map(|e| describe(e.code, e.signal.as_deref()));
    let name = &c.process.name;
    let decided = exit.into_iter().chain(reap);
    match (kernel, consumed) {
        (Some(kernel), _) if kernel != reported => Finding::failed(
            problem_with(
                format!("{name} reported `{reported}` for child {child}, but the kernel says it ended with {kernel}"),
                vec![],
            ),
            decided,
        ),
        (_, Some(consumed)) if consumed != "unknown" && consumed != reported => Finding::failed(
            problem_with(
                format!("{name} reported `{reported}` for child {child}, but its wait returned {consumed}"),
                vec![],
            ),
            decided,
        ),
        _ => Finding::held(decided),
    }
}

pub(super) fn pid_is_child<'a>(c: &Context<'a>) -> Finding<'a> {
    let binding = c.requirement.binding.as_deref().unwrap_or("child");
    let Some(&pid) = c.bindings.get(binding) else {
        return Finding::held([]);
    };
    let spawns: Vec<&Event> = c.trace.spawns_by(c.process.pid).collect();
    if let Some(spawn) = spawns.iter().find(|e| e.pid == pid) {
        return Finding::held([*spawn]);
    }
    let list: Vec<String> = spawns.iter().map(|e| e.pid.to_string()).collect();
    Finding::failed(
        problem_with(
            format!(
                "{} claims {pid} as a child ({{pid:{binding}}}), but created no such process",
                c.process.name
            ),
            vec![format!(
                "processes it created: {}",
                if list.is_empty() {
                    "none".into()
                } else {
                    list.join(", ")
                }
            )],
        ),
        spawns,
    )
}

/// The CPU time of the process and every process it created.
pub(super) fn cpu_at_most<'a>(c: &Context<'a>) -> Finding<'a> {
    let Some(Ok(limit)) = c.requirement.limit.as_deref().map(parse_duration) else {
        return Finding::held([]);
    };
    let limit = limit.as_secs_f64() * 1e3;
    let mut tree = c.trace.descendants(c.process.pid);
    tree.insert(c.process.pid);
    let exits: Vec<&Event> = c
        .trace
        .of_kind(EventKind::Exit)
        .filter(|e| tree.contains(&e.pid))
        .collect();
    let used: f64 = exits.iter().filter_map(|e| e.cpu_ms).sum();
    if used > limit {
        return Finding::failed(
            problem_with(
                format!(
                    "{} used {used:.0} ms of CPU time, more than {limit:.0} ms: an idle program must sleep, not poll",
                    c.process.name
                ),
                vec![],
            ),
            exits,
        );
    }
    Finding::held(exits)
}

/// In each idle window of the script (`idle_from` .. `idle_to`, measured
/// by the keeper from the kernel's counts), the process's tree used at
/// most `limit` of CPU a second and woke at most `wakeups` times a second,
/// and no process or thread of it began or ended: a member with nothing to
/// do waits in one blocking call, however the machine is loaded (a waiting
/// process uses no CPU, and wakes for nothing).
pub(super) fn idle<'a>(c: &Context<'a>) -> Finding<'a> {
    let limit = c.requirement.limit_ms(50.0);
    let most_wakeups = c.requirement.wakeups.unwrap_or(10.0);
    let name = &c.process.name;
    let mut tree = c.trace.descendants(c.process.pid);
    tree.insert(c.process.pid);
    let froms: Vec<&Event> = c.trace.of_kind(EventKind::IdleFrom).collect();
    if froms.is_empty() {
        return Finding::failed(
            problem_with(
                format!("the case measured no idle window for {name}: its script needs a `sleep` with `idle = true`"),
                vec![],
            ),
            [],
        );
    }
    let windows: BTreeSet<i32> = froms.iter().filter_map(|e| e.code).collect();
    let mut decided = Vec::new();
    for window in windows {
        match idle_window(c, &tree, window, limit, most_wakeups) {
            Ok(events) => decided.extend(events),
            Err(failed) => return failed,
        }
    }
    Finding::held(decided)
}

/// One idle window the keeper measured (`window`): the process's tree
/// started and ended nothing in it, and used at most `limit` ms of CPU and
/// `most_wakeups` wake-ups per second of it; the events that show it.
fn idle_window<'a>(
    c: &Context<'a>,
    tree: &BTreeSet<i32>,
    window: i32,
    limit: f64,
    most_wakeups: f64,
) -> Result<Vec<&'a Event>, Finding<'a>> {
    let name = &c.process.name;
    let of = |kind: EventKind| {
        c.trace
            .of_kind(kind)
            .filter(move |e| e.code == Some(window) && tree.contains(&e.pid))
            .collect::<Vec<_>>()
    };
    let (from, to) = (of(EventKind::IdleFrom), of(EventKind::IdleTo));
    let (Some(first), Some(last)) = (from.first(), to.first()) else {
        return Ok(Vec::new());
    };
    let (start, end) = (first.at_ms, last.at_ms);
    let seconds = ((end - start) / 1e3).max(1e-3);
    let in_window = |e: &&Event| e.at_ms > start && e.at_ms < end && tree.contains(&e.pid);
    let changed: Vec<&Event> = c
        .trace
        .events
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::Spawn | EventKind::Thread | EventKind::Exit
            )
        })
        .filter(in_window)
        .collect();
    let both: Vec<(&Event, &Event)> = from
        .iter()
        .filter_map(|f| to.iter().find(|t| t.pid == f.pid).map(|t| (*f, *t)))
        .collect();
    let ended = from.iter().find(|f| !to.iter().any(|t| t.pid == f.pid));
    let began = to.iter().find(|t| !from.iter().any(|f| f.pid == t.pid));
    if let Some(e) = changed
        .first()
        .copied()
        .or(ended.copied())
        .or(began.copied())
    {
        return Err(Finding::failed(
            problem_with(
                format!(
                    "process {} of {name} {} while the case was idle ({:.1} s from {:.3} s): an idle program starts and ends nothing",
                    e.pid,
                    match e.kind {
                        EventKind::Thread => "started a thread",
                        EventKind::Spawn | EventKind::IdleTo => "began",
                        _ => "ended",
                    },
                    seconds,
                    start / 1e3
                ),
                vec![],
            ),
            changed.iter().copied().chain(from.iter().copied()).chain(to.iter().copied()),
        ));
    }
    let used: f64 = both
        .iter()
        .map(|(f, t)| (t.cpu_ms.unwrap_or(0.0) - f.cpu_ms.unwrap_or(0.0)).max(0.0))
        .sum();
    let woke: u64 = both
        .iter()
        .map(|(f, t)| {
            t.wakeups
                .unwrap_or(0)
                .saturating_sub(f.wakeups.unwrap_or(0))
        })
        .sum();
    let events = both.iter().flat_map(|(f, t)| [*f, *t]);
    if used > limit * seconds {
        return Err(Finding::failed(
            problem_with(
                format!(
                    "{name} used {used:.0} ms of CPU time in {seconds:.1} s with nothing to do, more than {:.0} ms: an idle program must wait in poll (or a blocking read), not poll again and again",
                    limit * seconds
                ),
                vec![],
            ),
            events,
        ));
    }
    if woke as f64 > most_wakeups * seconds {
        return Err(Finding::failed(
            problem_with(
                format!(
                    "{name} woke up {woke} times in {seconds:.1} s with nothing to do, more than {:.0}: an idle program must wait in poll with no timeout, not nap and look again",
                    most_wakeups * seconds
                ),
                vec![],
            ),
            events,
        ));
    }
    Ok(events.collect())
}
