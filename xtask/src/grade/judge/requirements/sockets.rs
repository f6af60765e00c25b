//! Sockets: a server that bound, listened and accepted, and replies that
//! travelled over the connections, not around them.

use std::collections::{BTreeMap, BTreeSet};

use labcheck::{Bindings, LinePattern};

use super::data::Contents;
use super::{Context, Finding};
use crate::grade::facts::{Event, EventKind};
use crate::grade::judge::problem::problem_with;

/// `sockets`: the process bound a socket and listened on it, and accepted
/// at least `count` connections (default 1); and for each stdout line
/// matching `line`, the text after its first `": "` went, as a whole
/// line, into a connection the process accepted (its server side wrote
/// it) and came out of a socket the process connected (its client side
/// read it): a reply made up without the connection fails.
pub(super) fn sockets<'a>(c: &Context<'a>) -> Finding<'a> {
    let trace = c.trace;
    let me = c.process.pid;
    let name = &c.process.name;
    let of = |kind: EventKind| -> Vec<&'a Event> {
        trace.of_kind(kind).filter(|e| e.pid == me).collect()
    };
    let (binds, listens, accepts) = (
        of(EventKind::Bind),
        of(EventKind::Listen),
        of(EventKind::Accept),
    );
    let missing = if binds.is_empty() {
        Some("bound no socket to an address (bind)")
    } else if listens.is_empty() {
        Some("never listened on its socket (listen)")
    } else {
        None
    };
    if let Some(missing) = missing {
        return Finding::failed(
            problem_with(format!("{name} {missing}: it is no server"), vec![]),
            of(EventKind::Socket),
        );
    }
    let wanted = c.requirement.count.unwrap_or(1) as usize;
    if accepts.len() < wanted {
        return Finding::failed(
            problem_with(
                format!(
                    "{name} accepted {} connection(s), fewer than {wanted}",
                    accepts.len()
                ),
                vec![],
            ),
            binds.into_iter().chain(listens).chain(accepts),
        );
    }
    let accepted: BTreeSet<&str> = accepts.iter().filter_map(|e| e.target.as_deref()).collect();
    let connected: BTreeSet<&str> = of(EventKind::Connect)
        .iter()
        .filter_map(|e| e.target.as_deref())
        .collect();
    // What moved through each socket, by the socket: one connection's
    // bytes never join another's.
    let through = |kind: EventKind, sockets: &BTreeSet<&str>| {
        let mut moved: BTreeMap<&'a str, Contents> = BTreeMap::new();
        for e in trace.of_kind(kind).filter(|e| e.pid == me) {
            if let Some(target) = e.target.as_deref().filter(|t| sockets.contains(t)) {
                moved.entry(target).or_default().push(e);
            }
        }
        moved
    };
    let (served, received) = (
        through(EventKind::Write, &accepted),
        through(EventKind::Read, &connected),
    );
    let Some(pattern) = c
        .requirement
        .line
        .as_deref()
        .and_then(|l| LinePattern::new(l).ok())
    else {
        return Finding::held(binds.into_iter().chain(listens).chain(accepts).take(4));
    };
    for line in &c.process.stdout {
        let text = line.text.as_str();
        if !pattern.matches(text, &mut Bindings::new()) {
            continue;
        }
        let Some((_, reply)) = text.split_once(": ") else {
            continue;
        };
        let sent = served.values().any(|m| m.has_line(reply));
        let came = received.values().any(|m| m.has_line(reply));
        if !(sent && came) {
            let side = match (sent, came) {
                (false, false) => "was neither written into a connection it accepted nor read from a socket it connected",
                (false, true) => "was not written into a connection it accepted (its server side never sent it)",
                _ => "was not read from a socket it connected (its client side never received it)",
            };
            return Finding::failed(
                problem_with(
                    format!("{name} printed `{text}`, but `{reply}` {side}"),
                    vec![],
                ),
                accepts.into_iter().take(6),
            );
        }
    }
    Finding::held(binds.into_iter().chain(listens).chain(accepts).take(8))
}
