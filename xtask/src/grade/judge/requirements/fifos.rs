//! FIFOs: named pipes made, opened, used with whole lines, and removed.

use std::collections::BTreeSet;

use super::data::{cut_note, stdio_of};
use super::{unseen, Context, Finding, Trace, PIPE_BUF};
use crate::grade::facts::{Event, EventKind};
use crate::grade::judge::problem::problem_with;

/// `paths` and every name they were later linked or renamed to.
pub(super) fn with_later_names(trace: &Trace, mut paths: BTreeSet<String>) -> BTreeSet<String> {
    for e in trace
        .of_kind(EventKind::Link)
        .chain(trace.of_kind(EventKind::Rename))
    {
        if e.text.as_ref().is_some_and(|from| paths.contains(from)) {
            paths.extend(e.target.clone());
        }
    }
    paths
}

pub(super) fn fifos<'a>(c: &Context<'a>) -> Finding<'a> {
    let found = own_fifo(c).and_then(|mut decided| {
        no_socket(c)?;
        let fifo_writes = writes_only_into_fifos(c)?;
        decided.extend(whole_lines(c, fifo_writes)?);
        Ok(decided)
    });
    match found {
        Ok(decided) => Finding::held(decided),
        Err(failed) => failed,
    }
}

/// The process made a FIFO of its own, opened it for reading and removed
/// it: the events that show it.
fn own_fifo<'a>(c: &Context<'a>) -> Result<Vec<&'a Event>, Finding<'a>> {
    let trace = c.trace;
    let name = &c.process.name;
    let me = c.process.pid;
    let makes: Vec<&Event> = trace
        .of_kind(EventKind::Mkfifo)
        .filter(|e| e.pid == me)
        .collect();
    let made: BTreeSet<String> = makes.iter().filter_map(|e| e.text.clone()).collect();
    if made.is_empty() {
        // What it opened instead.
        return Err(Finding::failed(
            problem_with(format!("{name} made no FIFO (mkfifo)"), vec![]),
            trace.of_kind(EventKind::Open).filter(|e| e.pid == me),
        ));
    }
    // A FIFO's names: made, then linked or renamed.
    let names = with_later_names(trace, made);
    // Access mode 1 is O_WRONLY: anything else can read.
    let opened_for_reading = trace.of_kind(EventKind::Open).find(|e| {
        e.pid == me && e.code != Some(1) && e.text.as_ref().is_some_and(|p| names.contains(p))
    });
    let Some(opened_for_reading) = opened_for_reading else {
        return Err(Finding::failed(
            problem_with(
                format!("{name} never opened its own FIFO for reading"),
                vec![],
            ),
            makes
                .iter()
                .copied()
                .chain(trace.of_kind(EventKind::Open).filter(|e| e.pid == me)),
        ));
    };
    let removals: Vec<&Event> = trace
        .of_kind(EventKind::Unlink)
        .chain(trace.of_kind(EventKind::Rename))
        .filter(|e| e.text.as_ref().is_some_and(|p| names.contains(p)))
        .collect();
    let removed: BTreeSet<&String> = removals.iter().filter_map(|e| e.text.as_ref()).collect();
    let left: Vec<&String> = names.iter().filter(|n| !removed.contains(n)).collect();
    if !left.is_empty() {
        return Err(Finding::failed(
            problem_with(
                format!("{name} did not unlink its FIFO {}", left[0]),
                vec![],
            ),
            makes.iter().copied().chain(removals),
        ));
    }
    // What it rests on so far: the FIFO made, read and removed.
    let mut decided: Vec<&Event> = makes.clone();
    decided.push(opened_for_reading);
    decided.extend(removals);
    Ok(decided)
}

/// Whether `e` is by the process or one of its descendants.
fn by_member<'a>(c: &Context<'a>) -> impl Fn(&&Event) -> bool + 'a {
    let (trace, me) = (c.trace, c.process.pid);
    move |e: &&Event| e.pid == me || trace.descendants(me).contains(&e.pid)
}

/// Sockets could carry messages past the FIFOs (a socketpair cannot
/// reach another member: it only links a process to itself).
fn no_socket<'a>(c: &Context<'a>) -> Result<(), Finding<'a>> {
    let name = &c.process.name;
    match c
        .trace
        .of_kind(EventKind::Socket)
        .filter(by_member(c))
        .find(|e| e.text.as_deref() == Some("socket"))
    {
        Some(e) => Err(Finding::failed(
            problem_with(
                format!(
                    "process {} of {name} created a socket: members must talk through FIFOs only",
                    e.pid
                ),
                vec![],
            ),
            [e],
        )),
        None => Ok(()),
    }
}

