//! Threads: several tasks of one process, and the blocking waits they did.

use std::collections::BTreeSet;

use labcheck::{Bindings, LinePattern};

use super::{Context, Finding};
use crate::grade::facts::{Event, EventKind};
use crate::grade::judge::problem::problem_with;

/// `threads`: the process started at least `count` threads (tasks of the
/// same process, not processes: it created no child process), and each
/// stdout line matching `line` names, as `(thread TID)`, another of them,
/// which read from a pipe the bytes the process's main thread had just
/// written into it (the last move through that pipe before the read),
/// and used at most `limit` (default 50 ms) of CPU time in all: it was
/// blocked in its wait, not spinning.
pub(super) fn threads<'a>(c: &Context<'a>) -> Finding<'a> {
    let trace = c.trace;
    let me = c.process.pid;
    let name = &c.process.name;
    let children: Vec<&Event> = trace.spawns_by(me).collect();
    if !children.is_empty() {
        return Finding::failed(
            problem_with(
                format!(
                    "{name} created {} process(es): this step's work is done by threads of one process",
                    children.len()
                ),
                vec![],
            ),
            children,
        );
    }
    let started: Vec<&Event> = trace
        .of_kind(EventKind::Thread)
        .filter(|e| e.pid == me)
        .collect();
    let tids: BTreeSet<i32> = started.iter().filter_map(|e| e.tid).collect();
    let wanted = c.requirement.count.unwrap_or(1) as usize;
    if tids.len() < wanted {
        return Finding::failed(
            problem_with(
                format!(
                    "{name} started {} thread(s), fewer than {wanted}",
                    tids.len()
                ),
                vec![],
            ),
            started,
        );
    }
    let mut decided: Vec<&Event> = Vec::new();
    let Some(pattern) = c
        .requirement
        .line
        .as_deref()
        .and_then(|l| LinePattern::new(l).ok())
    else {
        return Finding::held(started.into_iter().take(4));
    };
    let mut named: BTreeSet<i32> = BTreeSet::new();
    for line in &c.process.stdout {
        let text = line.text.as_str();
        if !pattern.matches(text, &mut Bindings::new()) {
            continue;
        }
        let Some(tid) = text
            .split_once("(thread ")
            .and_then(|(_, rest)| rest.split_once(')'))
            .and_then(|(tid, _)| tid.parse::<i32>().ok())
        else {
            continue;
        };
        if !named.insert(tid) {
            return Finding::failed(
                problem_with(
                    format!("`{text}` names thread {tid} again: each line is another thread"),
                    vec![],
                ),
                [],
            );
        }
        if !tids.contains(&tid) {
            return Finding::failed(
                problem_with(
                    format!("`{text}` names thread {tid}, which is not a thread {name} started"),
                    vec![],
                ),
                started.into_iter().take(6),
            );
        }
        match woken_and_asleep(c, tid) {
            Ok(pair) => decided.extend(pair),
            Err(failed) => return failed,
        }
    }
    Finding::held(decided)
}

/// The thread `tid` read from a pipe the byte that woke it (the main
/// thread's write, the last move through that pipe before the read), and
/// slept meanwhile: the write and the read, or why not.
fn woken_and_asleep<'a>(c: &Context<'a>, tid: i32) -> Result<[&'a Event; 2], Finding<'a>> {
    let trace = c.trace;
    let me = c.process.pid;
    let name = &c.process.name;
    // What the main thread wrote into pipes, by pipe.
    let woken = trace
        .of_kind(EventKind::Read)
        .filter(|e| e.pid == me && e.tid == Some(tid))
        .find_map(|read| {
            let pipe = read.target.as_deref().filter(|t| t.starts_with("pipe:"))?;
            // The byte that woke it: the last move through that pipe
            // before the read is the main thread's write, and no one
            // else read from it in between.
            let before = trace.index_of(read)?;
            let last = trace.events[..before].iter().rev().find(|e| {
                matches!(e.kind, EventKind::Read | EventKind::Write)
                    && e.target.as_deref() == Some(pipe)
            })?;
            let woke = last.kind == EventKind::Write && last.pid == me && last.tid.is_none();
            woke.then_some([last, read])
        });
    let Some(pair) = woken else {
        let reads: Vec<&Event> = trace
            .of_kind(EventKind::Read)
            .filter(|e| e.pid == me && e.tid == Some(tid))
            .collect();
        return Err(Finding::failed(
            problem_with(
                format!("thread {tid} never read from a pipe what {name}'s main thread wrote into it: it was not woken by main"),
                vec![],
            ),
            reads.into_iter().take(6),
        ));
    };
    // Blocked, not spinning: a thread asleep in its call uses no CPU.
    let limit = c.requirement.limit_ms(50.0);
    let end = trace
        .of_kind(EventKind::ThreadEnd)
        .find(|e| e.pid == me && e.tid == Some(tid));
    if let Some(used) = end.and_then(|e| e.cpu_ms).filter(|used| *used > limit) {
        return Err(Finding::failed(
            problem_with(
                format!("thread {tid} used {used:.0} ms of CPU, more than {limit:.0} ms: it was not blocked in its wait (a waiting thread sleeps in its call; it does not spin)"),
                vec![],
            ),
            end,
        ));
    }
    Ok(pair)
}
