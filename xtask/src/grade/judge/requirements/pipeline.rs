//! Pipelines: stages joined by pipes the process made, and signals sent to
//! the stages' process group as a whole.

use std::collections::BTreeSet;

use super::{Context, Finding, Trace};
use crate::grade::case::parse_duration;
use crate::grade::facts::{Event, EventKind};
use crate::grade::judge::problem::problem_with;

/// The stages the transcript names: `{pid:PREFIX1}`, `{pid:PREFIX2}`...
/// (`binding`, default `stage`), up to the first number not bound.
fn stages(c: &Context) -> Vec<i32> {
    let prefix = c.requirement.binding.as_deref().unwrap_or("stage");
    (1..)
        .map_while(|n| c.bindings.get(&format!("{prefix}{n}")).copied())
        .collect()
}

/// `pipeline`: every stage the transcript binds is a child of the process
/// that exec'd a program; each two stages in a row were joined by a pipe
/// the process made, which carried data: the first stage's program wrote
/// into it and the next one's read from it; and the process itself moved
/// none of that data (it made the pipes, the stages used them).
pub(super) fn pipeline<'a>(c: &Context<'a>) -> Finding<'a> {
    let trace = c.trace;
    let me = c.process.pid;
    let name = &c.process.name;
    let stages = stages(c);
    let mut decided: Vec<&Event> = Vec::new();
    for (n, &pid) in stages.iter().enumerate() {
        let Some(spawn) = trace.spawns_by(me).find(|e| e.pid == pid) else {
            return Finding::failed(
                problem_with(
                    format!(
                        "{name} names {pid} as stage {}, but created no such process",
                        n + 1
                    ),
                    vec![],
                ),
                trace.spawns_by(me),
            );
        };
        let Some(exec) = trace.exec_of(pid) else {
            return Finding::failed(
                problem_with(
                    format!("stage {} ({pid}) never exec'd its program", n + 1),
                    vec![],
                ),
                [spawn],
            );
        };
        decided.extend([spawn, exec]);
    }
    let made: BTreeSet<&str> = trace
        .of_kind(EventKind::Pipe)
        .filter(|e| e.pid == me)
        .filter_map(|e| e.target.as_deref())
        .collect();
    let moves = |pid: i32, kind: EventKind| -> Vec<&'a Event> {
        trace
            .of_kind(kind)
            .filter(|e| e.pid == pid && trace.after_exec(e))
            .filter(|e| e.target.as_deref().is_some_and(|t| t.starts_with("pipe:")))
            .collect()
    };
    let mut junctions: BTreeSet<&str> = BTreeSet::new();
    for (n, pair) in stages.windows(2).enumerate() {
        let (writer, reader) = (pair[0], pair[1]);
        let wrote = moves(writer, EventKind::Write);
        let read = moves(reader, EventKind::Read);
        let joined = wrote.iter().find_map(|w| {
            let pipe = w.target.as_deref()?;
            let r = read.iter().find(|r| r.target.as_deref() == Some(pipe))?;
            made.contains(pipe).then_some((pipe, *w, *r))
        });
        let Some((pipe, w, r)) = joined else {
            let targets = |events: &[&Event]| -> String {
                let set: BTreeSet<&str> =
                    events.iter().filter_map(|e| e.target.as_deref()).collect();
                if set.is_empty() {
                    "no pipe".to_string()
                } else {
                    set.into_iter().collect::<Vec<_>>().join(", ")
                }
            };
            return Finding::failed(
                problem_with(
                    format!(
                        "stages {} ({writer}) and {} ({reader}) were joined by no pipe {name} made that carried data from one to the other",
                        n + 1,
                        n + 2
                    ),
                    vec![
                        format!("stage {} wrote into {}", n + 1, targets(&wrote)),
                        format!("stage {} read from {}", n + 2, targets(&read)),
                        format!(
                            "pipes {name} made: {}",
                            if made.is_empty() { "none".to_string() } else { made.iter().copied().collect::<Vec<_>>().join(", ") }
                        ),
                    ],
                ),
                wrote.into_iter().chain(read).take(6),
            );
        };
        junctions.insert(pipe);
        decided.extend([w, r]);
    }
    let relayed: Vec<&Event> = trace
        .events
        .iter()
        .filter(|e| e.pid == me && matches!(e.kind, EventKind::Read | EventKind::Write))
        .filter(|e| e.target.as_deref().is_some_and(|t| junctions.contains(t)))
        .collect();
    if let Some(first) = relayed.first() {
        return Finding::failed(
            problem_with(
                format!(
                    "{name} itself moved data through {}: the stages must talk to each other through the pipe, not through {name}",
                    first.target.as_deref().unwrap_or("a pipe")
                ),
                vec![],
            ),
            relayed.into_iter().take(6),
        );
    }
    Finding::held(decided)
}