/// Every write of the member's went into a FIFO (at most PIPE_BUF bytes
/// at once), its own standard streams, a pipe of its own or /dev/null:
/// the writes into FIFOs.
fn writes_only_into_fifos<'a>(c: &Context<'a>) -> Result<Vec<&'a Event>, Finding<'a>> {
    let trace = c.trace;
    let name = &c.process.name;
    let me = c.process.pid;
    // Every FIFO of the case, under all its names, whoever made it.
    let every_fifo = with_later_names(
        trace,
        trace
            .of_kind(EventKind::Mkfifo)
            .filter_map(|e| e.text.clone())
            .collect(),
    );
    let stdio = stdio_of(c.run, trace);
    let own: Vec<String> = stdio.get(&me).cloned().unwrap_or_default();
    let mut fifo_writes: Vec<&Event> = Vec::new();
    let failed =
        |text: String, write: &'a Event| Err(Finding::failed(problem_with(text, vec![]), [write]));
    for write in trace.of_kind(EventKind::Write).filter(by_member(c)) {
        let Some(target) = write.target.as_deref() else {
            continue;
        };
        if every_fifo.contains(target) {
            if write.bytes.unwrap_or(0) > PIPE_BUF {
                return failed(
                    format!("{name} wrote {} bytes to {target} at once: more than PIPE_BUF ({PIPE_BUF}), so it may interleave", write.bytes.unwrap_or(0)),
                    write,
                );
            }
            fifo_writes.push(write);
            continue;
        }
        if own.iter().any(|s| s == target) {
            continue;
        }
        if let Some((other, _)) = stdio
            .iter()
            .find(|(pid, streams)| **pid != me && streams.iter().any(|s| s == target))
        {
            return failed(
                format!("{name} wrote into the standard streams of process {other} ({target}, through /proc): members must talk through FIFOs only"),
                write,
            );
        }
        if target.starts_with("socket:") || target.starts_with("anon_inode:") {
            continue;
        }
        // A pipe of its own making (a self-pipe) reaches no one else.
        if target.starts_with("pipe:")
            && trace
                .of_kind(EventKind::Pipe)
                .any(|p| p.pid == me && p.target.as_deref() == Some(target))
        {
            continue;
        }
        if target == "/dev/null" {
            continue;
        }
        return failed(
            format!("{name} wrote to {target}, which is not a FIFO: members must talk through FIFOs only"),
            write,
        );
    }
    Ok(fifo_writes)
}

/// Every line goes out whole, in one write: a write into a FIFO ends with
/// its line's end, so that the next begins a line too, and each message
/// line of the case went out in one write: the writes that carried them.
fn whole_lines<'a>(
    c: &Context<'a>,
    fifo_writes: Vec<&'a Event>,
) -> Result<Vec<&'a Event>, Finding<'a>> {
    let name = &c.process.name;
    // (One whose contents were not all seen is judged by the messages.)
    if let Some(piece) = fifo_writes
        .iter()
        .find(|w| !w.cut && w.unseen.is_none() && !w.text.as_deref().unwrap_or("").ends_with('\n'))
    {
        return Err(Finding::failed(
            problem_with(
                format!(
                    "process {} of {name} wrote {:?} into {} without the end of its line: each line goes into a FIFO whole (name, text and newline), in one write",
                    piece.pid,
                    piece.text.as_deref().unwrap_or(""),
                    piece.target.as_deref().unwrap_or("a FIFO")
                ),
                vec![],
            ),
            [*piece],
        ));
    }
    let mut carried = Vec::new();
    for message in &c.requirement.messages {
        let line = format!("{message}\n");
        let whole = fifo_writes.iter().find(|w| {
            w.text
                .as_deref()
                .is_some_and(|t| t.split_inclusive('\n').any(|l| l == line))
        });
        let Some(whole) = whole else {
            let hidden = unseen(fifo_writes.iter().copied());
            if !hidden.is_empty() {
                return Err(Finding::unseen(
                    format!("{name}'s message `{message}` went into no FIFO in one write the grader saw: it wrote to FIFOs with"),
                    hidden,
                    [],
                ));
            }
            return Err(Finding::failed(
                problem_with(
                    format!("{name}'s message `{message}` went into no FIFO in one write"),
                    cut_note(fifo_writes.iter().filter(|w| w.cut).count()),
                ),
                fifo_writes,
            ));
        };
        carried.push(*whole);
    }
    Ok(carried)
}
