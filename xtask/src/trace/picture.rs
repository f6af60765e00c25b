//! What a run looked like, as a picture to draw: one lane per process, and
//! the marks on them in time order. Made from the tracer's events alone
//! (the kernel's account), never from what the programs printed about
//! themselves; the terminal and the page only draw this.

use std::collections::BTreeMap;

use crate::grade::facts::{CaseRun, Event, EventKind};

/// One process.
#[derive(Debug, Clone, PartialEq)]
pub struct Lane {
    pub pid: i32,
    /// The case's name for it (`main`), else what it runs.
    pub label: String,
    pub parent: Option<i32>,
    /// When it appeared and ended (ms from the case's start).
    pub from_ms: f64,
    pub to_ms: Option<f64>,
    /// How it ended, when it did: `exit 0`, `killed by SIGTERM`.
    pub ending: Option<String>,
}

/// What happened at one moment.
#[derive(Debug, Clone, PartialEq)]
pub enum Mark {
    /// `parent` forked `child`.
    Fork {
        parent: i32,
        child: i32,
    },
    Exec {
        pid: i32,
        path: String,
    },
    /// A signal from one process to another (or itself).
    Signal {
        from: i32,
        to: i32,
        name: String,
    },
    /// Bytes through a pipe or FIFO, from the writer to the process that
    /// read them (`to` None: nobody read them during the trace).
    Bytes {
        from: i32,
        to: Option<i32>,
        bytes: u64,
        channel: String,
    },
    /// Bytes a process wrote to its stdout or stderr (the keeper's pipes).
    Output {
        pid: i32,
        stream: &'static str,
        bytes: u64,
        text: String,
    },
    Stop {
        pid: i32,
    },
    Cont {
        pid: i32,
    },
    Exit {
        pid: i32,
        ending: String,
    },
    /// `by` collected `child`'s exit status.
    Reap {
        by: i32,
        child: i32,
        ending: String,
    },
    /// The sandbox refused a system call.
    Refused {
        pid: i32,
        call: String,
    },
}

impl Mark {
    /// The process whose lane the mark starts from.
    pub fn pid(&self) -> i32 {
        match self {
            Mark::Fork { parent: pid, .. }
            | Mark::Exec { pid, .. }
            | Mark::Signal { from: pid, .. }
            | Mark::Bytes { from: pid, .. }
            | Mark::Output { pid, .. }
            | Mark::Stop { pid }
            | Mark::Cont { pid }
            | Mark::Exit { pid, .. }
            | Mark::Reap { by: pid, .. }
            | Mark::Refused { pid, .. } => *pid,
        }
    }

    /// The other end of an arrow, when the mark is one.
    pub fn to(&self) -> Option<i32> {
        match self {
            Mark::Fork { child, .. } => Some(*child),
            Mark::Signal { to, .. } => Some(*to),
            Mark::Bytes { to, .. } => *to,
            Mark::Reap { child, .. } => Some(*child),
            _ => None,
        }
    }

    /// In a few words, for both drawings.
    pub fn words(&self) -> String {
        match self {
            Mark::Fork { child, .. } => format!("fork → {child}"),
            // The name, not the grader's folder of binaries.
            Mark::Exec { path, .. } => format!("exec {}", path.rsplit('/').next().unwrap_or(path)),
            Mark::Signal { to, name, from } if to == from => format!("{name} to itself"),
            Mark::Signal { name, .. } => name.clone(),
            Mark::Bytes {
                bytes,
                channel,
                to: None,
                ..
            } => {
                format!("{bytes} B into {channel}, never read")
            }
            Mark::Bytes { bytes, channel, .. } => format!("{bytes} B via {channel}"),
            Mark::Output {
                bytes,
                text,
                stream,
                ..
            } => format!("{bytes} B to {stream}: {text}"),
            Mark::Stop { .. } => "stopped".into(),
            Mark::Cont { .. } => "continued".into(),
            Mark::Exit { ending, .. } => ending.clone(),
            Mark::Reap { child, ending, .. } => format!("reaped {child}: {ending}"),
            Mark::Refused { call, .. } => format!("refused: {call}"),
        }
    }
}

