//! The judge's half that reads the trace: a transcript that claims a fork,
//! a signal, a pipe or a FIFO it never used fails here, with a diagnosis
//! that names the missing action.
//!
//! Every rule rests on events the tracer logged at a system call's exit
//! (see `supervisor`), attributed to processes. Roles are bound to the
//! transcript: when a case's output binds `{pid:child}`, "the child" is
//! that process and no other. The rule of each requirement kind is in
//! `case::Requirement`.
//!
//! The trace is bounded (see `supervisor`), and a rule never takes what it
//! did not keep for what did not happen:
//! - a **full** trace (events dropped) judges no requirement: the case
//!   fails, saying so;
//! - contents are judged only as **runs** of bytes known to be contiguous
//!   ([`Contents`]): a read or write whose contents were cut ends a run, so
//!   no match spans what was not seen. Finding a text is evidence; not
//!   finding it fails, and the diagnosis says when contents were cut;
//! - a rule that needs to know when something was printed fails, when the
//!   contents that would tell were cut.

use std::collections::{BTreeMap, BTreeSet};

use labcheck::{Bindings, LinePattern};

use super::problem::{problem_with, Judged, Problem};
use crate::grade::case::{full_signal_name, parse_duration, Case, Requirement};
use crate::grade::facts::event::{EVENT_CONTENTS, MAX_CONTENTS};
use crate::grade::facts::{CaseRun, Event, EventKind, ProcessRun};

/// The largest write POSIX promises is atomic on a pipe, on Linux.
const PIPE_BUF: u64 = 4096;

/// The most events a requirement's verdict keeps: the most telling ones.
pub const MAX_DECIDING: usize = 16;

struct Trace<'a> {
    events: &'a [Event],
    grader: i32,
}

impl<'a> Trace<'a> {
    fn of_kind(&self, kind: EventKind) -> impl Iterator<Item = &'a Event> + 'a {
        self.events.iter().filter(move |e| e.kind == kind)
    }

    /// The spawn events of the processes `parent` created.
    fn spawns_by(&self, parent: i32) -> impl Iterator<Item = &'a Event> + 'a {
        self.of_kind(EventKind::Spawn)
            .filter(move |e| e.other == Some(parent))
    }

    /// The processes `parent` created.
    fn children(&self, parent: i32) -> BTreeSet<i32> {
        self.spawns_by(parent).map(|e| e.pid).collect()
    }

    /// Every process `ancestor` created, at any depth.
    fn descendants(&self, ancestor: i32) -> BTreeSet<i32> {
        let mut found = BTreeSet::new();
        let mut frontier = vec![ancestor];
        while let Some(pid) = frontier.pop() {
            for child in self.children(pid) {
                if found.insert(child) {
                    frontier.push(child);
                }
            }
        }
        found
    }

    /// The processes a kill event reached.
    fn reached(kill: &Event) -> Vec<i32> {
        kill.targets
            .clone()
            .unwrap_or_else(|| kill.other.into_iter().collect())
    }

    fn exec_of(&self, pid: i32) -> Option<&'a Event> {
        self.of_kind(EventKind::Exec).find(move |e| e.pid == pid)
    }

    /// Where `event` is in the trace.
    fn index_of(&self, event: &Event) -> Option<usize> {
        let size = std::mem::size_of::<Event>();
        let offset = (event as *const Event as usize).checked_sub(self.events.as_ptr() as usize)?;
        (offset % size == 0 && offset / size < self.events.len()).then_some(offset / size)
    }
}

/// What a requirement's rule found: its problems (none when it held) and
/// the events it rested on, the most telling first: those that satisfied
/// it or, for a failure, those that show what happened instead.
struct Finding<'a> {
    problems: Vec<Problem>,
    events: Vec<&'a Event>,
}

impl<'a> Finding<'a> {
    fn held(events: impl IntoIterator<Item = &'a Event>) -> Self {
        Self {
            problems: Vec::new(),
            events: events.into_iter().collect(),
        }
    }

    /// With `event` among those it rests on, first.
    fn with(mut self, event: &'a Event) -> Self {
        self.events.insert(0, event);
        self
    }

    fn failed(problem: Problem, events: impl IntoIterator<Item = &'a Event>) -> Self {
        Self {
            problems: vec![problem],
            events: events.into_iter().collect(),
        }
    }

    /// Failed for want of contents the tracer could not see: `said` is the
    /// diagnosis up to the calls of `hidden` (it ends with "with"), shown
    /// with the events `also` and those moves.
    fn unseen(
        said: String,
        hidden: Vec<&'a Event>,
        also: impl IntoIterator<Item = &'a Event>,
    ) -> Self {
        let said = format!(
            "{said} {}, whose contents the grader cannot check",
            calls(&hidden)
        );
        Self::failed(problem_with(said, vec![]), also.into_iter().chain(hidden))
    }

    /// As a verdict: the first [`MAX_DECIDING`] distinct events, in the
    /// trace's order, and how many were left off.
    fn judged(self, trace: &Trace, what: &str, process: &str) -> Judged {
        let mut seen = BTreeSet::new();
        let distinct: Vec<usize> = self
            .events
            .iter()
            .filter_map(|e| trace.index_of(e))
            .filter(|i| seen.insert(*i))
            .collect();
        let mut events: Vec<usize> = distinct.iter().copied().take(MAX_DECIDING).collect();
        events.sort_unstable();
        Judged {
            what: what.to_string(),
            process: process.to_string(),
            problems: self.problems,
            events,
            left_off: distinct.len().saturating_sub(MAX_DECIDING),
        }
    }
}

/// The moves of unseen content (sendfile, splice, vmsplice...: see
/// `supervisor`) among these events: they never count as a text.
fn unseen<'a>(events: impl IntoIterator<Item = &'a Event>) -> Vec<&'a Event> {
    events.into_iter().filter(|e| e.unseen.is_some()).collect()
}

