//! Collecting what the kernel reports of the traced processes: wait
//! statuses, ptrace events, group-stops, ends.

use super::*;

impl Worker {
    /// Handles every pending wait event without blocking.
    pub(super) fn collect(&mut self) {
        if !self.trace {
            return self.collect_untraced();
        }
        loop {
            // Take every pending event first, then handle group-stops before
            // the rest: when program A's stop and program B's wake-up are
            // both pending, A really stopped first (its stop is what let
            // the coordinator continue B), and the log must say so.
            let mut batch = Vec::new();
            while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL)) {
                if status == WaitStatus::StillAlive {
                    break;
                }
                batch.push(status);
            }
            if batch.is_empty() {
                return;
            }
            let is_group_stop = |s: &WaitStatus| {
                matches!(s, WaitStatus::PtraceEvent(_, sig, nix::libc::PTRACE_EVENT_STOP)
                    if matches!(sig, Signal::SIGSTOP | Signal::SIGTSTP | Signal::SIGTTIN | Signal::SIGTTOU))
            };
            batch.sort_by_key(|s| !is_group_stop(s));
            for status in batch {
                self.handle(status);
            }
        }
    }

    /// Untraced, wait only for our own programs: orphans stay zombies for
    /// the end-of-case inspection to find.
    pub(super) fn collect_untraced(&mut self) {
        loop {
            let pending: Vec<i32> = {
                let shared = self.shared.lock().unwrap();
                self.started
                    .iter()
                    .copied()
                    .filter(|p| !shared.ended.contains_key(p))
                    .collect()
            };
            let mut handled = false;
            for pid in pending {
                match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) | Err(_) => {}
                    Ok(status) => {
                        self.handle(status);
                        handled = true;
                    }
                }
            }
            if !handled {
                return;
            }
        }
    }

    pub(super) fn handle(&mut self, status: WaitStatus) {
        if std::env::var_os("XTASK_TRACE_DEBUG").is_some() {
            eprintln!("supervisor: {status:?}");
        }
        match status {
            WaitStatus::Exited(pid, code) => self.ended(pid, Some(code), None, false),
            WaitStatus::Signaled(pid, signal, core) => {
                self.ended(pid, None, Some(signal as i32), core)
            }
            WaitStatus::PtraceEvent(pid, signal, event) => self.on_event(pid, signal, event),
            WaitStatus::PtraceSyscall(pid) => {
                let entry = self
                    .tracees
                    .get_mut(&pid.as_raw())
                    .and_then(|t| t.pending.take());
                if let Some(entry) = entry {
                    self.on_exit(pid, entry);
                }
                let _ = ptrace::cont(pid, None);
            }
            WaitStatus::Stopped(pid, signal) => {
                // A signal is about to be delivered: note it, pass it on.
                let info = ptrace::getsiginfo(pid).ok();
                // SAFETY: si_pid is valid for every signal a process sends.
                let sender = info.map(|i| unsafe { i.si_pid() });
                let tgid = self.tgid(pid.as_raw());
                if signal == Signal::SIGCONT && self.group_stopped.remove(&tgid) {
                    // The end of a group-stop may show up here first.
                    let mut cont = self.by(pid.as_raw(), EventKind::Cont);
                    cont.cpu_ms = run_ms(tgid);
                    self.record(cont);
                }
                let mut event = self.by(pid.as_raw(), EventKind::Signal);
                event.other = sender;
                event.code = info.map(|i| i.si_code);
                event.signal = Some(signal.as_str().into());
                self.record(event);
                // The kernel's own SIGXCPU (SI_KERNEL): RLIMIT_CPU reached.
                // As it sends it, the kernel raises the soft limit by a
                // second (to send the next one a second later).
                if signal == Signal::SIGXCPU && info.is_some_and(|i| i.si_code == SI_KERNEL) {
                    let mut hit = self.limit_hit(pid.as_raw(), Limit::Cpu);
                    hit.bytes = hit.bytes.map(|seconds| seconds.saturating_sub(1));
                    self.record(hit);
                }
                let _ = ptrace::cont(pid, signal);
            }
            _ => {}
        }
    }

    pub(super) fn ended(&mut self, pid: Pid, code: Option<i32>, signal: Option<i32>, core: bool) {
        let raw = pid.as_raw();
        // A process's end is logged at its PTRACE_EVENT_EXIT stop, but a
        // SIGKILL may take it past that stop (the kernel skips it when the
        // kill is already pending): then its death, as the wait reports
        // it, is the record. Its CPU time is gone with it.
        if self.tgid(raw) == raw {
            let logged = self
                .shared
                .lock()
                .unwrap()
                .events
                .iter()
                .any(|e| e.kind == EventKind::Exit && e.pid == raw);
            if !logged {
                let mut exit = self.by(raw, EventKind::Exit);
                exit.code = code;
                exit.signal = signal.map(signal_name);
                exit.core_dumped = core;
                self.record(exit);
            }
        }
        self.tracees.remove(&raw);
        self.held.retain(|(_, p)| *p != pid);
        if self.started.contains(&pid.as_raw()) {
            self.shared
                .lock()
                .unwrap()
                .ended
                .insert(pid.as_raw(), (code, signal));
        }
    }

    /// A tracee about to exit (PTRACE_EVENT_EXIT): the process's end, with
    /// its status and CPU time, when it is the main thread; a thread's own
    /// end otherwise.
    fn on_exit_event(&mut self, pid: Pid) {
        use nix::libc;
        let raw = pid.as_raw();
        let status = ptrace::getevent(pid).unwrap_or(0) as i32;
        let (code, signal) = if libc::WIFSIGNALED(status) {
            (
                None,
                Signal::try_from(libc::WTERMSIG(status))
                    .ok()
                    .map(|s| s.as_str().to_string()),
            )
        } else {
            (Some(libc::WEXITSTATUS(status)), None)
        };
        // The main thread's exit is the process's (exit_group
        // reports the group's status to every thread).
        if self.tgid(raw) == raw {
            // Its descriptors are still open here: as many as it
            // may have means RLIMIT_NOFILE was reached, whichever
            // call (watched or not) made them.
            let open = open_descriptors(raw);
            let allowed = soft_limit(raw, "Max open files").unwrap_or(u64::MAX);
            if open as u64 >= allowed {
                let hit = self.limit_hit(raw, Limit::OpenFiles);
                self.record(hit);
            }
            let mut exit = self.by(raw, EventKind::Exit);
            exit.code = code;
            exit.signal = signal;
            exit.core_dumped = libc::WIFSIGNALED(status) && libc::WCOREDUMP(status);
            exit.cpu_ms = cpu_ms(raw);
            self.record(exit);
        } else {
            // A thread's own end, with the time it spent on a CPU
            // (the scheduler's count, to the nanosecond): a thread
            // that waited by spinning shows it.
            let tgid = self.tgid(raw);
            let mut end = self.by(raw, EventKind::ThreadEnd);
            end.cpu_ms = thread_run_ms(tgid, raw);
            self.record(end);
        }
        let _ = ptrace::cont(pid, None);
    }

    pub(super) fn on_event(&mut self, pid: Pid, signal: Signal, event: i32) {
        use nix::libc;
        let raw = pid.as_raw();
        match event {
            libc::PTRACE_EVENT_FORK | libc::PTRACE_EVENT_VFORK | libc::PTRACE_EVENT_CLONE => {
                if let Ok(new) = ptrace::getevent(pid) {
                    let new = new as i32;
                    let parent = self.tgid(raw);
                    // A thread is not a process: only a new thread group counts.
                    let thread = event == libc::PTRACE_EVENT_CLONE && tgid_of(new) == parent;
                    let tracee = self.tracees.entry(new).or_default();
                    tracee.tgid = if thread { parent } else { new };
                    if !thread {
                        let mut spawn = self.by(raw, EventKind::Spawn);
                        spawn.other = Some(spawn.pid);
                        spawn.pid = new;
                        if event == libc::PTRACE_EVENT_VFORK {
                            spawn.text = Some("vfork".into());
                        }
                        self.record(spawn);
                    }
                }
                let _ = ptrace::cont(pid, None);
            }
            libc::PTRACE_EVENT_EXEC => {
                let path = proc_link(&format!("/proc/{raw}/exe"));
                let mut exec = self.by(raw, EventKind::Exec);
                exec.text = path.map(|p| p.display().to_string());
                // Its process group as it became the program (the fifth
                // field of /proc/PID/stat, after the name in brackets).
                exec.code = std::fs::read_to_string(format!("/proc/{raw}/stat"))
                    .ok()
                    .and_then(|stat| {
                        let after = stat.rsplit_once(") ")?.1.to_string();
                        after.split(' ').nth(2)?.parse().ok()
                    });
                self.record(exec);
                let _ = ptrace::cont(pid, None);
            }
            libc::PTRACE_EVENT_EXIT => self.on_exit_event(pid),
            libc::PTRACE_EVENT_SECCOMP => self.on_seccomp(pid),
            libc::PTRACE_EVENT_STOP => {
                let tgid = self.tgid(raw);
                let tracee = self.tracees.entry(raw).or_default();
                let first = !tracee.seen;
                tracee.seen = true;
                let stop_signal = matches!(
                    signal,
                    Signal::SIGSTOP | Signal::SIGTSTP | Signal::SIGTTIN | Signal::SIGTTOU
                );
                if stop_signal && !first {
                    // A group-stop: stay stopped, but keep reporting.
                    if self.group_stopped.insert(tgid) {
                        let mut stop = self.by(raw, EventKind::Stop);
                        stop.signal = Some(signal.as_str().into());
                        stop.cpu_ms = run_ms(tgid);
                        self.record(stop);
                    }
                    // SAFETY: PTRACE_LISTEN on a tracee in a group-stop.
                    unsafe { libc::ptrace(libc::PTRACE_LISTEN, raw, 0, 0) };
                } else {
                    if first && tgid != raw {
                        // A new thread, before it first runs.
                        let thread = self.by(raw, EventKind::Thread);
                        self.record(thread);
                    }
                    if self.group_stopped.remove(&tgid) {
                        let mut cont = self.by(raw, EventKind::Cont);
                        cont.cpu_ms = run_ms(tgid);
                        self.record(cont);
                    }
                    let _ = ptrace::cont(pid, None);
                }
            }
            _ => {
                let _ = ptrace::cont(pid, None);
            }
        }
    }
}