/// A run to draw.
#[derive(Debug, Clone, PartialEq)]
pub struct Picture {
    /// What ran (`ex2_signal_exchange --delay 0.3`), for the title.
    pub title: String,
    pub lanes: Vec<Lane>,
    /// In time order.
    pub marks: Vec<(f64, Mark)>,
    /// How long the case ran (ms).
    pub length_ms: f64,
    /// What the picture cannot show (no trace, a trace cut short).
    pub notes: Vec<String>,
}

impl Picture {
    /// The picture of a case's run.
    pub fn of(title: &str, run: &CaseRun) -> Picture {
        let mut lanes: BTreeMap<i32, Lane> = BTreeMap::new();
        let named: BTreeMap<i32, &str> = run
            .processes
            .iter()
            .map(|p| (p.pid, p.name.as_str()))
            .collect();
        let mut marks = Vec::new();
        for event in &run.events {
            for mark in marks_of(event, &run.events) {
                marks.push((event.at_ms, mark));
            }
            note_lane(&mut lanes, event, &named);
        }
        marks.sort_by(|a, b| a.0.total_cmp(&b.0));
        name_pipes(&mut marks);
        let mut notes = Vec::new();
        if let Some(why) = &run.untraced {
            notes.push(format!("not traced ({why}): nothing to draw"));
        }
        if let Some(full) = &run.trace_cut.full {
            notes.push(format!(
                "the trace is cut short ({full}): {} later events are not drawn",
                run.trace_cut.dropped
            ));
        }
        if let Some(why) = &run.killed_because {
            notes.push(format!("the grader stopped the case: {why}"));
        }
        Picture {
            title: title.to_string(),
            lanes: lanes.into_values().collect(),
            marks,
            length_ms: run.elapsed_ms,
            notes,
        }
    }

    /// Whether any process was stopped and continued: a round robin, drawn
    /// as a chart of who ran when.
    pub fn has_slices(&self) -> bool {
        self.marks
            .iter()
            .any(|(_, m)| matches!(m, Mark::Stop { .. }))
    }

    /// For each lane, the spans (ms) it was alive and not stopped.
    pub fn running_spans(&self) -> Vec<(i32, Vec<(f64, f64)>)> {
        self.lanes
            .iter()
            .map(|lane| {
                let end = lane.to_ms.unwrap_or(self.length_ms);
                let mut spans = Vec::new();
                let mut from = Some(lane.from_ms);
                for (at, mark) in &self.marks {
                    match mark {
                        Mark::Stop { pid } if *pid == lane.pid => {
                            if let Some(start) = from.take() {
                                spans.push((start, *at));
                            }
                        }
                        Mark::Cont { pid } if *pid == lane.pid => {
                            from.get_or_insert(*at);
                        }
                        _ => {}
                    }
                }
                if let Some(start) = from {
                    spans.push((start, end));
                }
                (lane.pid, spans)
            })
            .collect()
    }
}

/// `pipe:[377316]` (an inode number, different each run) becomes `pipe 1`,
/// numbered in the order the pipes are first used.
fn name_pipes(marks: &mut [(f64, Mark)]) {
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    for (_, mark) in marks.iter_mut() {
        if let Mark::Bytes { channel, .. } = mark {
            if channel.starts_with("pipe:") {
                let next = format!("pipe {}", names.len() + 1);
                *channel = names.entry(channel.clone()).or_insert(next).clone();
            }
        }
    }
}

fn ending(event: &Event) -> String {
    match (&event.signal, event.code) {
        (Some(signal), _) => format!("killed by {signal}"),
        (None, Some(code)) => format!("exit {code}"),
        (None, None) => "ended".into(),
    }
}