/// The calls these moves were made with: `splice`, `vmsplice and splice`.
fn calls(moves: &[&Event]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for name in moves.iter().filter_map(|e| e.unseen.as_deref()) {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names.join(" and ")
}

/// Every requirement of the case, plus the ones that hold for every traced
/// case: no refused system call (`no_refused_calls`), and each process a
/// program created was reaped by a program of the case (`all_reaped`).
pub fn check(case: &Case, run: &CaseRun, bindings: &Bindings) -> Vec<Judged> {
    let mut judged = Vec::new();
    if run.untraced.is_some() {
        return judged;
    }
    let trace = Trace {
        events: &run.events,
        grader: run.grader_pid,
    };
    let every_case = case.process.first().map_or("", |p| p.name.as_str());
    judged.push(no_refused_calls(&trace).judged(&trace, "no_refused_calls", every_case));
    // A full trace lost what came after: nothing it does not show can be
    // taken as not done, so no requirement is judged on it. The keeper
    // stops such a case; one that ended first still fails here.
    if let Some(full) = &run.trace_cut.full {
        if run.killed_because.is_none() {
            let problem = problem_with(
                format!(
                    "the trace is full ({full}): {} later events were not kept, so what the case requires of the programs cannot be judged",
                    run.trace_cut.dropped
                ),
                vec![],
            );
            judged.push(Finding::failed(problem, []).judged(&trace, "complete_trace", every_case));
        }
        return judged;
    }
    // A case killed for a limit has failed already; one whose script could
    // not go on is still worth a diagnosis of what was never done, but its
    // processes were killed before they could reap anything.
    let script_stopped = run.script_error.is_some();
    if run.killed_because.is_some() && !script_stopped {
        return judged;
    }
    if !script_stopped {
        judged.push(all_reaped(&trace).judged(&trace, "all_reaped", every_case));
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
        let context = Context {
            trace: &trace,
            process,
            requirement,
            bindings,
            run,
        };
        let found = match requirement.what.as_str() {
            "fork" => fork(&context),
            "written_by_child" => written_by_child(&context),
            "computed_by_child" => computed_by_child(&context),
            "signal" => signal(&context),
            "child_killed" => child_killed(&context),
            "reaped" => reaped(&context),
            "reported_status" => reported_status(&context),
            "pid_is_child" => pid_is_child(&context),
            "fifos" => fifos(&context),
            "one_at_a_time" => one_at_a_time(&context),
            "slices" => slices(&context),
            "pipes" => pipes(&context),
            "cpu_at_most" => cpu_at_most(&context),
            "idle" => idle(&context),
            "worker_lines" => worker_lines(&context),
            _ => continue,
        };
        judged.push(found.judged(&trace, &requirement.what, &name));
    }
    judged
}

/// What a requirement is judged with.
struct Context<'a> {
    trace: &'a Trace<'a>,
    process: &'a ProcessRun,
    requirement: &'a Requirement,
    bindings: &'a Bindings,
    run: &'a CaseRun,
}

impl Context<'_> {
    /// The PIDs a role names: `main` (the process), a name the transcript
    /// bound (`child` when `{pid:child}` was printed: that process only),
    /// or `child` unbound (every process it created).
    fn role(&self, name: Option<&str>) -> BTreeSet<i32> {
        let name = name.unwrap_or("main");
        if name == "main" {
            return BTreeSet::from([self.process.pid]);
        }
        if let Some(&pid) = self.bindings.get(name) {
            return BTreeSet::from([pid]);
        }
        if name == "child" {
            return self.trace.children(self.process.pid);
        }
        BTreeSet::new()
    }

    /// How a role reads in a diagnosis.
    fn role_name(&self, name: Option<&str>) -> String {
        match name.unwrap_or("main") {
            "main" => self.process.name.clone(),
            other => match self.bindings.get(other) {
                Some(pid) => format!("{other} {pid}"),
                None => other.to_string(),
            },
        }
    }

    /// The children of the process, narrowed to the one the transcript
    /// names as `{pid:child}`, when it does.
    fn the_child(&self) -> BTreeSet<i32> {
        let children = self.trace.children(self.process.pid);
        match self.bindings.get("child") {
            Some(pid) if children.contains(pid) => BTreeSet::from([*pid]),
            _ => children,
        }
    }
}

fn no_refused_calls<'a>(trace: &Trace<'a>) -> Finding<'a> {
    let mut found = Finding::held([]);
    let mut refused = BTreeSet::new();
    for e in trace.of_kind(EventKind::Refused) {
        let what = e.text.clone().unwrap_or_default();
        if refused.insert((e.pid, what.clone())) {
            found.problems.push(problem_with(
                format!("process {} made a refused system call: {what}", e.pid),
                vec![],
            ));
            found.events.push(e);
        }
    }
    found
}

fn all_reaped<'a>(trace: &Trace<'a>) -> Finding<'a> {
    let reaps: Vec<&Event> = trace.of_kind(EventKind::Reap).collect();
    let reaped: BTreeSet<i32> = reaps.iter().filter_map(|e| e.other).collect();
    let mut found = Finding::held([]);
    for spawn in trace.of_kind(EventKind::Spawn) {
        let (child, parent) = (spawn.pid, spawn.other.unwrap_or(0));
        if parent != trace.grader && !reaped.contains(&child) {
            found.problems.push(problem_with(
                format!("process {child}, created by {parent}, was never reaped (wait/waitpid): it was left a zombie or an orphan"),
                vec![],
            ));
            found.events.push(spawn);
            found
                .events
                .extend(trace.of_kind(EventKind::Exit).filter(|e| e.pid == child));
        }
    }
    if found.problems.is_empty() {
        found.events = reaps;
    }
    found
}

fn fork<'a>(c: &Context<'a>) -> Finding<'a> {
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

/// What a series of reads or writes moved, in order, as runs of bytes
/// known to be contiguous: an event whose contents were not all kept (cut
/// by the trace's budget, or moved unseen) ends a run, so that no match
/// spans bytes the trace did not see.
#[derive(Default, Clone)]
struct Contents {
    runs: Vec<String>,
    /// Events whose contents the trace's budget cut.
    cut: usize,
}

impl Contents {
    fn push(&mut self, event: &Event) {
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

    fn contains(&self, text: &str) -> bool {
        self.runs.iter().any(|run| run.contains(text))
    }

    /// The beginning, for a diagnosis.
    fn start(&self) -> &str {
        self.runs.first().map_or("", String::as_str)
    }
}

/// A diagnosis's note when contents it needed were not all kept.
fn cut_note(cut: usize) -> Vec<String> {
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
fn written(trace: &Trace, onto: impl Fn(&Event) -> bool) -> BTreeMap<i32, Contents> {
    let mut streams: BTreeMap<i32, Contents> = BTreeMap::new();
    for e in trace.of_kind(EventKind::Write).filter(|e| onto(e)) {
        streams.entry(e.pid).or_default().push(e);
    }
    streams
}

/// The writes of `pid` that `onto` picks and that carried `needle` (the
/// writes its first occurrence in their concatenation spans), or all of
/// them if none did.
fn writes_carrying<'a>(
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

fn written_by_child<'a>(c: &Context<'a>) -> Finding<'a> {
    let pattern = c.requirement.line.as_deref().unwrap_or("");
    // No such line: the output checks say so.
    let Some(&line) = matching_lines(c.process, pattern).first() else {
        return Finding::held([]);
    };
    let children = c.the_child();
    // Only bytes a write put on the process's own stdout (the pipe the
    // grader reads) count: a child whose fd 1 is /dev/null wrote nothing
    // anyone saw, whatever it wrote there.
    let stdout = stdio_of(c.run, c.trace)
        .get(&c.process.pid)
        .and_then(|streams| streams.get(1).cloned());
    let onto = |e: &Event| match &stdout {
        Some(pipe) => e.target.as_deref() == Some(pipe.as_str()),
        None => e.fd == Some(1),
    };
    let streams = written(c.trace, onto);
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
fn computed_by_child<'a>(c: &Context<'a>) -> Finding<'a> {
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

fn signal_matches(event: &Event, wanted: &str) -> bool {
    wanted == "any" || event.signal.as_deref() == Some(&full_signal_name(wanted))
}

