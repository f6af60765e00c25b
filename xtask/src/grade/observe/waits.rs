//! The exits of wait4 and waitid: reaps, and reports of stops and
//! continues.

use super::*;

impl Worker {
    /// The exit of wait4 or waitid: a reap only when an exit status was
    /// consumed.
    #[cfg(target_arch = "x86_64")]
    pub(super) fn on_wait(&mut self, pid: Pid, entry: &Entry, result: i64) {
        use nix::libc;
        let [a0, a1, a2, a3, ..] = entry.args;
        let (child, kind, code, signal, core) = if entry.nr == libc::SYS_wait4 {
            // wait4(pid, *status, options, *rusage) returns the child.
            let options = a2 as i32;
            let status = (a1 != 0)
                .then(|| int_at(&read_bytes(pid, a1, 4), 0))
                .flatten();
            let kind = match status {
                Some(s) if libc::WIFSTOPPED(s) => EventKind::WaitedStop,
                Some(s) if libc::WIFCONTINUED(s) => EventKind::WaitedCont,
                Some(_) => EventKind::Reap,
                // No status to read: a stop or continue report is only
                // possible if asked for; then the child's entry in /proc
                // tells (a reaped child has none).
                None if options & (libc::WUNTRACED | libc::WCONTINUED) == 0 => EventKind::Reap,
                None if std::path::Path::new(&format!("/proc/{result}")).exists() => {
                    EventKind::WaitedStop
                }
                None => EventKind::Reap,
            };
            let code = status
                .filter(|s| libc::WIFEXITED(*s))
                .map(|s| libc::WEXITSTATUS(s));
            let signal = status.and_then(|s| {
                if libc::WIFSIGNALED(s) {
                    Some(libc::WTERMSIG(s))
                } else if libc::WIFSTOPPED(s) {
                    Some(libc::WSTOPSIG(s))
                } else {
                    None
                }
            });
            let core = status.is_some_and(|s| libc::WIFSIGNALED(s) && libc::WCOREDUMP(s));
            (result as i32, kind, code, signal, core)
        } else {
            // waitid(idtype, id, *infop, options, *rusage) returns 0.
            let options = a3 as i32;
            let _ = a0;
            if a2 == 0 {
                // No siginfo: the child cannot be named; if the status was
                // consumed, it is the child whose entry in /proc went.
                if options & libc::WNOWAIT != 0 || options & libc::WEXITED == 0 {
                    return;
                }
                let me = self.tgid(pid.as_raw());
                let gone = self.vanished_children(me);
                for child in gone {
                    let mut reap = self.by(pid.as_raw(), EventKind::Reap);
                    reap.start_ms = Some(entry.start_ms);
                    reap.other = Some(child);
                    self.record(reap);
                }
                return;
            }
            // siginfo: si_code at 8, si_pid at 16, si_status at 24.
            let info = read_bytes(pid, a2, 28);
            let (si_code, child, status) = (
                int_at(&info, 8).unwrap_or(0),
                int_at(&info, 16).unwrap_or(0),
                int_at(&info, 24).unwrap_or(0),
            );
            let kind = match si_code {
                libc::CLD_STOPPED | libc::CLD_TRAPPED => EventKind::WaitedStop,
                libc::CLD_CONTINUED => EventKind::WaitedCont,
                _ if options & libc::WNOWAIT != 0 => EventKind::WaitedExit,
                _ => EventKind::Reap,
            };
            let (code, signal) = match si_code {
                libc::CLD_EXITED => (Some(status), None),
                libc::CLD_KILLED | libc::CLD_DUMPED => (None, Some(status)),
                libc::CLD_STOPPED | libc::CLD_TRAPPED => (None, Some(status)),
                _ => (None, None),
            };
            (child, kind, code, signal, si_code == libc::CLD_DUMPED)
        };
        // WNOHANG with nothing to report.
        if child <= 0 {
            return;
        }
        let mut waited = self.by(pid.as_raw(), kind);
        waited.start_ms = Some(entry.start_ms);
        waited.other = Some(child);
        match kind {
            EventKind::Reap => {
                waited.code = code;
                waited.signal = signal.map(signal_name);
                waited.core_dumped = core;
            }
            EventKind::WaitedStop => waited.signal = signal.map(signal_name),
            _ => {}
        }
        self.record(waited);
    }

    /// Children of `parent` that exited and whose /proc entry is gone, not
    /// yet logged as reaped: what a wait without siginfo consumed.
    pub(super) fn vanished_children(&self, parent: i32) -> Vec<i32> {
        let shared = self.shared.lock().unwrap();
        let reaped: BTreeSet<i32> = shared
            .events
            .iter()
            .filter(|e| e.kind == EventKind::Reap)
            .filter_map(|e| e.other)
            .collect();
        let exited: BTreeSet<i32> = shared
            .events
            .iter()
            .filter(|e| e.kind == EventKind::Exit)
            .map(|e| e.pid)
            .collect();
        shared
            .events
            .iter()
            .filter(|e| e.kind == EventKind::Spawn && e.other == Some(parent))
            .map(|e| e.pid)
            .filter(|c| exited.contains(c) && !reaped.contains(c))
            .filter(|c| !std::path::Path::new(&format!("/proc/{c}")).exists())
            .collect()
    }
}
