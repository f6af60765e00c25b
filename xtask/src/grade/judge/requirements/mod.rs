//! The judge's half that reads the trace: a transcript that claims a fork,
//! a signal, a pipe or a FIFO it never used fails here, with a diagnosis
//! that names the missing action.
//!
//! Every rule rests on events the tracer logged at a system call's exit
//! (see `observe`), attributed to processes. Roles are bound to the
//! transcript: when a case's output binds `{pid:child}`, "the child" is
//! that process and no other. The rule of each requirement kind is in
//! `case::Requirement`.
//!
//! The trace is bounded (see `observe`), and a rule never takes what it
//! did not keep for what did not happen:
//! - a **full** trace (events dropped) judges no requirement: the case
//!   fails, saying so;
//! - contents are judged only as **runs** of bytes known to be contiguous
//!   (`data::Contents`): a read or write whose contents were cut ends a run, so
//!   no match spans what was not seen. Finding a text is evidence; not
//!   finding it fails, and the diagnosis says when contents were cut;
//! - a rule that needs to know when something was printed fails, when the
//!   contents that would tell were cut.
//!
//! This module holds what every rule shares (the trace's reader, a
//! finding, a rule's context) and the rules of every traced case; each
//! family of requirements has a module of its own: `processes`, `signals`,
//! `data`, `fifos`, `schedule`, `commands`, `pipeline`, `threads` and
//! `sockets`.

use std::collections::BTreeSet;

use labcheck::Bindings;

use crate::grade::case::{Case, Requirement};
use crate::grade::facts::{CaseRun, Event, EventKind, ProcessRun};
use crate::grade::judge::problem::{problem_with, Judged, Problem};

mod commands;
mod data;
mod fifos;
mod pipeline;
mod processes;
mod schedule;
mod signals;
mod sockets;
mod threads;

use commands::{commands, statuses};
use data::{computed_by_child, pipes, stdio_of, written_by_child};
use fifos::fifos;
use pipeline::{group_signal, pipeline};
use processes::{cpu_at_most, fork, idle, pid_is_child, reaped, reported_status};
use schedule::{one_at_a_time, slices, worker_lines};
use signals::{child_killed, signal};
use sockets::sockets;
use threads::threads;

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

    /// Whether `event` came after its process's first exec: what the
    /// program it became did, not what the child did before.
    fn after_exec(&self, event: &Event) -> bool {
        self.exec_of(event.pid)
            .is_some_and(|exec| self.index_of(exec) < self.index_of(event))
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
/// `observe`) among these events: they never count as a text.
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
            "commands" => commands(&context),
            "statuses" => statuses(&context),
            "pipeline" => pipeline(&context),
            "group_signal" => group_signal(&context),
            "threads" => threads(&context),
            "sockets" => sockets(&context),
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

    /// Whether a write went onto the process's own stdout, the pipe the
    /// grader reads: by its target, not by its fd number (a child whose fd
    /// 1 is /dev/null wrote nothing anyone saw). Without the process's
    /// streams in the trace, fd 1 it is.
    fn onto_stdout(&self) -> impl Fn(&Event) -> bool {
        let stdout = stdio_of(self.run, self.trace)
            .get(&self.process.pid)
            .and_then(|streams| streams.get(1).cloned());
        move |e: &Event| match &stdout {
            Some(pipe) => e.target.as_deref() == Some(pipe.as_str()),
            None => e.fd == Some(1),
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