fn signal<'a>(c: &Context<'a>) -> Finding<'a> {
    let requirement = c.requirement;
    let trace = c.trace;
    let wanted = requirement.signal.as_deref().unwrap_or("any");
    let senders = c.role(requirement.from.as_deref());
    let targets = c.role(requirement.to.as_deref());
    let from_name = c.role_name(requirement.from.as_deref());
    let to_name = c.role_name(requirement.to.as_deref());
    // When the senders received the signal they answer: its delivery to
    // them, or their taking it (sigwaitinfo, signalfd).
    let receipt: Option<Option<&Event>> = requirement.after_receiving.as_ref().map(|received| {
        trace
            .of_kind(EventKind::Signal)
            .filter(|e| senders.contains(&e.pid) && signal_matches(e, received))
            .min_by(|a, b| a.at_ms.total_cmp(&b.at_ms))
    });
    let received_at = receipt.map(|r| r.map_or(f64::MAX, |e| e.at_ms));
    let sent: Vec<&Event> = trace
        .of_kind(EventKind::Kill)
        .filter(|e| {
            senders.contains(&e.pid)
                && Trace::reached(e).iter().any(|t| targets.contains(t))
                && signal_matches(e, wanted)
        })
        .collect();
    let what = if wanted == "any" {
        "a signal".to_string()
    } else {
        full_signal_name(wanted)
    };
    // A kill counts from its start: it must begin after the delivery.
    let began = |e: &Event| e.start_ms.unwrap_or(e.at_ms);
    let Some(&first) = sent
        .iter()
        .find(|e| received_at.is_none_or(|t| began(e) >= t))
    else {
        let mut headline = format!("no {from_name} sent {what} to {to_name}");
        let received = requirement.after_receiving.as_deref().map(full_signal_name);
        if let (Some(received), Some(at), Some(early)) = (&received, received_at, sent.first()) {
            headline = if at == f64::MAX {
                format!("{from_name} sent {what} to {to_name} but never received {received}")
            } else {
                format!(
                    "the kill came {:.3} s before {from_name} received {received}",
                    (at - began(early)) / 1e3
                )
            };
        } else if let (Some(received), Some(f64::MAX)) = (&received, received_at) {
            headline = format!("{from_name} never received {received}, so {headline}");
        }
        let seen: Vec<String> = trace
            .of_kind(EventKind::Kill)
            .map(|e| {
                format!(
                    "pid {} sent {} to {} ({}, reaching {:?}) at {:.3} s",
                    e.pid,
                    e.signal.as_deref().unwrap_or("?"),
                    e.other.unwrap_or(0),
                    e.text.as_deref().unwrap_or("kill"),
                    Trace::reached(e),
                    e.at_ms / 1e3
                )
            })
            .collect();
        let detail = if seen.is_empty() {
            "signals sent: none".to_string()
        } else {
            format!("signals sent: {}", seen.join("; "))
        };
        // What happened instead: the kills that went the wanted way (too
        // early), the receipt, then every other kill.
        return Finding::failed(
            problem_with(headline, vec![detail]),
            sent.iter()
                .copied()
                .chain(receipt.flatten())
                .chain(trace.of_kind(EventKind::Kill)),
        );
    };
    let mut decided: Vec<&Event> = std::iter::once(first).chain(receipt.flatten()).collect();
    if let Some(pattern) = &requirement.announced {
        match announcement(c, pattern, first.pid, began(first)) {
            Ok(writes) => decided.extend(writes),
            Err(found) => return found.with(first),
        }
    }
    let decided = decided.into_iter();
    if let (Some(at), Some(tolerance)) = (&requirement.at, &requirement.tolerance) {
        let (Ok(at), Ok(tolerance)) = (parse_duration(at), parse_duration(tolerance)) else {
            return Finding::held(decided);
        };
        // From the sender's creation: a child's delay starts when it does.
        let born = trace.of_kind(EventKind::Spawn).find(|e| e.pid == first.pid);
        let seen = (began(first) - born.map_or(c.process.started_ms, |e| e.at_ms)) / 1e3;
        let decided = decided.chain(born);
        if (seen - at.as_secs_f64()).abs() > tolerance.as_secs_f64() {
            return Finding::failed(
                problem_with(
                    format!(
                        "{what} from {from_name} came {seen:.3} s after it was created, not between {:.3} and {:.3} s",
                        (at.as_secs_f64() - tolerance.as_secs_f64()).max(0.0),
                        at.as_secs_f64() + tolerance.as_secs_f64()
                    ),
                    vec![],
                ),
                decided,
            );
        }
        return Finding::held(decided);
    }
    Finding::held(decided)
}

/// The writes by which `sender` put the stdout line matching `pattern` on
/// the process's stdout, all returned by `before` (ms), the start of the
/// signal it announces; else the failure.
fn announcement<'a>(
    c: &Context<'a>,
    pattern: &str,
    sender: i32,
    before: f64,
) -> Result<Vec<&'a Event>, Finding<'a>> {
    // No such line: the output checks say so.
    let Some(&line) = matching_lines(c.process, pattern).first() else {
        return Ok(Vec::new());
    };
    let stdout = stdio_of(c.run, c.trace)
        .get(&c.process.pid)
        .and_then(|streams| streams.get(1).cloned());
    let onto = |e: &Event| match &stdout {
        Some(pipe) => e.target.as_deref() == Some(pipe.as_str()),
        None => e.fd == Some(1),
    };
    let writes = writes_carrying(c.trace, sender, onto, line);
    let text: String = writes.iter().filter_map(|e| e.text.as_deref()).collect();
    if !text.contains(line) {
        let hidden = unseen(writes.iter().copied());
        if !hidden.is_empty() {
            return Err(Finding::unseen(
                format!("`{line}` was not seen written by pid {sender} before its signal: it wrote with"),
                hidden,
                [],
            ));
        }
        return Err(Finding::failed(
            problem_with(
                format!(
                    "`{line}` was not written by pid {sender}, which sent the signal it announces"
                ),
                vec![],
            ),
            writes,
        ));
    }
    let last = writes.iter().map(|e| e.at_ms).fold(f64::MIN, f64::max);
    if last > before {
        return Err(Finding::failed(
            problem_with(
                format!(
                    "pid {sender} wrote `{line}` {:.3} s after it began to send the signal: it must announce first, then send",
                    (last - before) / 1e3
                ),
                vec![],
            ),
            writes,
        ));
    }
    Ok(writes)
}

fn child_killed<'a>(c: &Context<'a>) -> Finding<'a> {
    let trace = c.trace;
    let wanted = c.requirement.signal.as_deref().unwrap_or("any");
    let children = c.the_child();
    let kills_of = |exit: &Event| {
        trace.of_kind(EventKind::Kill).find(move |k| {
            k.pid == c.process.pid
                && Trace::reached(k).contains(&exit.pid)
                && k.signal == exit.signal
                // Begun before the death: the kill is logged at its
                // exit, which a loaded tracer may see after the target's
                // own exit, though the signal came first.
                && k.start_ms.unwrap_or(k.at_ms) <= exit.at_ms
        })
    };
    let killed = trace.of_kind(EventKind::Exit).find_map(|exit| {
        (children.contains(&exit.pid) && exit.signal.is_some() && signal_matches(exit, wanted))
            .then(|| kills_of(exit).map(|kill| [kill, exit]))
            .flatten()
    });
    if let Some(decided) = killed {
        return Finding::held(decided);
    }
    let exits: Vec<&Event> = trace
        .of_kind(EventKind::Exit)
        .filter(|e| children.contains(&e.pid))
        .collect();
    let ends: Vec<String> = exits
        .iter()
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
    Finding::failed(
        problem_with(
            format!(
                "no child of {} died of {what} that {} sent it",
                c.process.name, c.process.name
            ),
            vec![format!(
                "its children: {}",
                if ends.is_empty() {
                    "none".to_string()
                } else {
                    ends.join("; ")
                }
            )],
        ),
        exits.into_iter().chain(
            trace
                .of_kind(EventKind::Kill)
                .filter(|k| k.pid == c.process.pid),
        ),
    )
}

