//! Data: what was written where, by whom, and what went through pipes;
//! judged on runs of contents known to be contiguous ([`Contents`]).

use std::collections::BTreeMap;

use labcheck::{Bindings, LinePattern};

use super::{unseen, Context, Finding, Trace};
use crate::grade::facts::event::{EVENT_CONTENTS, MAX_CONTENTS};
use crate::grade::facts::{CaseRun, Event, EventKind, ProcessRun};
use crate::grade::judge::problem::problem_with;

pub(super) fn matching_lines<'a>(process: &'a ProcessRun, pattern: &str) -> Vec<&'a str> {
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

/// What a series of reads or writes moved, in order, as runs of bytes
/// known to be contiguous: an event whose contents were not all kept (cut
/// by the trace's budget, or moved unseen) ends a run, so that no match
/// spans bytes the trace did not see.
#[derive(Default, Clone)]
pub(super) struct Contents {
    runs: Vec<String>,
    /// Events whose contents the trace's budget cut.
    cut: usize,
}

impl Contents {
    pub(super) fn push(&mut self, event: &Event) {
        if self.runs.is_empty() {
            self.runs.push(String::new());
        }
        if let Some(run) = self.runs.last_mut() {
            run.push_str(event.text.as_deref().unwrap_or(""));
        }
        if event.cut {
            if event.unseen.is_none() {
                self.cut += 1;
            }
            self.runs.push(String::new());
        }
    }

    pub(super) fn contains(&self, text: &str) -> bool {
        self.runs.iter().any(|run| run.contains(text))
    }

    /// Whether `line` was written as a whole line, newline and all.
    pub(super) fn has_line(&self, line: &str) -> bool {
        let whole = format!("{line}\n");
        self.runs
            .iter()
            .any(|run| run.split_inclusive('\n').any(|l| l == whole))
    }

    /// The beginning, for a diagnosis.
    pub(super) fn start(&self) -> &str {
        self.runs.first().map_or("", String::as_str)
    }
}

/// A diagnosis's note when contents it needed were not all kept.
pub(super) fn cut_note(cut: usize) -> Vec<String> {
    if cut == 0 {
        return Vec::new();
    }
    vec![format!(
        "the trace did not keep all the contents of {cut} of these reads or writes (at most {} KiB of each, {} KiB per case): what it did not keep counts as not seen",
        EVENT_CONTENTS >> 10,
        MAX_CONTENTS >> 10
    )]
}

/// Everything each process wrote to `fd` (or to any descriptor), in order:
/// one line may take several writes, and one write several lines.
/// What each process wrote with the writes `onto` picks, in order.
pub(super) fn written(trace: &Trace, onto: impl Fn(&Event) -> bool) -> BTreeMap<i32, Contents> {
    let mut streams: BTreeMap<i32, Contents> = BTreeMap::new();
    for e in trace.of_kind(EventKind::Write).filter(|e| onto(e)) {
        streams.entry(e.pid).or_default().push(e);
    }
    streams
}

/// The writes of `pid` that `onto` picks and that carried `needle` (the
/// writes its first occurrence in their concatenation spans), or all of
/// them if none did.
pub(super) fn writes_carrying<'a>(
    trace: &Trace<'a>,
    pid: i32,
    onto: impl Fn(&Event) -> bool,
    needle: &str,
) -> Vec<&'a Event> {
    let writes: Vec<&Event> = trace
        .of_kind(EventKind::Write)
        .filter(|e| e.pid == pid && onto(e))
        .collect();
    let stream: String = writes
        .iter()
        .map(|e| e.text.as_deref().unwrap_or(""))
        .collect();
    let Some(start) = stream.find(needle) else {
        return writes;
    };
    let end = start + needle.len();
    let mut at = 0;
    let mut carrying = Vec::new();
    for write in writes {
        let len = write.text.as_deref().map_or(0, str::len);
        if at < end && at + len > start {
            carrying.push(write);
        }
        at += len;
    }
    carrying
}