/// A short, one-line version of what a process printed.
fn shortened(text: &str) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let line = line.trim();
    if line.chars().count() > 40 {
        format!("\"{}…\"", line.chars().take(39).collect::<String>())
    } else {
        format!("\"{line}\"")
    }
}

/// The channel a read or write went through, when it is a pipe or FIFO
/// between the case's processes (not the keeper's stdout and stderr).
fn channel(event: &Event) -> Option<&str> {
    let target = event.target.as_deref()?;
    (target.starts_with("pipe:") || target.ends_with(".fifo") || target.starts_with('/'))
        .then_some(target)
}

fn marks_of(event: &Event, all: &[Event]) -> Vec<Mark> {
    let pid = event.pid;
    let one = match event.kind {
        EventKind::Spawn => match event.other {
            Some(parent) => Mark::Fork { parent, child: pid },
            None => return Vec::new(),
        },
        EventKind::Exec => Mark::Exec {
            pid,
            path: event.text.clone().unwrap_or_default(),
        },
        EventKind::Kill => {
            let name = event.signal.clone().unwrap_or_else(|| "signal".into());
            // One arrow per process the signal reached (a group kill
            // reaches several); none when it reached nobody.
            let targets = event.targets.as_deref().unwrap_or(&[]);
            return targets
                .iter()
                .map(|&to| Mark::Signal {
                    from: pid,
                    to,
                    name: name.clone(),
                })
                .collect();
        }
        EventKind::Stop => Mark::Stop { pid },
        EventKind::Cont => Mark::Cont { pid },
        EventKind::Exit => Mark::Exit {
            pid,
            ending: ending(event),
        },
        EventKind::Reap => match event.other {
            Some(child) => Mark::Reap {
                by: pid,
                child,
                ending: ending(event),
            },
            None => return Vec::new(),
        },
        EventKind::Refused => Mark::Refused {
            pid,
            call: event.text.clone().unwrap_or_default(),
        },
        EventKind::Write => {
            let bytes = event.bytes.unwrap_or(0);
            let to_keeper = matches!(event.fd, Some(1 | 2)) && nobody_reads(event, all);
            match channel(event) {
                Some(channel) if !to_keeper => Mark::Bytes {
                    from: pid,
                    to: reader_of(event, channel, all),
                    bytes,
                    channel: channel.to_string(),
                },
                _ => Mark::Output {
                    pid,
                    // By where it went: a socket of its own (signal-hook's
                    // wake-up byte, say) is no output.
                    stream: match (event.fd, event.target.as_deref()) {
                        (_, Some(t)) if t.starts_with("socket:") => "a socket",
                        (Some(2), _) => "stderr",
                        _ => "stdout",
                    },
                    bytes,
                    text: shortened(event.text.as_deref().unwrap_or("")),
                },
            }
        }
        _ => return Vec::new(),
    };
    vec![one]
}

/// Whether a write went where nobody in the case reads: to the keeper,
/// when it is a process's stdout or stderr.
fn nobody_reads(write: &Event, all: &[Event]) -> bool {
    let target = write.target.as_deref();
    !all.iter()
        .any(|e| e.kind == EventKind::Read && e.target.as_deref() == target)
}

/// The first process other than the writer to read from `channel` after
/// `write` began.
fn reader_of(write: &Event, channel: &str, all: &[Event]) -> Option<i32> {
    all.iter()
        .filter(|e| e.kind == EventKind::Read && e.pid != write.pid)
        .filter(|e| e.target.as_deref() == Some(channel))
        .find(|e| e.at_ms >= write.start_ms.unwrap_or(write.at_ms))
        .map(|e| e.pid)
}