fn reaped<'a>(c: &Context<'a>) -> Finding<'a> {
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
fn reported_status<'a>(c: &Context<'a>) -> Finding<'a> {
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

fn pid_is_child<'a>(c: &Context<'a>) -> Finding<'a> {
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

/// `paths` and every name they were later linked or renamed to.
fn with_later_names(trace: &Trace, mut paths: BTreeSet<String>) -> BTreeSet<String> {
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

/// The standard streams (`pipe:[..]` for 0, 1, 2) the grader gave each
/// started process.
fn stdio_of(run: &CaseRun, trace: &Trace) -> BTreeMap<i32, Vec<String>> {
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

fn fifos<'a>(c: &Context<'a>) -> Finding<'a> {
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
        return Finding::failed(
            problem_with(format!("{name} made no FIFO (mkfifo)"), vec![]),
            trace.of_kind(EventKind::Open).filter(|e| e.pid == me),
        );
    }
    // A FIFO's names: made, then linked or renamed.
    let names = with_later_names(trace, made);
    // Access mode 1 is O_WRONLY: anything else can read.
    let opened_for_reading = trace.of_kind(EventKind::Open).find(|e| {
        e.pid == me && e.code != Some(1) && e.text.as_ref().is_some_and(|p| names.contains(p))
    });
    let Some(opened_for_reading) = opened_for_reading else {
        return Finding::failed(
            problem_with(
                format!("{name} never opened its own FIFO for reading"),
                vec![],
            ),
            makes
                .iter()
                .copied()
                .chain(trace.of_kind(EventKind::Open).filter(|e| e.pid == me)),
        );
    };
    let removals: Vec<&Event> = trace
        .of_kind(EventKind::Unlink)
        .chain(trace.of_kind(EventKind::Rename))
        .filter(|e| e.text.as_ref().is_some_and(|p| names.contains(p)))
        .collect();
    let removed: BTreeSet<&String> = removals.iter().filter_map(|e| e.text.as_ref()).collect();
    let left: Vec<&String> = names.iter().filter(|n| !removed.contains(n)).collect();
    if !left.is_empty() {
        return Finding::failed(
            problem_with(
                format!("{name} did not unlink its FIFO {}", left[0]),
                vec![],
            ),
            makes.iter().copied().chain(removals),
        );
    }
    // What it rests on so far: the FIFO made, read and removed.
    let mut decided: Vec<&Event> = makes.clone();
    decided.push(opened_for_reading);
    decided.extend(removals);
    // Sockets could carry messages past the FIFOs (a socketpair cannot
    // reach another member: it only links a process to itself).
    let mine = |e: &&Event| e.pid == me || trace.descendants(me).contains(&e.pid);
    if let Some(e) = trace
        .of_kind(EventKind::Socket)
        .filter(mine)
        .find(|e| e.text.as_deref() == Some("socket"))
    {
        return Finding::failed(
            problem_with(
                format!(
                    "process {} of {name} created a socket: members must talk through FIFOs only",
                    e.pid
                ),
                vec![],
            ),
            [e],
        );
    }
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
    for write in trace.of_kind(EventKind::Write).filter(mine) {
        let Some(target) = write.target.as_deref() else {
            continue;
        };
        if every_fifo.contains(target) {
            if write.bytes.unwrap_or(0) > PIPE_BUF {
                return Finding::failed(
                    problem_with(
                        format!("{name} wrote {} bytes to {target} at once: more than PIPE_BUF ({PIPE_BUF}), so it may interleave", write.bytes.unwrap_or(0)),
                        vec![],
                    ),
                    [write],
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
            return Finding::failed(
                problem_with(
                    format!("{name} wrote into the standard streams of process {other} ({target}, through /proc): members must talk through FIFOs only"),
                    vec![],
                ),
                [write],
            );
        }
        if target.starts_with("socket:") || target.starts_with("anon_inode:") {
            continue;
        }
        if target.starts_with("pipe:") {
            // A pipe of its own making (a self-pipe) reaches no one else.
            let own_pipe = trace
                .of_kind(EventKind::Pipe)
                .any(|p| p.pid == me && p.target.as_deref() == Some(target));
            if own_pipe {
                continue;
            }
        }
        if target == "/dev/null" {
            continue;
        }
        return Finding::failed(
            problem_with(
                format!("{name} wrote to {target}, which is not a FIFO: members must talk through FIFOs only"),
                vec![],
            ),
            [write],
        );
    }
    // Every line goes out whole, in one write: a write into a FIFO ends
    // with its line's end, so that the next begins a line too. (One whose
    // contents were not all seen is judged by the messages below.)
    if let Some(piece) = fifo_writes
        .iter()
        .find(|w| !w.cut && w.unseen.is_none() && !w.text.as_deref().unwrap_or("").ends_with('\n'))
    {
        return Finding::failed(
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
        );
    }
    // Each message line, as its sender writes it, went out in one write.
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
                return Finding::unseen(
                    format!("{name}'s message `{message}` went into no FIFO in one write the grader saw: it wrote to FIFOs with"),
                    hidden,
                    [],
                );
            }
            return Finding::failed(
                problem_with(
                    format!("{name}'s message `{message}` went into no FIFO in one write"),
                    cut_note(fifo_writes.iter().filter(|w| w.cut).count()),
                ),
                fifo_writes,
            );
        };
        decided.push(whole);
    }
    Finding::held(decided)
}

/// A stretch a process ran (see [`running`]).
#[derive(Clone, Copy)]
struct Run<'a> {
    pid: i32,
    start: f64,
    end: f64,
    /// The CPU time it got in the stretch (the scheduler's count), when
    /// known at both ends: from its creation (none yet) or a continue, to a
    /// stop.
    cpu: Option<f64>,
    /// The creation, continue or SIGCONT it began with.
    from: &'a Event,
    /// The SIGSTOP that ended it, if one did, and the stop or exit seen
    /// after (none: it still ran at the end of the trace, or a SIGCONT
    /// discarded the SIGSTOP).
    stopped_by: Option<&'a Event>,
    to: Option<&'a Event>,
}

impl<'a> Run<'a> {
    fn events(&self) -> Vec<&'a Event> {
        [Some(self.from), self.stopped_by, self.to]
            .into_iter()
            .flatten()
            .collect()
    }

    /// The CPU time it got, or else its length.
    fn busy(&self) -> f64 {
        self.cpu.unwrap_or(self.end - self.start)
    }
}