pub(super) fn written_by_child<'a>(c: &Context<'a>) -> Finding<'a> {
    let pattern = c.requirement.line.as_deref().unwrap_or("");
    // No such line: the output checks say so.
    let Some(&line) = matching_lines(c.process, pattern).first() else {
        return Finding::held([]);
    };
    let children = c.the_child();
    // Only bytes a write put on the process's own stdout count.
    let onto = c.onto_stdout();
    let streams = written(c.trace, &onto);
    let cut = streams.values().map(|s| s.cut).sum();
    let writers: Vec<i32> = streams
        .into_iter()
        .filter(|(_, text)| text.contains(line))
        .map(|(pid, _)| pid)
        .collect();
    if let Some(&writer) = writers.iter().find(|w| children.contains(w)) {
        let writes = writes_carrying(c.trace, writer, onto, line);
        // The child itself, not a program it became.
        if let Some(exec) = c.trace.exec_of(writer) {
            return Finding::failed(
                problem_with(
                    format!(
                        "`{line}` was written by child {writer} after it ran {} (exec): the child must write it itself",
                        exec.text.as_deref().unwrap_or("another program")
                    ),
                    vec![],
                ),
                std::iter::once(exec).chain(writes),
            );
        }
        return Finding::held(writes);
    }
    let all_children = c.trace.children(c.process.pid);
    let who = match writers.first() {
        Some(&pid) if pid == c.process.pid => format!("{} itself (pid {pid})", c.process.name),
        Some(&pid) if all_children.contains(&pid) => {
            format!("pid {pid}, not the child it reported")
        }
        Some(&pid) => format!("pid {pid}, which {} did not create", c.process.name),
        None => "no process the trace saw".to_string(),
    };
    // The child wrote it, but not where anyone could see it?
    let elsewhere = children.iter().find_map(|&child| {
        let writes = writes_carrying(c.trace, child, |e| !onto(e), line);
        let text: String = writes.iter().filter_map(|e| e.text.as_deref()).collect();
        let target = writes.first()?.target.clone()?;
        text.contains(line).then(|| {
            (
                format!("; child {child} wrote it to {target}, not to the output"),
                writes,
            )
        })
    });
    let (also_said, also_events) = elsewhere.unwrap_or_default();
    // Written with a call whose bytes the grader cannot see?
    let hidden = unseen(c.trace.of_kind(EventKind::Write).filter(|e| onto(e)));
    if let (None, Some(first)) = (writers.first(), hidden.first()) {
        let mover = match first.pid {
            pid if pid == c.process.pid => c.process.name.clone(),
            pid if all_children.contains(&pid) => format!("child {pid}"),
            pid => format!("pid {pid}"),
        };
        let mut found = Finding::unseen(
            format!("`{line}` was written by no process the trace saw: {mover} wrote to its stdout with"),
            hidden,
            also_events,
        );
        if let Some(problem) = found.problems.first_mut() {
            problem.headline.push_str(&also_said);
        }
        return found;
    }
    // What happened instead: the writes that carried it, or else what the
    // children wrote.
    let instead: Vec<&Event> = match writers.first() {
        Some(&pid) => writes_carrying(c.trace, pid, onto, line),
        None => c
            .trace
            .of_kind(EventKind::Write)
            .filter(|e| children.contains(&e.pid) && (e.fd == Some(1) || onto(e)))
            .collect(),
    };
    Finding::failed(
        problem_with(
            format!(
                "`{line}` was written by {who}, not by the process {} created and reported{also_said}",
                c.process.name
            ),
            cut_note(cut),
        ),
        instead.into_iter().chain(also_events),
    )
}

