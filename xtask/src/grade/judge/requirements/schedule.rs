//! Scheduling (step 5): which processes ran when, one at a time, in
//! slices of the planned length, and who wrote the workers' lines.

use std::collections::{BTreeMap, BTreeSet};

use super::data::{matching_lines, writes_carrying, written};
use super::{Context, Finding, Trace};
use crate::grade::case::parse_duration;
use crate::grade::facts::{Event, EventKind, ProcessRun};
use crate::grade::judge::problem::problem_with;

/// A stretch a process ran (see [`running`]).
#[derive(Clone, Copy)]
pub(super) struct Run<'a> {
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
    pub(super) fn events(&self) -> Vec<&'a Event> {
        [Some(self.from), self.stopped_by, self.to]
            .into_iter()
            .flatten()
            .collect()
    }

    /// The CPU time it got, or else its length.
    pub(super) fn busy(&self) -> f64 {
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
pub(super) fn running<'a>(trace: &Trace<'a>, of: &BTreeSet<i32>) -> BTreeMap<i32, Vec<Run<'a>>> {
    let mut runs = RunTracker::default();
    for e in trace.events {
        if e.kind == EventKind::Kill {
            for pid in Trace::reached(e).into_iter().filter(|p| of.contains(p)) {
                runs.signalled(e, pid);
            }
        } else if of.contains(&e.pid) {
            runs.changed(e);
        }
    }
    runs.finish(trace.events.last().map_or(0.0, |e| e.at_ms))
}

/// A run that has begun and not yet ended.
struct OpenRun<'a> {
    start: f64,
    cpu: Option<f64>,
    from: &'a Event,
}

/// What [`running`] knows of each process so far, event by event.
#[derive(Default)]
struct RunTracker<'a> {
    /// Running, or held by a pending SIGSTOP (its run already closed, its
    /// CPU time known at the stop).
    open: BTreeMap<i32, OpenRun<'a>>,
    held: BTreeMap<i32, usize>,
    threaded: BTreeSet<i32>,
    /// When the last SIGCONT sent to each process returned.
    continued: BTreeMap<i32, f64>,
    runs: BTreeMap<i32, Vec<Run<'a>>>,
}

impl<'a> RunTracker<'a> {
    /// A kill `e` that reached `pid`.
    fn signalled(&mut self, e: &'a Event, pid: i32) {
        match e.signal.as_deref() {
            Some("SIGCONT") => {
                self.continued.insert(pid, e.at_ms);
                if self.held.remove(&pid).is_some() {
                    // Its SIGSTOP was discarded: it runs on.
                    self.open.insert(
                        pid,
                        OpenRun {
                            start: e.start_ms.unwrap_or(e.at_ms),
                            cpu: None,
                            from: e,
                        },
                    );
                }
            }
            Some("SIGSTOP") if !self.threaded.contains(&pid) => {
                // Only a SIGSTOP begun after any SIGCONT to it had
                // returned is surely still pending after both.
                let after = self
                    .continued
                    .get(&pid)
                    .is_none_or(|&c| e.start_ms.unwrap_or(e.at_ms) > c);
                if !after {
                    return;
                }
                let Some(run) = self.open.remove(&pid) else {
                    return;
                };
                let list = self.runs.entry(pid).or_default();
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
                self.held.insert(pid, list.len() - 1);
            }
            _ => {}
        }
    }

    /// An event of the process's own: a thread, a spawn, a stop, a
    /// continue, an exit.
    fn changed(&mut self, e: &'a Event) {
        match e.kind {
            EventKind::Thread => {
                self.threaded.insert(e.pid);
            }
            // A new process has had no CPU time yet.
            EventKind::Spawn | EventKind::Cont => {
                if let Some(index) = self.held.remove(&e.pid) {
                    self.runs.get_mut(&e.pid).expect("a held run")[index].cpu = None;
                }
                self.open.entry(e.pid).or_insert(OpenRun {
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
                if let Some(index) = self.held.remove(&e.pid) {
                    let run = &mut self.runs.get_mut(&e.pid).expect("a held run")[index];
                    run.to = Some(e);
                    run.cpu = cpu_since(run.cpu);
                } else if let Some(run) = self.open.remove(&e.pid) {
                    self.runs.entry(e.pid).or_default().push(Run {
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

    /// Every run, those still open ending at the trace's end.
    fn finish(mut self, end_of_trace: f64) -> BTreeMap<i32, Vec<Run<'a>>> {
        // A run held until the end: its CPU time was never known.
        for (pid, index) in self.held {
            self.runs.get_mut(&pid).expect("a held run")[index].cpu = None;
        }
        for (pid, run) in self.open {
            self.runs.entry(pid).or_default().push(Run {
                pid,
                start: run.start,
                end: end_of_trace,
                cpu: None,
                from: run.from,
                to: None,
                stopped_by: None,
            });
        }
        self.runs
    }
}

/// The programs the process runs, wherever they sit below it, each with
/// every process of its subtree: one program at a time means one subtree
/// at a time. A program is a process that exec'd, below no process that
/// had exec'd before it was created: so a coordinator's own helpers (an
/// intermediate that forks and waits) are not programs, and a middle
/// process that starts every program as its own children does not make
/// them one. Each process belongs to its nearest program; a child under
/// which nothing exec'd is a program of its own.
pub(super) fn programs(trace: &Trace, process: &ProcessRun) -> BTreeMap<i32, BTreeSet<i32>> {
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
pub(super) fn depth_below(trace: &Trace, program: i32, pid: i32) -> usize {
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

pub(super) fn one_at_a_time<'a>(c: &Context<'a>) -> Finding<'a> {
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
pub(super) fn slices<'a>(c: &Context<'a>) -> Finding<'a> {
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
    let stretches_of = stretches(trace, c.process);
    let judged = while_others_waited(&stretches_of);
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

/// A stretch of one program's running: its processes' runs, merged where
/// they overlap.
struct Stretch<'a> {
    start: f64,
    end: f64,
    /// The CPU time of its busiest run.
    busy: f64,
    runs: Vec<Run<'a>>,
}

/// Each program's stretches, in order.
fn stretches<'a>(trace: &Trace<'a>, process: &ProcessRun) -> BTreeMap<i32, Vec<Stretch<'a>>> {
    let mut stretches_of: BTreeMap<i32, Vec<Stretch>> = BTreeMap::new();
    for (program, tree) in programs(trace, process) {
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
    stretches_of
}

/// The stretches (with their program) that ran while another program
/// waited: alive for most of the stretch, and running for less than half
/// of it. Only those are judged as slices.
fn while_others_waited<'s, 'a>(
    stretches_of: &'s BTreeMap<i32, Vec<Stretch<'a>>>,
) -> Vec<(i32, &'s Stretch<'a>)> {
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
    for (pid, list) in stretches_of {
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
    judged
}

/// Each worker line (matching `line`) was written onto the process's
/// stdout by the process whose PID it names, one of the programs, exec'd
/// as a file named in `exec` or as the coordinator's own binary; and every
/// such program wrote one. A line printed for a worker by anyone else (a
/// thread of the coordinator, a dummy's parent) is not the worker's.
pub(super) fn worker_lines<'a>(c: &Context<'a>) -> Finding<'a> {
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
    let onto = c.onto_stdout();
    let streams = written(c.trace, &onto);
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
                decided.extend(writes_carrying(c.trace, named, &onto, line));
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
            .map(|w| writes_carrying(c.trace, w, &onto, line))
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