/// When each process ran, in ms since the start of the case.
///
/// A process runs from its creation or a `cont` until a `stop` or its
/// exit. A stop is logged when the tracer sees it, which on a loaded
/// machine can be well after the SIGSTOP that caused it: the SIGSTOP stays
/// pending, and the kernel acts on a pending SIGSTOP before the process
/// runs any more of its own code. So a single-threaded process stops
/// running when a SIGSTOP is sent to it (when that kill returned), and only
/// runs again once it is continued: from its `cont`, or from the start of a
/// kill that sent it SIGCONT, which discards a SIGSTOP still pending. A
/// process with more threads than one (a `thread` event) runs on until its
/// stop is seen: another thread can run until the one the kernel woke for
/// the SIGSTOP stops them all.
fn running<'a>(trace: &Trace<'a>, of: &BTreeSet<i32>) -> BTreeMap<i32, Vec<Run<'a>>> {
    struct Open<'a> {
        start: f64,
        cpu: Option<f64>,
        from: &'a Event,
    }
    // Running, or held by a pending SIGSTOP (its run already closed, its
    // CPU time known at the stop).
    let mut open: BTreeMap<i32, Open<'a>> = BTreeMap::new();
    let mut held: BTreeMap<i32, usize> = BTreeMap::new();
    let mut threaded: BTreeSet<i32> = BTreeSet::new();
    // When the last SIGCONT sent to each process returned.
    let mut continued: BTreeMap<i32, f64> = BTreeMap::new();
    let mut runs: BTreeMap<i32, Vec<Run>> = BTreeMap::new();
    let end_of_trace = trace.events.last().map_or(0.0, |e| e.at_ms);
    for e in trace.events {
        if e.kind == EventKind::Kill {
            for pid in Trace::reached(e).into_iter().filter(|p| of.contains(p)) {
                match e.signal.as_deref() {
                    Some("SIGCONT") => {
                        continued.insert(pid, e.at_ms);
                        if held.remove(&pid).is_some() {
                            // Its SIGSTOP was discarded: it runs on.
                            open.insert(
                                pid,
                                Open {
                                    start: e.start_ms.unwrap_or(e.at_ms),
                                    cpu: None,
                                    from: e,
                                },
                            );
                        }
                    }
                    Some("SIGSTOP") if !threaded.contains(&pid) => {
                        // Only a SIGSTOP begun after any SIGCONT to it had
                        // returned is surely still pending after both.
                        let after = continued
                            .get(&pid)
                            .is_none_or(|&c| e.start_ms.unwrap_or(e.at_ms) > c);
                        if !after {
                            continue;
                        }
                        let Some(run) = open.remove(&pid) else {
                            continue;
                        };
                        let list = runs.entry(pid).or_default();
                        // Until the stop, `cpu` holds the count at the start.
                        list.push(Run {
                            pid,
                            start: run.start,
                            end: e.at_ms.max(run.start),
                            cpu: run.cpu,
                            from: run.from,
                            to: None,
                            stopped_by: Some(e),
                        });
                        held.insert(pid, list.len() - 1);
                    }
                    _ => {}
                }
            }
            continue;
        }
        if !of.contains(&e.pid) {
            continue;
        }
        match e.kind {
            EventKind::Thread => {
                threaded.insert(e.pid);
            }
            // A new process has had no CPU time yet.
            EventKind::Spawn | EventKind::Cont => {
                if let Some(index) = held.remove(&e.pid) {
                    runs.get_mut(&e.pid).expect("a held run")[index].cpu = None;
                }
                open.entry(e.pid).or_insert(Open {
                    start: e.at_ms,
                    cpu: if e.kind == EventKind::Spawn {
                        Some(0.0)
                    } else {
                        e.cpu_ms
                    },
                    from: e,
                });
            }
            EventKind::Stop | EventKind::Exit => {
                let cpu_since = |start: Option<f64>| match (e.kind, start, e.cpu_ms) {
                    (EventKind::Stop, Some(a), Some(b)) => Some(b - a),
                    _ => None,
                };
                if let Some(index) = held.remove(&e.pid) {
                    let run = &mut runs.get_mut(&e.pid).expect("a held run")[index];
                    run.to = Some(e);
                    run.cpu = cpu_since(run.cpu);
                } else if let Some(run) = open.remove(&e.pid) {
                    runs.entry(e.pid).or_default().push(Run {
                        pid: e.pid,
                        start: run.start,
                        end: e.at_ms,
                        cpu: cpu_since(run.cpu),
                        from: run.from,
                        to: Some(e),
                        stopped_by: None,
                    });
                }
            }
            _ => {}
        }
    }
    // A run held until the end: its CPU time was never known.
    for (pid, index) in held {
        runs.get_mut(&pid).expect("a held run")[index].cpu = None;
    }
    for (pid, run) in open {
        runs.entry(pid).or_default().push(Run {
            pid,
            start: run.start,
            end: end_of_trace,
            cpu: None,
            from: run.from,
            to: None,
            stopped_by: None,
        });
    }
    runs
}

/// The programs the process runs, wherever they sit below it, each with
/// every process of its subtree: one program at a time means one subtree
/// at a time. A program is a process that exec'd, below no process that
/// had exec'd before it was created: so a coordinator's own helpers (an
/// intermediate that forks and waits) are not programs, and a middle
/// process that starts every program as its own children does not make
/// them one. Each process belongs to its nearest program; a child under
/// which nothing exec'd is a program of its own.
fn programs(trace: &Trace, process: &ProcessRun) -> BTreeMap<i32, BTreeSet<i32>> {
    let below = trace.descendants(process.pid);
    let parent_of = |pid: i32| {
        trace
            .of_kind(EventKind::Spawn)
            .find(|e| e.pid == pid)
            .and_then(|e| e.other)
    };
    let born = |pid: i32| {
        trace
            .of_kind(EventKind::Spawn)
            .find(|e| e.pid == pid)
            .map_or(0.0, |e| e.at_ms)
    };
    // Its ancestors below the process, nearest first.
    let ancestors = |pid: i32| {
        let mut chain = Vec::new();
        let mut at = pid;
        while let Some(parent) = parent_of(at) {
            if parent == process.pid || chain.len() > below.len() {
                break;
            }
            chain.push(parent);
            at = parent;
        }
        chain
    };
    let roots: BTreeSet<i32> = below
        .iter()
        .copied()
        .filter(|&pid| {
            trace.exec_of(pid).is_some()
                && ancestors(pid)
                    .iter()
                    .all(|&a| trace.exec_of(a).is_none_or(|exec| exec.at_ms > born(pid)))
        })
        .collect();
    let mut programs: BTreeMap<i32, BTreeSet<i32>> =
        roots.iter().map(|&r| (r, BTreeSet::from([r]))).collect();
    for pid in below.iter().filter(|p| !roots.contains(p)) {
        if let Some(root) = ancestors(*pid).into_iter().find(|a| roots.contains(a)) {
            programs.entry(root).or_default().insert(*pid);
        }
    }
    // A child under which nothing exec'd (a program stopped before its
    // exec and abandoned, or one that never execs) is a program too, with
    // its whole subtree.
    for child in trace.children(process.pid) {
        let mut tree = trace.descendants(child);
        tree.insert(child);
        if !tree.iter().any(|p| roots.contains(p)) {
            programs.insert(child, tree);
        }
    }
    programs
}

/// How deep `pid` is below `program` (0: the program itself).
fn depth_below(trace: &Trace, program: i32, pid: i32) -> usize {
    let mut depth = 0;
    let mut at = pid;
    while at != program && depth < 64 {
        match trace
            .of_kind(EventKind::Spawn)
            .find(|e| e.pid == at)
            .and_then(|e| e.other)
        {
            Some(parent) => at = parent,
            None => break,
        }
        depth += 1;
    }
    depth
}