/// `group_signal`: the process sent `signal` to a process group (a kill
/// of a negative PID, as `killpg` makes it) that reached every stage still
/// alive then, `at` (± `tolerance`, never earlier than `at`) after the
/// process was created; and before `at` it sent neither that signal nor
/// SIGKILL to any stage or group. Judged by what the stages went through
/// too: none died of a signal before the process sent that signal to the
/// group, and each became its program in the one group, the first
/// stage's, not the process's own.
pub(super) fn group_signal<'a>(c: &Context<'a>) -> Finding<'a> {
    let trace = c.trace;
    let me = c.process.pid;
    let name = &c.process.name;
    let wanted = c.requirement.signal.as_deref().unwrap_or("SIGTERM");
    let stages = stages(c);
    let (Some(Ok(at)), Some(Ok(tolerance))) = (
        c.requirement.at.as_deref().map(parse_duration),
        c.requirement.tolerance.as_deref().map(parse_duration),
    ) else {
        return Finding::held([]);
    };
    let (at, tolerance) = (at.as_secs_f64() * 1e3, tolerance.as_secs_f64() * 1e3);
    let born = trace
        .of_kind(EventKind::Spawn)
        .find(|e| e.pid == me)
        .map_or(c.process.started_ms, |e| e.at_ms);
    let began = |e: &Event| e.start_ms.unwrap_or(e.at_ms);
    let kills: Vec<&Event> = trace
        .of_kind(EventKind::Kill)
        .filter(|e| e.pid == me)
        .collect();
    let stage_set: BTreeSet<i32> = stages.iter().copied().collect();
    let aimed_at_stages = |k: &Event| {
        k.other.is_some_and(|o| o < 0) || Trace::reached(k).iter().any(|t| stage_set.contains(t))
    };
    // Early: this signal, or a harder one, before its time (a SIGTERM
    // before a SIGKILL's time is the step's own order).
    let harsh = |k: &Event| matches!(k.signal.as_deref(), Some(s) if s == wanted || s == "SIGKILL");
    if let Some(early) = kills
        .iter()
        .find(|k| harsh(k) && aimed_at_stages(k) && began(k) - born < at - 1.0)
    {
        return Finding::failed(
            problem_with(
                format!(
                    "{name} sent {} to {} {:.3} s after it started, before its deadline of {:.3} s",
                    early.signal.as_deref().unwrap_or("a signal"),
                    early
                        .other
                        .map_or("the stages".to_string(), |o| o.to_string()),
                    (began(early) - born) / 1e3,
                    at / 1e3
                ),
                vec![],
            ),
            [*early],
        );
    }
    let exit_of = |pid: i32| trace.of_kind(EventKind::Exit).find(move |e| e.pid == pid);
    let to_group: Vec<&Event> = kills
        .iter()
        .copied()
        .filter(|k| k.signal.as_deref() == Some(wanted) && k.other.is_some_and(|o| o < 0))
        .collect();
    let Some(kill) = to_group.first().copied() else {
        let one_by_one: Vec<&Event> = kills
            .iter()
            .copied()
            .filter(|k| k.signal.as_deref() == Some(wanted))
            .collect();
        let said = if one_by_one.is_empty() {
            format!("{name} never sent {wanted} to the pipeline's process group")
        } else {
            format!("{name} sent {wanted} to the stages one by one, not to their process group: one kill of the group reaches them all, and whatever they started too")
        };
        return Finding::failed(
            problem_with(said, vec![]),
            one_by_one.into_iter().chain(kills.iter().copied()).take(8),
        );
    };
    let seen = began(kill) - born;
    if seen > at + tolerance {
        return Finding::failed(
            problem_with(
                format!(
                    "{name} sent {wanted} to the group {:.3} s after it started, later than {:.3} s",
                    seen / 1e3,
                    (at + tolerance) / 1e3
                ),
                vec![],
            ),
            [kill],
        );
    }
    if let Some(failed) = stages_went_through(c, &stages, &kills, born) {
        return failed;
    }
    let reached = Trace::reached(kill);
    let missed: Vec<i32> = stages
        .iter()
        .copied()
        .filter(|&pid| exit_of(pid).is_none_or(|exit| exit.at_ms > began(kill)))
        .filter(|pid| !reached.contains(pid))
        .collect();
    if !missed.is_empty() {
        let list: Vec<String> = missed.iter().map(i32::to_string).collect();
        return Finding::failed(
            problem_with(
                format!(
                    "{name}'s {wanted} to group {} did not reach stage process {}, still alive then: every stage must be in the one process group",
                    -kill.other.unwrap_or(0),
                    list.join(", ")
                ),
                vec![],
            ),
            [kill],
        );
    }
    Finding::held([kill])
}