/// Opens, names and closes the lane of `event`'s process.
fn note_lane(lanes: &mut BTreeMap<i32, Lane>, event: &Event, named: &BTreeMap<i32, &str>) {
    if event.kind == EventKind::Thread {
        return;
    }
    let lane = lanes.entry(event.pid).or_insert_with(|| Lane {
        pid: event.pid,
        label: named
            .get(&event.pid)
            .map_or(String::new(), |n| n.to_string()),
        parent: None,
        from_ms: event.at_ms,
        to_ms: None,
        ending: None,
    });
    match event.kind {
        EventKind::Spawn => {
            lane.parent = event.other;
            if lane.label.is_empty() {
                lane.label = "child".into();
            }
        }
        EventKind::Exec if !named.contains_key(&event.pid) => {
            let path = event.text.as_deref().unwrap_or("");
            lane.label = path.rsplit('/').next().unwrap_or(path).to_string();
        }
        EventKind::Exit => {
            lane.to_ms = Some(event.at_ms);
            lane.ending = Some(ending(event));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(at_ms: f64, pid: i32, kind: EventKind) -> Event {
        Event {
            at_ms,
            pid,
            kind,
            ..Event::default()
        }
    }

    #[test]
    fn forks_signals_pipes_and_ends_become_marks() {
        let mut run = CaseRun::default();
        run.processes.push(crate::grade::facts::ProcessRun {
            name: "main".into(),
            pid: 2,
            ..Default::default()
        });
        run.elapsed_ms = 10.0;
        let spawn = Event {
            other: Some(2),
            ..event(1.0, 3, EventKind::Spawn)
        };
        let write = Event {
            target: Some("pipe:[7]".into()),
            bytes: Some(5),
            text: Some("hello".into()),
            ..event(2.0, 3, EventKind::Write)
        };
        let read = Event {
            target: Some("pipe:[7]".into()),
            bytes: Some(5),
            ..event(2.5, 2, EventKind::Read)
        };
        let out = Event {
            target: Some("pipe:[1]".into()),
            fd: Some(1),
            bytes: Some(3),
            text: Some("hi\n".into()),
            ..event(3.0, 2, EventKind::Write)
        };
        let kill = Event {
            signal: Some("SIGTERM".into()),
            other: Some(3),
            targets: Some(vec![3]),
            ..event(4.0, 2, EventKind::Kill)
        };
        let exit = Event {
            signal: Some("SIGTERM".into()),
            ..event(4.5, 3, EventKind::Exit)
        };
        let reap = Event {
            other: Some(3),
            signal: Some("SIGTERM".into()),
            ..event(5.0, 2, EventKind::Reap)
        };
        run.events = vec![
            event(0.5, 2, EventKind::Exec),
            spawn,
            write,
            read,
            out,
            kill,
            exit,
            reap,
        ];
        let picture = Picture::of("t", &run);
        assert_eq!(picture.lanes.len(), 2);
        assert_eq!(picture.lanes[0].label, "main");
        assert_eq!(picture.lanes[1].parent, Some(2));
        assert_eq!(
            picture.lanes[1].ending.as_deref(),
            Some("killed by SIGTERM")
        );
        let marks: Vec<&Mark> = picture.marks.iter().map(|(_, m)| m).collect();
        assert_eq!(
            marks[1],
            &Mark::Fork {
                parent: 2,
                child: 3
            }
        );
        assert_eq!(
            marks[2],
            &Mark::Bytes {
                from: 3,
                to: Some(2),
                bytes: 5,
                channel: "pipe 1".into()
            }
        );
        assert_eq!(
            marks[3],
            &Mark::Output {
                pid: 2,
                stream: "stdout",
                bytes: 3,
                text: "\"hi\"".into()
            }
        );
        assert_eq!(
            marks[4],
            &Mark::Signal {
                from: 2,
                to: 3,
                name: "SIGTERM".into()
            }
        );
        assert_eq!(marks[6].words(), "reaped 3: killed by SIGTERM");
        assert!(!picture.has_slices());
    }
}