fn one_at_a_time<'a>(c: &Context<'a>) -> Finding<'a> {
    let trace = c.trace;
    let tolerance_ms = c
        .requirement
        .tolerance
        .as_deref()
        .and_then(|t| parse_duration(t).ok())
        .map_or(2.0, |d| d.as_secs_f64() * 1e3);
    let programs = programs(trace, c.process);
    let everyone: BTreeSet<i32> = programs.values().flatten().copied().collect();
    let program_of = |pid: i32| {
        programs
            .iter()
            .find(|(_, tree)| tree.contains(&pid))
            .map_or(pid, |(p, _)| *p)
    };
    let all: Vec<Run> = running(trace, &everyone).into_values().flatten().collect();
    let mut worst: Option<(f64, &Run, &Run)> = None;
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            let overlap = a.end.min(b.end) - a.start.max(b.start);
            if program_of(a.pid) != program_of(b.pid) && worst.is_none_or(|w| overlap > w.0) {
                worst = Some((overlap, a, b));
            }
        }
    }
    if let Some((overlap, a, b)) = worst.filter(|w| w.0 > tolerance_ms) {
        let describe = |pid: i32| {
            let program = program_of(pid);
            let parent = trace
                .of_kind(EventKind::Spawn)
                .find(|e| e.pid == pid)
                .and_then(|e| e.other);
            match depth_below(trace, program, pid) {
                0 => match parent {
                    Some(parent) if parent != c.process.pid => {
                        format!(
                            "program {pid} (started by process {parent}, not by {})",
                            c.process.name
                        )
                    }
                    _ => format!("program {pid}"),
                },
                1 => format!("process {pid} (a child of program {program})"),
                depth => format!("process {pid} ({depth} levels below program {program})"),
            }
        };
        return Finding::failed(
            problem_with(
                format!(
                    "{} and {} ran at the same time for {overlap:.1} ms: only one program may run at a time, with everything it started",
                    describe(a.pid),
                    describe(b.pid)
                ),
                vec![format!(
                    "{} ran from {:.3} s to {:.3} s, {} from {:.3} s to {:.3} s",
                    a.pid,
                    a.start / 1e3,
                    a.end / 1e3,
                    b.pid,
                    b.start / 1e3,
                    b.end / 1e3
                )],
            ),
            a.events().into_iter().chain(b.events()),
        );
    }
    // Nothing stopped and abandoned: a program stopped for the last time
    // must have been continued before it ended.
    for (program, tree) in &programs {
        for pid in tree {
            let states: Vec<&Event> = trace
                .events
                .iter()
                .filter(|e| {
                    e.pid == *pid
                        && matches!(e.kind, EventKind::Stop | EventKind::Cont | EventKind::Exit)
                })
                .collect();
            let last = states.last().map(|e| (e.kind, e.at_ms));
            let stopped_last = states
                .iter()
                .rev()
                .find(|e| e.kind != EventKind::Exit)
                .copied();
            match last {
                Some((EventKind::Stop, at)) => {
                    return Finding::failed(
                        problem_with(
                            format!("process {pid} (of program {program}) was stopped at {:.3} s and never continued: nothing may be left stopped", at / 1e3),
                            vec![],
                        ),
                        stopped_last,
                    )
                }
                Some((EventKind::Exit, _)) if stopped_last.is_some_and(|e| e.kind == EventKind::Stop) => {
                    // It died while stopped: it was abandoned.
                    return Finding::failed(
                        problem_with(
                            format!("process {pid} (of program {program}) was stopped and never continued before it was killed: it was abandoned"),
                            vec![],
                        ),
                        stopped_last.into_iter().chain(states.last().copied()),
                    );
                }
                _ => {}
            }
        }
    }
    // What it rests on: the closest two programs came to running at once.
    Finding::held(
        worst
            .map(|(_, a, b)| [a.events(), b.events()].concat())
            .unwrap_or_default(),
    )
}

/// Every stretch a program ran while another waited is judged, by the CPU
/// time the program got in it (the scheduler's count, logged at each stop
/// and continue; wall time where it is missing): at most `slice` +
/// `tolerance` (default half a slice). A share `outliers` of the stretches
/// (default 0.1) may run longer. CPU time, unlike wall time, does not grow
/// much when a loaded machine wakes the coordinator late: the program then
/// shares its CPU with the load. The median stretch in wall time must stay
/// within `slice` + `tolerance` too: the typical slice is on time even on a
/// loaded machine, and a coordinator that gives long slices everywhere is
/// caught even where each gets little CPU.
///
/// A program is its whole subtree: it runs while any of its processes
/// does, and the CPU time of a stretch is that of its busiest process in
/// it (a program run through an intermediate process does its work in a
/// grandchild; two busy processes of one program may share a slice on two
/// CPUs).
fn slices<'a>(c: &Context<'a>) -> Finding<'a> {
    let trace = c.trace;
    let Some(Ok(slice)) = c.requirement.slice.as_deref().map(parse_duration) else {
        return Finding::held([]);
    };
    let slice_ms = slice.as_secs_f64() * 1e3;
    let tolerance_ms = c
        .requirement
        .tolerance
        .as_deref()
        .and_then(|t| parse_duration(t).ok())
        .map_or(slice_ms / 2.0, |d| d.as_secs_f64() * 1e3);
    let share = c.requirement.outliers.unwrap_or(0.1);
    // Each program's stretches: its processes' runs, merged where they
    // overlap.
    struct Stretch<'a> {
        start: f64,
        end: f64,
        busy: f64,
        runs: Vec<Run<'a>>,
    }
    let mut stretches_of: BTreeMap<i32, Vec<Stretch>> = BTreeMap::new();
    for (program, tree) in programs(trace, c.process) {
        let mut runs: Vec<Run> = running(trace, &tree).into_values().flatten().collect();
        runs.sort_by(|a, b| a.start.total_cmp(&b.start));
        let mut merged: Vec<Stretch> = Vec::new();
        for run in runs {
            match merged.last_mut() {
                Some(last) if run.start <= last.end => {
                    last.end = last.end.max(run.end);
                    last.busy = last.busy.max(run.busy());
                    last.runs.push(run);
                }
                _ => merged.push(Stretch {
                    start: run.start,
                    end: run.end,
                    busy: run.busy(),
                    runs: vec![run],
                }),
            }
        }
        stretches_of.insert(program, merged);
    }
    // A program waits while it is alive but not running.
    let lifetime: BTreeMap<i32, (f64, f64)> = stretches_of
        .iter()
        .map(|(pid, list)| {
            (
                *pid,
                (
                    list.first().map_or(0.0, |s| s.start),
                    list.last().map_or(0.0, |s| s.end),
                ),
            )
        })
        .collect();
    let ran_within = |pid: &i32, a: f64, b: f64| -> f64 {
        stretches_of[pid]
            .iter()
            .map(|s| (b.min(s.end) - a.max(s.start)).max(0.0))
            .sum()
    };
    // (program, the stretch): those it ran while another waited.
    let mut judged: Vec<(i32, &Stretch)> = Vec::new();
    for (pid, list) in &stretches_of {
        for stretch in list {
            let (a, b) = (stretch.start, stretch.end);
            let someone_waited = lifetime.iter().any(|(other, &(born, died))| {
                other != pid
                    && b.min(died) - a.max(born) > (b - a) / 2.0
                    && ran_within(other, a, b) < (b - a) / 2.0
            });
            if b - a > 1.0 && someone_waited {
                judged.push((*pid, stretch));
            }
        }
    }
    if judged.is_empty() {
        return Finding::held([]);
    }
    let events_of = |stretch: &Stretch<'a>| -> Vec<&'a Event> {
        stretch.runs.iter().flat_map(|r| r.events()).collect()
    };
    let limit = slice_ms + tolerance_ms;
    let allowed = (judged.len() as f64 * share).floor() as usize;
    // And the typical stretch in wall time: a coordinator that hands out
    // long slices on a loaded machine, where each gets little CPU, still
    // shows them here.
    let mut by_wall: Vec<&(i32, &Stretch)> = judged.iter().collect();
    by_wall.sort_by(|x, y| (x.1.end - x.1.start).total_cmp(&(y.1.end - y.1.start)));
    let median = by_wall[by_wall.len() / 2];
    let median_ms = median.1.end - median.1.start;
    // Both rules are judged, and both said when both fail: on a loaded
    // machine a coordinator with long slices can break either first.
    let mut found = Finding::held([]);
    if median_ms > limit {
        found.problems.push(problem_with(
            format!(
                "programs ran {median_ms:.1} ms at a stretch (the median of {} stretches) while others waited; the slice is {slice_ms:.1} ms (+ {tolerance_ms:.1} ms)",
                judged.len()
            ),
            vec![],
        ));
        found.events.extend(events_of(median.1));
    }
    let mut by_cpu: Vec<&(i32, &Stretch)> = judged.iter().collect();
    by_cpu.sort_by(|x, y| y.1.busy.total_cmp(&x.1.busy));
    let (pid, longest) = *by_cpu[0];
    let over = judged.iter().filter(|s| s.1.busy > limit).count();
    if over > allowed {
        found.problems.push(problem_with(
            format!(
                "{over} of {} slices ran longer than {slice_ms:.1} ms + {tolerance_ms:.1} ms of CPU time while others waited (at most {allowed} may); the longest: program {pid}, {:.1} ms of CPU in {:.1} ms",
                judged.len(),
                longest.busy,
                longest.end - longest.start
            ),
            vec![],
        ));
    }
    // The longest stretch: at fault, or the one that came closest.
    found.events.extend(events_of(longest));
    found
}

