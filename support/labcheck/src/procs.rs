//! Finding processes by session, from /proc.

use std::fmt;

/// One process, as /proc/PID/stat describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: i32,
    pub ppid: i32,
    /// `R` running, `S` sleeping, `T` stopped, `Z` zombie, ...
    pub state: char,
    pub session: i32,
    pub name: String,
}

impl fmt::Display for ProcessInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            'Z' => "zombie",
            'T' | 't' => "stopped",
            'R' => "running",
            _ => "sleeping",
        };
        write!(
            f,
            "{} {} (parent {}, {state})",
            self.name, self.pid, self.ppid
        )
    }
}

/// Parses the text of /proc/PID/stat. The name is in parentheses and may
/// itself hold spaces and parentheses, so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<ProcessInfo> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text[..open].trim().parse().ok()?;
    let name = text[open + 1..close].to_string();
    let mut fields = text[close + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let _pgrp = fields.next()?;
    let session = fields.next()?.parse().ok()?;
    Some(ProcessInfo {
        pid,
        ppid,
        state,
        session,
        name,
    })
}

/// Every process whose session id is `session`.
pub fn session_members(session: i32) -> Vec<ProcessInfo> {
    all_processes()
        .into_iter()
        .filter(|p| p.session == session)
        .collect()
}

/// Every process this user can see.
pub fn all_processes() -> Vec<ProcessInfo> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let name = entry.ok()?.file_name();
            let pid: i32 = name.to_str()?.parse().ok()?;
            // Bytes, not UTF-8: a process names itself as it likes, and one
            // whose name is not UTF-8 must not drop out of the list.
            let bytes = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
            parse_stat(&String::from_utf8_lossy(&bytes))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_parentheses() {
        let p = parse_stat("42 (a (b) c) T 7 42 40 0 -1").unwrap();
        assert_eq!((p.pid, p.ppid, p.state, p.session), (42, 7, 'T', 40));
        assert_eq!(p.name, "a (b) c");
    }

    #[test]
    fn names_that_are_not_utf8() {
        let text = String::from_utf8_lossy(b"42 (\xff\xfe) S 7 42 40 0 -1");
        let p = parse_stat(&text).unwrap();
        assert_eq!((p.pid, p.ppid, p.state, p.session), (42, 7, 'S', 40));
    }

    #[test]
    fn finds_itself() {
        let me = std::process::id() as i32;
        assert!(all_processes().iter().any(|p| p.pid == me));
    }
}