/// For each stdout line matching `line`, its text after `": "` (the
/// payload) must have been written by a child, and read by the process
/// from a pipe, before the process printed it.
pub(super) fn computed_by_child<'a>(c: &Context<'a>) -> Finding<'a> {
    let pattern = c.requirement.line.as_deref().unwrap_or("");
    let children = c.the_child();
    let name = &c.process.name;
    let mut decided: Vec<&Event> = Vec::new();
    for line in matching_lines(c.process, pattern) {
        let Some((_, payload)) = line.split_once(": ") else {
            continue;
        };
        if payload.is_empty() {
            continue;
        }
        let printing = |e: &&Event| e.pid == c.process.pid && e.fd == Some(1);
        let printed = c
            .trace
            .of_kind(EventKind::Write)
            .filter(printing)
            .find(|e| e.text.as_deref().is_some_and(|t| t.contains(payload)));
        // Not found where contents were cut: when it was printed, and so
        // what came before, is unknown.
        let cut: Vec<&Event> = c
            .trace
            .of_kind(EventKind::Write)
            .filter(printing)
            .filter(|e| e.cut)
            .collect();
        if printed.is_none() && !cut.is_empty() {
            return Finding::failed(
                problem_with(
                    format!("cannot tell when {name} printed `{payload}`: the trace did not keep all it printed"),
                    cut_note(cut.len()),
                ),
                cut,
            );
        }
        let printed_at = printed.map_or(f64::MAX, |e| e.start_ms.unwrap_or(e.at_ms));
        // What each child had written, on any descriptor, by then.
        let child_writes: Vec<&Event> = c
            .trace
            .of_kind(EventKind::Write)
            .filter(|e| children.contains(&e.pid) && e.at_ms <= printed_at)
            .collect();
        let mut before: BTreeMap<i32, Contents> = BTreeMap::new();
        for e in &child_writes {
            before.entry(e.pid).or_default().push(e);
        }
        let wrote_it: Vec<&Event> = child_writes
            .iter()
            .copied()
            .filter(|e| e.text.as_deref().is_some_and(|t| t.contains(payload)))
            .collect();
        // Unless the grader itself altered the reply on its way (a
        // perturbation): then the child wrote the original.
        let altered: Vec<&Event> = c
            .trace
            .of_kind(EventKind::Altered)
            .filter(|e| {
                e.pid == c.process.pid && e.text.as_deref().is_some_and(|t| t.contains(payload))
            })
            .collect();
        if altered.is_empty() && !before.values().any(|text| text.contains(payload)) {
            let hidden = unseen(child_writes.iter().copied());
            if !hidden.is_empty() {
                return Finding::unseen(
                    format!("{name} printed `{payload}`, which no process it created was seen to write: the child sent its data with"),
                    hidden,
                    printed,
                );
            }
            return Finding::failed(
                problem_with(
                    format!("{name} printed `{payload}` before any process it created wrote it: the work must be done in the child"),
                    cut_note(before.values().map(|s| s.cut).sum()),
                ),
                printed.into_iter().chain(child_writes),
            );
        }
        // And it printed what it had read from a pipe.
        let reads: Vec<&Event> = c
            .trace
            .of_kind(EventKind::Read)
            .filter(|e| {
                e.pid == c.process.pid
                    && e.at_ms <= printed_at
                    && e.target.as_deref().is_some_and(|t| t.starts_with("pipe:"))
            })
            .collect();
        let mut read = Contents::default();
        for e in &reads {
            read.push(e);
        }
        if !read.contains(payload) {
            let hidden = unseen(reads.iter().copied());
            if !hidden.is_empty() {
                return Finding::unseen(
                    format!("{name} printed `{payload}` without being seen to read it from a pipe: it read the pipe with"),
                    hidden,
                    printed,
                );
            }
            return Finding::failed(
                problem_with(
                    format!("{name} printed `{payload}` without having read it from a pipe first"),
                    cut_note(read.cut),
                ),
                printed.into_iter().chain(reads),
            );
        }
        let read_it = reads
            .iter()
            .copied()
            .filter(|e| e.text.as_deref().is_some_and(|t| t.contains(payload)));
        decided.extend(printed);
        decided.extend(wrote_it);
        decided.extend(altered);
        decided.extend(read_it);
    }
    Finding::held(decided)
}

/// Data went down one pipe (written by the process, read by the child)
/// and came back up another; with `down` and `up`, those texts travelled
/// that way.
/// Per pipe, what the process (or the child) wrote into it or read, and
/// the events that moved it.
type Flow<'e> = BTreeMap<String, (Contents, Vec<&'e Event>)>;

/// Every event that moved data through the pipes of `flows`.
fn both_ways<'a>(flows: &Flow<'a>) -> Vec<&'a Event> {
    flows
        .values()
        .flat_map(|(_, events)| events.iter().copied())
        .collect()
}

