//! A watched call's exit: the event of what it did, if it succeeded.

use super::*;

impl Worker {
    /// A watched call's exit: log what it did, if it succeeded.
    #[cfg(target_arch = "x86_64")]
    pub(super) fn on_exit(&mut self, pid: Pid, entry: Entry) {
        use nix::libc;
        let Ok(regs) = ptrace::getregs(pid) else {
            return;
        };
        let result = regs.rax as i64;
        // A limit the kernel enforced, from its answer: the call's only
        // event. A successful fork is reported by PTRACE_EVENT_FORK, a
        // successful memory or dup call is no action.
        if let Some(limit) = refused_by_limit(pid.as_raw(), &entry, result) {
            let mut hit = self.limit_hit(pid.as_raw(), limit);
            hit.start_ms = Some(entry.start_ms);
            if limit == Limit::Disk {
                hit.target = entry.target.clone();
            }
            self.record(hit);
            return;
        }
        if matches!(
            calls::family(entry.nr),
            Some(Family::Fork | Family::Memory | Family::Dup)
        ) {
            return;
        }
        if (-4095..0).contains(&result) {
            return; // it failed: no action
        }
        let raw = pid.as_raw();
        let nr = entry.nr;
        let [a0, a1, ..] = entry.args;
        let event = |this: &mut Self, kind: EventKind| Event {
            start_ms: Some(entry.start_ms),
            ..this.by(raw, kind)
        };
        let Some(family) = calls::family(nr) else {
            return;
        };
        // vmsplice from a pipe into memory is a read (noted at its entry).
        let family = if entry.reads { Family::Read } else { family };
        match family {
            Family::SignalSend => {
                let mut kill = event(self, EventKind::Kill);
                kill.other = Some(a0 as i32);
                kill.targets = Some(entry.targets.clone());
                kill.signal = Some(signal_name(signal_argument(nr, &entry.args) as i32));
                kill.text = Some(calls::name(nr).to_string());
                self.record(kill);
            }
            Family::SignalWait => {
                // sigwaitinfo and friends: the signal taken, its sender.
                let mut received = event(self, EventKind::Signal);
                received.signal = Some(signal_name(result as i32));
                if a1 != 0 {
                    let info = read_bytes(pid, a1, 20);
                    received.code = int_at(&info, 8);
                    received.other = int_at(&info, 16);
                }
                received.text = Some("sigtimedwait".into());
                self.record(received);
            }
            Family::Wait => self.on_wait(pid, &entry, result),
            Family::Pipe => {
                if let Some(read_end) = int_at(&read_bytes(pid, a0, 8), 0) {
                    let mut pipe = event(self, EventKind::Pipe);
                    pipe.fd = Some(read_end);
                    pipe.target = fd_target(raw, read_end);
                    self.record(pipe);
                }
            }
            Family::Read => self.on_read(pid, entry, result),
            Family::Write | Family::Move => self.on_write(pid, entry, result),
            Family::Open => self.on_open(pid, &entry, result),
            Family::Mknod => {
                let mut made = event(self, EventKind::Mkfifo);
                made.text = entry.path;
                self.record(made);
            }
            Family::Unlink => {
                let mut unlink = event(self, EventKind::Unlink);
                unlink.text = entry.path;
                self.record(unlink);
            }
            Family::Link => {
                let kind = if nr == libc::SYS_link || nr == libc::SYS_linkat {
                    EventKind::Link
                } else {
                    EventKind::Rename
                };
                let mut renamed = event(self, kind);
                renamed.text = entry.path;
                renamed.target = entry.path2;
                self.record(renamed);
            }
            Family::Socket | Family::Connect | Family::Bind | Family::Listen | Family::Accept => {
                self.on_socket_call(raw, family, nr, a0, entry, result)
            }
            // Watched for their refusals only (above), or never run.
            Family::Fork | Family::Memory | Family::Dup | Family::Refused => {}
        }
    }

    /// An event at a watched call's exit, by thread `tid`, timed from the
    /// call's entry.
    pub(super) fn exit_event(&mut self, tid: i32, entry: &Entry, kind: EventKind) -> Event {
        Event {
            start_ms: Some(entry.start_ms),
            ..self.by(tid, kind)
        }
    }

