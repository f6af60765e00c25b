//! Signals: who sent which to whom, after announcing it, and what it did.

use super::data::{matching_lines, writes_carrying};
use super::{unseen, Context, Finding, Trace};
use crate::grade::case::{full_signal_name, parse_duration};
use crate::grade::facts::{Event, EventKind};
use crate::grade::judge::problem::problem_with;

pub(super) fn signal_matches(event: &Event, wanted: &str) -> bool {
    wanted == "any" || event.signal.as_deref() == Some(&full_signal_name(wanted))
}

pub(super) fn signal<'a>(c: &Context<'a>) -> Finding<'a> {
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
pub(super) fn announcement<'a>(
    c: &Context<'a>,
    pattern: &str,
    sender: i32,
    before: f64,
) -> Result<Vec<&'a Event>, Finding<'a>> {
    // No such line: the output checks say so.
    let Some(&line) = matching_lines(c.process, pattern).first() else {
        return Ok(Vec::new());
    };
    let onto = c.onto_stdout();
    let writes = writes_carrying(c.trace, sender, &onto, line);
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

pub(super) fn child_killed<'a>(c: &Context<'a>) -> Finding<'a> {
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