/// Data went down one pipe (written by the process, read by the child)
/// and came back up another; with `down` and `up`, those texts travelled
/// that way.
fn pipes<'a>(c: &Context<'a>) -> Finding<'a> {
    let trace = c.trace;
    let children = c.the_child();
    let me = c.process.pid;
    // Per pipe, what the process (or the child) wrote into it or read, and
    // the events that moved it.
    type Flow<'e> = BTreeMap<String, (Contents, Vec<&'e Event>)>;
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
    let both_ways = |flows: &Flow<'a>| -> Vec<&'a Event> {
        flows
            .values()
            .flat_map(|(_, events)| events.iter().copied())
            .collect()
    };
    if down.len() == 1 && down.keys().eq(up.keys()) {
        return Finding::failed(
            problem_with(
                format!("{name} and its child used one pipe both ways: a pipe is one-way"),
                vec![],
            ),
            both_ways(&down),
        );
    }
    for (texts, way, flows) in [
        (&c.requirement.down, "down", &down),
        (&c.requirement.up, "up", &up),
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
                    return Finding::unseen(
                        format!("`{text}` never went {way} a pipe as it should: {writer} sent its data {way} with"),
                        hidden,
                        [],
                    );
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
                return Finding::failed(
                    problem_with(
                        format!("`{text}` never went {way} a pipe as it should"),
                        details,
                    ),
                    both_ways(flows),
                );
            }
        }
    }
    Finding::held(
        creations
            .into_iter()
            .chain(both_ways(&down))
            .chain(both_ways(&up)),
    )
}

/// The CPU time of the process and every process it created.
fn cpu_at_most<'a>(c: &Context<'a>) -> Finding<'a> {
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

/// Each worker line (matching `line`) was written onto the process's
/// stdout by the process whose PID it names, one of the programs, exec'd
/// as a file named in `exec` or as the coordinator's own binary; and every
/// such program wrote one. A line printed for a worker by anyone else (a
/// thread of the coordinator, a dummy's parent) is not the worker's.
fn worker_lines<'a>(c: &Context<'a>) -> Finding<'a> {
    let pattern = c.requirement.line.as_deref().unwrap_or("");
    let name = &c.process.name;
    let own_exe = c.trace.exec_of(c.process.pid).and_then(|e| e.text.clone());
    let is_worker = |pid: i32| {
        let exe = c.trace.exec_of(pid).and_then(|e| e.text.as_deref());
        exe.is_some_and(|exe| {
            Some(exe) == own_exe.as_deref()
                || std::path::Path::new(exe)
                    .file_name()
                    .is_some_and(|f| c.requirement.exec.iter().any(|n| f == n.as_str()))
        })
    };
    let programs = programs(c.trace, c.process);
    let workers: BTreeSet<i32> = programs.keys().copied().filter(|p| is_worker(*p)).collect();
    let stdout = stdio_of(c.run, c.trace)
        .get(&c.process.pid)
        .and_then(|streams| streams.get(1).cloned());
    let onto = |e: &Event| match &stdout {
        Some(pipe) => e.target.as_deref() == Some(pipe.as_str()),
        None => e.fd == Some(1),
    };
    let streams = written(c.trace, onto);
    let mut wrote: BTreeSet<i32> = BTreeSet::new();
    let mut decided = Vec::new();
    for line in matching_lines(c.process, pattern) {
        let named: Option<i32> = line
            .split(|ch: char| !ch.is_ascii_digit())
            .find(|d| !d.is_empty())
            .and_then(|d| d.parse().ok());
        let Some(named) = named else {
            continue;
        };
        let by_named = streams.get(&named).is_some_and(|s| s.contains(line));
        if by_named && workers.contains(&named) {
            if wrote.insert(named) {
                decided.extend(writes_carrying(c.trace, named, onto, line));
            }
            continue;
        }
        let writer = streams
            .iter()
            .find(|(_, s)| s.contains(line))
            .map(|(p, _)| *p);
        let why = if !workers.contains(&named) {
            match c.trace.exec_of(named).and_then(|e| e.text.clone()) {
                Some(exe) if programs.contains_key(&named) => format!(
                    "process {named} is a program of {name}, but it exec'd {exe}, not the worker"
                ),
                _ => format!("process {named} is no worker program {name} started and exec'd"),
            }
        } else {
            match writer {
                Some(pid) if pid == c.process.pid => {
                    format!("it was written by {name} itself (pid {pid}), not by worker {named}")
                }
                Some(pid) => format!("it was written by process {pid}, not by worker {named}"),
                None => format!("no process the trace saw wrote it, worker {named} included"),
            }
        };
        let events = writer
            .map(|w| writes_carrying(c.trace, w, onto, line))
            .unwrap_or_default();
        return Finding::failed(
            problem_with(
                format!("`{line}` is not worker {named}'s own line: {why}"),
                vec![],
            ),
            c.trace.exec_of(named).into_iter().chain(events),
        );
    }
    if let Some(silent) = workers.iter().find(|w| !wrote.contains(w)) {
        return Finding::failed(
            problem_with(
                format!("worker {silent} wrote no line matching `{pattern}` onto {name}'s stdout"),
                vec![],
            ),
            c.trace.exec_of(*silent),
        );
    }
    Finding::held(decided)
}

