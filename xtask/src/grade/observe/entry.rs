//! A watched call's entry (its seccomp stop): refused, held, or noted
//! for its exit.

use super::*;

impl Worker {
    /// A seccomp stop: a watched call at its entry, or a refused one.
    #[cfg(target_arch = "x86_64")]
    pub(super) fn on_seccomp(&mut self, pid: Pid) {
        let Ok(mut regs) = ptrace::getregs(pid) else {
            let _ = ptrace::cont(pid, None);
            return;
        };
        // Which call this is, from the kernel's own record of the stop
        // (architecture, number, arguments), judged by our own filter run
        // here: never the data the stop carries, which a filter of the
        // program's own could have chosen (ours refuses to let one be
        // installed, but one could predate us).
        let Some(call) = seccomp_call(pid) else {
            let _ = ptrace::cont(pid, None);
            return;
        };
        let verdict = filter_verdict(our_filter(), call.nr, call.arch, &call.args);
        if verdict & nix::libc::SECCOMP_RET_ACTION_FULL != nix::libc::SECCOMP_RET_TRACE {
            // Not a stop our filter asks for: the call goes on, unseen by
            // a rule, as the kernel would run it without us.
            let _ = ptrace::cont(pid, None);
            return;
        }
        let data = verdict & nix::libc::SECCOMP_RET_DATA;
        if data != WATCHED {
            let what = Refusal::of_data(data)
                .map_or("a system call the grader cannot follow", Refusal::reason);
            let mut refused = self.by(pid.as_raw(), EventKind::Refused);
            refused.text = Some(what.to_string());
            refused.code = Some(regs.orig_rax as i32);
            self.record(refused);
            // Skip the call: it fails with ENOSYS.
            regs.orig_rax = u64::MAX;
            regs.rax = (-(nix::libc::ENOSYS as i64)) as u64;
            let _ = ptrace::setregs(pid, regs);
            let _ = ptrace::cont(pid, None);
            return;
        }
        let (nr, args) = (call.nr as i64, call.args);
        let Some(entry) = self.prepare(pid, nr, args) else {
            let _ = ptrace::cont(pid, None);
            return;
        };
        let hold = self
            .perturb
            .hold
            .filter(|(signal, _)| {
                calls::is(nr, Family::SignalSend) && signal_argument(nr, &args) == *signal as u64
            })
            .map(|(_, pause)| pause);
        self.tracees.entry(pid.as_raw()).or_default().pending = Some(entry);
        match hold {
            Some(pause) => {
                let mut held = self.by(pid.as_raw(), EventKind::Held);
                held.text = Some(format!("{} ms", pause.as_millis()));
                self.record(held);
                self.held.push((Instant::now() + pause, pid));
            }
            None => {
                let _ = ptrace::syscall(pid, None);
            }
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub(super) fn on_seccomp(&mut self, pid: Pid) {
        let _ = ptrace::cont(pid, None);
    }

    /// What must be noted at a watched call's entry; `None` when its exit
    /// does not matter (a read from a regular file, a null signal).
    #[cfg(target_arch = "x86_64")]
    pub(super) fn prepare(&mut self, pid: Pid, nr: i64, args: [u64; 6]) -> Option<Entry> {
        use nix::libc;
        let raw = pid.as_raw();
        let mut entry = Entry {
            nr,
            args,
            start_ms: self.now_ms(),
            target: None,
            path: None,
            path2: None,
            targets: Vec::new(),
            reads: false,
        };
        let [a0, a1, a2, a3, ..] = args;
        let Some(family) = calls::family(nr) else {
            return Some(entry);
        };
        match family {
            Family::SignalSend => {
                // Signal 0 only asks whether the target exists.
                if signal_argument(nr, &args) == 0 {
                    return None;
                }
                entry.targets = self.signal_targets(raw, nr, &args);
            }
            Family::Read => {
                let target = fd_target(raw, a0 as RawFd)?;
                if !is_watched_source(&target) {
                    return None;
                }
                entry.target = Some(target);
            }
            Family::Move => match nr {
                libc::SYS_vmsplice if reads_only(raw, a0 as RawFd) => {
                    // From a pipe into memory: the kernel copies, as read does.
                    entry.target = Some(fd_target(raw, a0 as RawFd)?);
                    entry.reads = true;
                }
                libc::SYS_sendfile | libc::SYS_tee => {
                    // sendfile(out, in, ..), tee(in, out, ..).
                    entry.target = fd_target(raw, a0 as RawFd);
                    entry.path = fd_target(raw, a1 as RawFd);
                    if nr == libc::SYS_tee {
                        entry.target = fd_target(raw, a1 as RawFd);
                        entry.path = fd_target(raw, a0 as RawFd);
                    }
                }
                libc::SYS_splice | libc::SYS_copy_file_range => {
                    entry.target = fd_target(raw, a2 as RawFd);
                    entry.path = fd_target(raw, a0 as RawFd);
                }
                // vmsplice into a pipe.
                _ => entry.target = fd_target(raw, a0 as RawFd),
            },
            Family::Write => entry.target = fd_target(raw, a0 as RawFd),
            Family::Mknod => {
                let (dir, path, mode) = if nr == libc::SYS_mknod {
                    (AT_FDCWD, a0, a1)
                } else {
                    (a0, a1, a2)
                };
                if mode as u32 & libc::S_IFMT != libc::S_IFIFO {
                    return None;
                }
                entry.path = Some(canonical(raw, dir, &read_string(pid, path)));
            }
            Family::Unlink => {
                let (dir, path) = if nr == libc::SYS_unlink {
                    (AT_FDCWD, a0)
                } else {
                    // unlinkat(AT_REMOVEDIR) removes a directory, never a FIFO.
                    if a2 as i32 & libc::AT_REMOVEDIR != 0 {
                        return None;
                    }
                    (a0, a1)
                };
                entry.path = Some(canonical(raw, dir, &read_string(pid, path)));
            }
            Family::Link if nr == libc::SYS_link || nr == libc::SYS_rename => {
                entry.path = Some(canonical(raw, AT_FDCWD, &read_string(pid, a0)));
                entry.path2 = Some(canonical(raw, AT_FDCWD, &read_string(pid, a1)));
            }
            Family::Link => {
                entry.path = Some(canonical(raw, a0, &read_string(pid, a1)));
                entry.path2 = Some(canonical(raw, a2, &read_string(pid, a3)));
            }
            Family::Connect | Family::Bind => {
                let address = read_bytes(pid, a1, (a2 as usize).min(110));
                entry.path = socket_address(&address);
                entry.target = fd_target(raw, a0 as RawFd);
            }
            Family::Listen | Family::Accept => {
                entry.target = fd_target(raw, a0 as RawFd);
            }
            // Nothing to note at their entry.
            Family::SignalWait
            | Family::Wait
            | Family::Pipe
            | Family::Open
            | Family::Socket
            | Family::Fork
            | Family::Memory
            | Family::Dup
            | Family::Refused => {}
        }
        Some(entry)
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub(super) fn prepare(&mut self, _pid: Pid, _nr: i64, _args: [u64; 6]) -> Option<Entry> {
        None
    }

    /// The processes a signal-sending call will reach: the targets as the
    /// kernel resolves them, among the traced processes.
    #[cfg(target_arch = "x86_64")]
    pub(super) fn signal_targets(&mut self, tid: i32, nr: i64, args: &[u64; 6]) -> Vec<i32> {
        use nix::libc;
        let first = args[0] as i32;
        match nr {
            libc::SYS_kill if first == 0 || first < -1 => {
                let group = if first == 0 {
                    pgid_of(self.tgid(tid))
                } else {
                    -first
                };
                self.processes()
                    .into_iter()
                    .filter(|p| pgid_of(*p) == group)
                    .collect()
            }
            libc::SYS_kill if first == -1 => {
                let me = self.tgid(tid);
                self.processes().into_iter().filter(|p| *p != me).collect()
            }
            libc::SYS_pidfd_send_signal => pidfd_pid(tid, first).into_iter().collect(),
            // kill(pid), tkill(tid), tgkill(tgid, tid), the sigqueue forms:
            // a thread's id reaches its process.
            _ => vec![tgid_of(first)],
        }
    }

    /// Every traced process.
    pub(super) fn processes(&mut self) -> BTreeSet<i32> {
        let tids: Vec<i32> = self.tracees.keys().copied().collect();
        tids.into_iter().map(|t| self.tgid(t)).collect()
    }
}

/// A socket address as the trace writes it: an AF_UNIX path (`@name` for
/// an abstract one), `IP:PORT` for AF_INET, `[IP]:PORT` for AF_INET6.
fn socket_address(raw: &[u8]) -> Option<String> {
    match raw {
        [1, 0, 0, name @ ..] => Some(format!(
            "@{}",
            String::from_utf8_lossy(name).trim_end_matches('\0')
        )),
        [1, 0, path @ ..] => {
            let path = String::from_utf8_lossy(path);
            Some(path.split('\0').next().unwrap_or("").to_string())
        }
        [2, 0, hi, lo, a, b, c, d, ..] => Some(format!(
            "{a}.{b}.{c}.{d}:{}",
            u16::from_be_bytes([*hi, *lo])
        )),
        [10, 0, hi, lo, _, _, _, _, ip @ ..] if ip.len() >= 16 => {
            let ip: [u8; 16] = ip[..16].try_into().ok()?;
            Some(format!(
                "[{}]:{}",
                std::net::Ipv6Addr::from(ip),
                u16::from_be_bytes([*hi, *lo])
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod address_tests {
    use super::socket_address;

    #[test]
    fn addresses_read_as_the_trace_writes_them() {
        assert_eq!(socket_address(b"\x01\x00/tmp/s\0\0"), Some("/tmp/s".into()));
        assert_eq!(socket_address(b"\x01\x00\x00srv"), Some("@srv".into()));
        assert_eq!(
            socket_address(&[2, 0, 0x1f, 0x90, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]),
            Some("127.0.0.1:8080".into())
        );
        let mut six = vec![10, 0, 0, 80, 0, 0, 0, 0];
        six.extend([0; 15]);
        six.push(1);
        assert_eq!(socket_address(&six), Some("[::1]:80".into()));
        assert_eq!(socket_address(&[9, 9]), None);
    }
}