pub(super) fn pipes<'a>(c: &Context<'a>) -> Finding<'a> {
    let trace = c.trace;
    let children = c.the_child();
    let me = c.process.pid;
    let flow = |kind: EventKind, by_child: bool| -> Flow<'a> {
        let mut found: Flow = BTreeMap::new();
        for e in trace.of_kind(kind).filter(|e| {
            if by_child {
                children.contains(&e.pid)
            } else {
                e.pid == me
            }
        }) {
            if let Some(t) = e.target.clone().filter(|t| t.starts_with("pipe:")) {
                let (text, events) = found.entry(t).or_default();
                text.push(e);
                events.push(e);
            }
        }
        found
    };
    let (main_wrote, child_read) = (flow(EventKind::Write, false), flow(EventKind::Read, true));
    let (child_wrote, main_read) = (flow(EventKind::Write, true), flow(EventKind::Read, false));
    // A way between the two: the pipe, what the writer wrote into it, and
    // every event that moved it (writes, then reads).
    let way = |wrote: &Flow<'a>, read: &Flow<'a>| -> Flow<'a> {
        wrote
            .iter()
            .filter_map(|(pipe, (text, writes))| {
                let (_, reads) = read.get(pipe)?;
                let events = writes.iter().chain(reads).copied().collect();
                Some((pipe.clone(), (text.clone(), events)))
            })
            .collect()
    };
    let down = way(&main_wrote, &child_read);
    let up = way(&child_wrote, &main_read);
    let creations: Vec<&Event> = trace
        .of_kind(EventKind::Pipe)
        .filter(|e| e.pid == me || children.contains(&e.pid))
        .collect();
    let everything = |flows: [&Flow<'a>; 4]| -> Vec<&'a Event> {
        let mut all: Vec<&Event> = creations.clone();
        for flow in flows {
            all.extend(flow.values().flat_map(|(_, events)| events.iter().copied()));
        }
        all
    };
    let name = &c.process.name;
    if down.is_empty() {
        return Finding::failed(
            problem_with(
                format!("no pipe carried data from {name} to the child it reported"),
                vec![],
            ),
            everything([&main_wrote, &child_read, &child_wrote, &main_read]),
        );
    }
    if up.is_empty() {
        return Finding::failed(
            problem_with(
                format!("no pipe carried data back from the child to {name}"),
                vec![],
            ),
            everything([&main_wrote, &child_read, &child_wrote, &main_read]),
        );
    }
    if down.len() == 1 && down.keys().eq(up.keys()) {
        return Finding::failed(
            problem_with(
                format!("{name} and its child used one pipe both ways: a pipe is one-way"),
                vec![],
            ),
            both_ways(&down),
        );
    }
    if let Some(failed) = texts_went_their_way(c, &down, &up) {
        return failed;
    }
    Finding::held(
        creations
            .into_iter()
            .chain(both_ways(&down))
            .chain(both_ways(&up)),
    )
}

/// Each text the case names went its way (`down` to the child, `up` back)
/// through a pipe, as the writer wrote it; if not, what happened instead.
fn texts_went_their_way<'a>(
    c: &Context<'a>,
    down: &Flow<'a>,
    up: &Flow<'a>,
) -> Option<Finding<'a>> {
    let name = &c.process.name;
    for (texts, way, flows) in [
        (&c.requirement.down, "down", down),
        (&c.requirement.up, "up", up),
    ] {
        for text in texts {
            if !flows.values().any(|(t, _)| t.contains(text.as_str())) {
                let writer = if way == "down" {
                    name.clone()
                } else {
                    "the child".to_string()
                };
                // What the writer moved unseen, that way.
                let hidden = unseen(
                    flows
                        .values()
                        .flat_map(|(_, events)| events.iter().copied())
                        .filter(|e| e.kind == EventKind::Write),
                );
                if !hidden.is_empty() {
                    return Some(Finding::unseen(
                        format!("`{text}` never went {way} a pipe as it should: {writer} sent its data {way} with"),
                        hidden,
                        [],
                    ));
                }
                let seen: String = flows
                    .values()
                    .next()
                    .map_or("", |(t, _)| t.start())
                    .chars()
                    .take(80)
                    .collect();
                let mut details = vec![format!("{writer} wrote: {seen:?}")];
                details.extend(cut_note(flows.values().map(|(t, _)| t.cut).sum()));
                return Some(Finding::failed(
                    problem_with(
                        format!("`{text}` never went {way} a pipe as it should"),
                        details,
                    ),
                    both_ways(flows),
                ));
            }
        }
    }
    None
}

/// The standard streams (`pipe:[..]` for 0, 1, 2) the grader gave each
/// started process.
pub(super) fn stdio_of(run: &CaseRun, trace: &Trace) -> BTreeMap<i32, Vec<String>> {
    trace
        .of_kind(EventKind::Spawn)
        .filter(|e| e.other == Some(trace.grader))
        .filter(|e| run.processes.iter().any(|p| p.pid == e.pid))
        .map(|e| {
            let streams = e.text.as_deref().unwrap_or("");
            (e.pid, streams.split(' ').map(str::to_string).collect())
        })
        .collect()
}