/// In each idle window of the script (`idle_from` .. `idle_to`, measured
/// by the keeper from the kernel's counts), the process's tree used at
/// most `limit` of CPU a second and woke at most `wakeups` times a second,
/// and no process or thread of it began or ended: a member with nothing to
/// do waits in one blocking call, however the machine is loaded (a waiting
/// process uses no CPU, and wakes for nothing).
fn idle<'a>(c: &Context<'a>) -> Finding<'a> {
    let limit = c
        .requirement
        .limit
        .as_deref()
        .and_then(|l| parse_duration(l).ok())
        .map_or(50.0, |d| d.as_secs_f64() * 1e3);
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
        let tree = &tree;
        let of = |kind: EventKind| {
            c.trace
                .of_kind(kind)
                .filter(move |e| e.code == Some(window) && tree.contains(&e.pid))
                .collect::<Vec<_>>()
        };
        let (from, to) = (of(EventKind::IdleFrom), of(EventKind::IdleTo));
        let (Some(first), Some(last)) = (from.first(), to.first()) else {
            continue;
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
            return Finding::failed(
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
            );
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
            return Finding::failed(
                problem_with(
                    format!(
                        "{name} used {used:.0} ms of CPU time in {seconds:.1} s with nothing to do, more than {:.0} ms: an idle program must wait in poll (or a blocking read), not poll again and again",
                        limit * seconds
                    ),
                    vec![],
                ),
                events,
            );
        }
        if woke as f64 > most_wakeups * seconds {
            return Finding::failed(
                problem_with(
                    format!(
                        "{name} woke up {woke} times in {seconds:.1} s with nothing to do, more than {:.0}: an idle program must wait in poll with no timeout, not nap and look again",
                        most_wakeups * seconds
                    ),
                    vec![],
                ),
                events,
            );
        }
        decided.extend(events);
    }
    Finding::held(decided)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grade::facts::Line;

    const MAIN: i32 = 10;
    const CHILD: i32 = 11;
    const GRADER: i32 = 1;

    fn case(require: &str) -> Case {
        toml::from_str(&format!(
            "description = \"t\"\n[[process]]\nname = \"main\"\n{require}"
        ))
        .unwrap()
    }

    fn event(pid: i32, kind: EventKind) -> Event {
        Event {
            pid,
            kind,
            ..Event::default()
        }
    }

    fn spawn(pid: i32, parent: i32) -> Event {
        Event {
            other: Some(parent),
            ..event(pid, EventKind::Spawn)
        }
    }

    fn write(pid: i32, fd: i32, text: &str, cut: bool) -> Event {
        Event {
            fd: Some(fd),
            text: Some(text.into()),
            target: Some("pipe:[7]".into()),
            cut,
            ..event(pid, EventKind::Write)
        }
    }

    /// A run of `main` that printed `stdout`, with this trace.
    fn run(stdout: &[&str], events: Vec<Event>) -> CaseRun {
        CaseRun {
            grader_pid: GRADER,
            processes: vec![ProcessRun {
                name: "main".into(),
                pid: MAIN,
                started: true,
                stdout: stdout
                    .iter()
                    .map(|l| Line {
                        at_ms: 0.0,
                        text: l.to_string(),
                    })
                    .collect(),
                ..ProcessRun::default()
            }],
            events,
            ..CaseRun::default()
        }
    }

    fn headlines(case: &Case, run: &CaseRun) -> Vec<String> {
        check(case, run, &Bindings::new())
            .into_iter()
            .flat_map(|j| j.problems)
            .map(|p| format!("{} {:?}", p.headline, p.details))
            .collect()
    }

    fn child_prints(first: &str, cut: bool) -> Vec<Event> {
        vec![
            spawn(MAIN, GRADER),
            spawn(CHILD, MAIN),
            write(CHILD, 1, first, cut),
            write(CHILD, 1, " 0 1 1\n", false),
            Event {
                other: Some(CHILD),
                ..event(MAIN, EventKind::Reap)
            },
        ]
    }

    #[test]
    fn a_full_trace_judges_nothing_and_fails() {
        let case = case("[[require]]\nwhat = \"fork\"");
        let mut run = run(&["child 11: 0 1 1"], child_prints("child 11:", false));
        assert!(headlines(&case, &run).is_empty());
        run.trace_cut.full = Some("more than 20000 events".into());
        run.trace_cut.dropped = 3;
        let found = headlines(&case, &run);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains(
                "the trace is full (more than 20000 events): 3 later events were not kept"
            ),
            "{found:?}"
        );
        // Stopped by the keeper for it: the stop says so already.
        run.killed_because = Some("flooded the trace: more than 20000 events".into());
        assert!(headlines(&case, &run).is_empty());
    }

    #[test]
    fn no_match_spans_contents_that_were_cut() {
        let case = case("[[require]]\nwhat = \"written_by_child\"\nline = \"child {any}\"");
        let whole = run(&["child 11: 0 1 1"], child_prints("child 11:", false));
        assert!(headlines(&case, &whole).is_empty());
        // The first write's contents were cut after `child 11:`: what
        // followed it in the stream is unknown, so the line is not found.
        let cut = run(&["child 11: 0 1 1"], child_prints("child 11:", true));
        let found = headlines(&case, &cut);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("was written by no process the trace saw"),
            "{found:?}"
        );
        assert!(
            found[0].contains("did not keep all the contents of 1"),
            "{found:?}"
        );
    }

    #[test]
    fn a_move_of_unseen_content_is_no_text_and_is_named() {
        let case = case("[[require]]\nwhat = \"written_by_child\"\nline = \"child {any}\"");
        // Between the two writes, bytes moved by splice: whatever they
        // were, the line is not found across them, and the diagnosis says
        // why.
        let mut events = child_prints("child 11:", false);
        events.insert(
            3,
            Event {
                fd: Some(1),
                bytes: Some(4),
                target: Some("pipe:[7]".into()),
                unseen: Some("splice".into()),
                cut: true,
                ..event(CHILD, EventKind::Write)
            },
        );
        let found = headlines(&case, &run(&["child 11: 0 1 1"], events));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains(
                "child 11 wrote to its stdout with splice, whose contents the grader cannot check"
            ),
            "{found:?}"
        );
        // Not a cut of the trace's budget: no note about that.
        assert!(!found[0].contains("did not keep"), "{found:?}");
    }

    #[test]
    fn a_print_whose_contents_were_cut_cannot_be_timed() {
        let case =
            case("[[require]]\nwhat = \"computed_by_child\"\nline = \"parent {int}: {any}\"");
        let mut events = vec![
            spawn(MAIN, GRADER),
            spawn(CHILD, MAIN),
            write(CHILD, 4, "olleh\n", false),
            Event {
                fd: Some(3),
                text: Some("olleh\n".into()),
                target: Some("pipe:[8]".into()),
                ..event(MAIN, EventKind::Read)
            },
            write(MAIN, 1, "parent 10: olleh\n", false),
            Event {
                other: Some(CHILD),
                ..event(MAIN, EventKind::Reap)
            },
        ];
        assert!(headlines(&case, &run(&["parent 10: olleh"], events.clone())).is_empty());
        events[4] = write(MAIN, 1, "parent 10: ", true);
        let found = headlines(&case, &run(&["parent 10: olleh"], events));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("cannot tell when main printed `olleh`"),
            "{found:?}"
        );
    }
}