/// `group_signal`, judged by what the stages went through, not only by
/// the program's calls: no stage died of a signal before the program's
/// group kill of that signal began (a helper's kill, or
/// PR_SET_PDEATHSIG, would end them early); and every stage became its
/// program in the one group, the first stage's, not the program's own.
fn stages_went_through<'a>(
    c: &Context<'a>,
    stages: &[i32],
    kills: &[&'a Event],
    born: f64,
) -> Option<Finding<'a>> {
    let trace = c.trace;
    let me = c.process.pid;
    let name = &c.process.name;
    let began = |e: &Event| e.start_ms.unwrap_or(e.at_ms);
    let exit_of = |pid: i32| trace.of_kind(EventKind::Exit).find(move |e| e.pid == pid);
    let to_group_any = |signal: &str| {
        kills
            .iter()
            .copied()
            .find(|k| k.signal.as_deref() == Some(signal) && k.other.is_some_and(|o| o < 0))
    };
    for &pid in stages {
        let Some(exit) = exit_of(pid) else { continue };
        let Some(died_of) = exit.signal.as_deref() else {
            continue;
        };
        let sent = to_group_any(died_of).map(began);
        if sent.is_none_or(|sent| exit.at_ms < sent) {
            return Some(Finding::failed(
                problem_with(
                    format!(
                        "stage process {pid} died of {died_of} {:.3} s after {name} started, before {name} sent {died_of} to the group{}",
                        (exit.at_ms - born) / 1e3,
                        sent.map_or(" (it never did)".to_string(), |s| format!(" (at {:.3} s)", (s - born) / 1e3))
                    ),
                    vec![],
                ),
                [exit],
            ));
        }
    }
    // One process group, the first stage's, not the program's own: as
    // each stage became its program.
    let group_of = |pid: i32| trace.exec_of(pid).and_then(|e| e.code);
    let own_group = group_of(me);
    if let Some(&first) = stages.first() {
        for &pid in stages {
            let group = group_of(pid);
            if group.is_some() && (group != Some(first) || group == own_group) {
                return Some(Finding::failed(
                    problem_with(
                        format!(
                            "stage process {pid} ran in process group {}, not the pipeline's own ({first}, the first stage's): every stage must be in the one group, which is not {name}'s",
                            group.unwrap_or(0)
                        ),
                        vec![],
                    ),
                    trace.exec_of(pid),
                ));
            }
        }
    }
    None
}