    /// A read's exit: its bytes, or the signals a signalfd gave.
    #[cfg(target_arch = "x86_64")]
    pub(super) fn on_read(&mut self, pid: Pid, entry: Entry, result: i64) {
        let (raw, nr) = (pid.as_raw(), entry.nr);
        let a0 = entry.args[0];
        let buffers = self.buffers(pid, nr, &entry.args, result as u64);
        let target = entry.target.clone().unwrap_or_default();
        let reader = self.tgid(raw);
        // What an alteration or a signalfd needs, else what the
        // trace may keep.
        let altering = target.starts_with("pipe:")
            && self.started.contains(&reader)
            && !self.perturb.replace.is_empty();
        let wanted = if altering || target == "anon_inode:[signalfd]" {
            EVENT_CONTENTS as u64
        } else {
            self.contents_room()
        };
        let mut data = gather(pid, &buffers, (result as u64).min(wanted));
        if target == "anon_inode:[signalfd]" {
            // struct signalfd_siginfo: 128 bytes each, signo at 0,
            // code at 8, pid at 12.
            for record in data.chunks_exact(128) {
                let mut received = self.exit_event(raw, &entry, EventKind::Signal);
                received.signal = int_at(record, 0).map(signal_name);
                received.code = int_at(record, 8);
                received.other = int_at(record, 12);
                received.text = Some("signalfd".into());
                self.record(received);
            }
            return;
        }
        if altering {
            if let Some(altered) = self.alter(pid, &buffers, &data) {
                let mut note = self.exit_event(raw, &entry, EventKind::Altered);
                note.text = Some(String::from_utf8_lossy(&altered).into_owned());
                note.target = Some(target.clone());
                self.record(note);
                data = altered;
            }
        }
        let mut read = self.exit_event(raw, &entry, EventKind::Read);
        read.fd = Some(a0 as i32);
        read.bytes = Some(result as u64);
        read.cut = (data.len() as u64) < result as u64;
        read.text = Some(String::from_utf8_lossy(&data).into_owned());
        read.target = entry.target;
        self.record(read);
    }

    /// A write's exit, or a move's (content unseen).
    #[cfg(target_arch = "x86_64")]
    pub(super) fn on_write(&mut self, pid: Pid, entry: Entry, result: i64) {
        use nix::libc;
        let (raw, nr) = (pid.as_raw(), entry.nr);
        let [a0, a1, a2, ..] = entry.args;
        if nr == libc::SYS_sendmmsg {
            // One event per message sent.
            for n in 0..result as u64 {
                let header = a1 + n * 64;
                let sent = int_at(&read_bytes(pid, header + 56, 4), 0).unwrap_or(0);
                let buffers = iovecs(pid, header + 16, header + 24);
                let mut write = self.exit_event(raw, &entry, EventKind::Write);
                write.fd = Some(a0 as i32);
                write.bytes = Some(sent as u64);
                let data = gather(pid, &buffers, (sent as u64).min(self.contents_room()));
                write.cut = (data.len() as u64) < sent as u64;
                write.text = Some(lossy(&data));
                write.target = entry.target.clone();
                self.record(write);
            }
            return;
        }
        // Moves whose bytes the tracer cannot see: the content is
        // unknown, never guessed (see the family table).
        let unseen = matches!(
            nr,
            libc::SYS_sendfile
                | libc::SYS_splice
                | libc::SYS_tee
                | libc::SYS_copy_file_range
                | libc::SYS_vmsplice
        )
        .then(|| calls::name(nr).to_string());
        // splice and sendfile also consume what they take from a
        // pipe, FIFO or socket: a read, of unseen content too.
        let source_fd = match nr {
            libc::SYS_splice => Some(a0 as i32),
            libc::SYS_sendfile => Some(a1 as i32),
            _ => None,
        };
        if let (Some(fd), Some(source)) = (source_fd, entry.path.as_deref()) {
            if is_watched_source(source) {
                let mut read = self.exit_event(raw, &entry, EventKind::Read);
                read.fd = Some(fd);
                read.bytes = Some(result as u64);
                read.target = Some(source.to_string());
                read.unseen.clone_from(&unseen);
                read.cut = true;
                self.record(read);
            }
        }
        let mut write = self.exit_event(raw, &entry, EventKind::Write);
        write.fd = Some(match nr {
            libc::SYS_splice | libc::SYS_copy_file_range => a2 as i32,
            libc::SYS_tee => a1 as i32,
            _ => a0 as i32,
        });
        write.bytes = Some(result as u64);
        if unseen.is_none() {
            let buffers = self.buffers(pid, nr, &entry.args, result as u64);
            let data = gather(pid, &buffers, (result as u64).min(self.contents_room()));
            write.cut = (data.len() as u64) < result as u64;
            write.text = Some(lossy(&data));
        } else {
            // No contents, and a gap in any run of them.
            write.cut = true;
        }
        write.unseen = unseen;
        write.source = entry.path;
        write.target = entry.target;
        self.record(write);
    }

    /// An open's exit: only FIFOs are logged.
    #[cfg(target_arch = "x86_64")]
    pub(super) fn on_open(&mut self, pid: Pid, entry: &Entry, result: i64) {
        use nix::libc;
        let (raw, nr) = (pid.as_raw(), entry.nr);
        let [_, a1, a2, ..] = entry.args;
        // Only FIFOs are logged: who opened which, for reading or
        // writing (`code`: 0 read, 1 write, 2 both).
        let Some(path) = fd_target(raw, result as RawFd) else {
            return;
        };
        if !is_fifo(&path) {
            return;
        }
        let flags = match nr {
            libc::SYS_open => a1,
            libc::SYS_openat => a2,
            libc::SYS_creat => libc::O_WRONLY as u64,
            _ => u64::from_ne_bytes(read_bytes(pid, a2, 8).try_into().unwrap_or([0; 8])),
        };
        let mut open = self.exit_event(raw, entry, EventKind::Open);
        open.text = Some(path);
        open.code = Some((flags as i32) & libc::O_ACCMODE);
        open.fd = Some(result as i32);
        self.record(open);
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub(super) fn on_exit(&mut self, _pid: Pid, _entry: Entry) {}
}
