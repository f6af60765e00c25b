//! Starting a traced program: fork, the child's set-up before exec, and the seizure.

use super::*;

impl Worker {
    /// Forks and starts one program, seized by us if tracing is on.
    pub(super) fn start(&mut self, launch: &Launch) -> Result<Started, String> {
        let pipe =
            || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"));
        let (stdin_read, stdin_write) = pipe()?;
        let (stdout_read, stdout_write) = pipe()?;
        let (stderr_read, stderr_write) = pipe()?;
        let argv: Vec<*const nix::libc::c_char> = launch
            .argv
            .iter()
            .map(|a| a.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        let envp: Vec<*const nix::libc::c_char> = launch
            .envp
            .iter()
            .map(|a| a.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        let filter = seccomp_filter();
        let trace = self.trace;
        if let Some(uid) = launch.confinement.uid() {
            TRACEE_UID.store(uid, std::sync::atomic::Ordering::Relaxed);
        }
        // SAFETY: this process has several threads. Between fork and exec
        // the child calls only async-signal-safe system calls (dup2,
        // close_range or fcntl, chdir, setsid, setrlimit, sigprocmask, kill,
        // prctl, execve, _exit, and the jail's open, write, unshare,
        // setresuid, landlock) on memory prepared before the fork, and
        // never returns.
        match unsafe { fork() } {
            Err(e) => Err(format!("fork failed: {e}")),
            Ok(ForkResult::Child) => unsafe {
                become_program(
                    launch,
                    [
                        stdin_read.as_raw_fd(),
                        stdout_write.as_raw_fd(),
                        stderr_write.as_raw_fd(),
                    ],
                    &argv,
                    &envp,
                    &filter,
                    trace,
                )
            },
            Ok(ForkResult::Parent { child }) => {
                drop((stdin_read, stdout_write, stderr_write));
                if trace {
                    if let Err(why) = self.seize(child) {
                        // It would install a filter that needs a tracer:
                        // end it before its exec, and start it again
                        // untraced, as every later program will be.
                        let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
                        let _ = waitpid(child, None);
                        self.trace = false;
                        self.shared.lock().unwrap().untraced = Some(why);
                        return self.start(launch);
                    }
                }
                self.started.insert(child.as_raw());
                self.record(Event {
                    pid: child.as_raw(),
                    kind: EventKind::Spawn,
                    other: Some(std::process::id() as i32),
                    // Its standard streams, so that a write into another
                    // program's (through /proc) can be told from its own.
                    text: Some(stdio_targets(child.as_raw())),
                    ..Event::default()
                });
                Ok(Started {
                    pid: child.as_raw(),
                    stdin: stdin_write,
                    stdout: stdout_read,
                    stderr: stderr_read,
                })
            }
        }
    }

    /// Waits for the child's self-stop, seizes it, and lets it go on.
    pub(super) fn seize(&mut self, child: Pid) -> Result<(), String> {
        loop {
            match waitpid(child, Some(WaitPidFlag::WUNTRACED)) {
                Ok(WaitStatus::Stopped(..)) => break,
                Ok(other) => return Err(format!("the program did not start: {other:?}")),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(format!("waitpid: {e}")),
            }
        }
        ptrace::seize(child, TRACE_OPTIONS()).map_err(|e| {
            format!("ptrace is not permitted here ({e}); only the output is checked")
        })?;
        // Seizing a stopped process reports one PTRACE_EVENT_STOP; as the
        // tracee's first stop, `on_event` resumes it with PTRACE_CONT, which
        // also ends its self-inflicted SIGSTOP.
        self.tracees.insert(child.as_raw(), Tracee::default());
        Ok(())
    }
}

/// The child's side of [`Worker::start`], between fork and exec: its
/// standard streams, directory, session and limits; the wait to be seized;
/// the jail; the seccomp filter; the exec. It never returns.
///
/// # Safety
/// Called in the child of a fork of a multi-threaded process: it makes
/// only async-signal-safe system calls (dup2, close_range or fcntl, chdir,
/// setsid, setrlimit, sched_setaffinity, sigprocmask, kill, prctl, execve,
/// _exit, and the
/// jail's open, write, unshare, setresuid, landlock) on memory prepared
/// before the fork.
unsafe fn become_program(
    launch: &Launch,
    stdio: [RawFd; 3],
    argv: &[*const nix::libc::c_char],
    envp: &[*const nix::libc::c_char],
    filter: &[nix::libc::sock_filter],
    trace: bool,
) -> ! {
    use nix::libc;
    libc::dup2(stdio[0], 0);
    libc::dup2(stdio[1], 1);
    libc::dup2(stdio[2], 2);
    // --- sandbox: the program gets 0, 1 and 2 only. Whatever
    // else is open here was inherited by the keeper without
    // close-on-exec; marked now, it closes at exec, after the
    // jail has used its Landlock ruleset.
    crate::grade::jail::close_on_exec_from(3);
    if libc::chdir(launch.cwd.as_ptr()) != 0 {
        libc::_exit(126);
    }
    libc::setsid();
    // CPU: SIGXCPU at the soft limit, which the tracer sees
    // as the kernel's; SIGKILL a second later if ignored.
    let limits = [
        (libc::RLIMIT_CPU, launch.cpu_seconds, launch.cpu_seconds + 1),
        (libc::RLIMIT_FSIZE, 64 << 20, 64 << 20),
        (libc::RLIMIT_NOFILE, 256, 256),
        // One byte: no core image fits, whether the kernel's core_pattern
        // names a file (it would land in scratch) or a pipe to a helper
        // outside the case (which a limit of 1, and only 1, turns down;
        // 0 does not). So "core dumped" is false in every case, on every
        // machine.
        (libc::RLIMIT_CORE, 1, 1),
    ];
    for (resource, soft, hard) in limits {
        let value = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        libc::setrlimit(resource, &value);
    }
    if let Some(set) = &launch.one_cpu {
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) != 0 {
            libc::_exit(126);
        }
    }
    // The supervisor blocks SIGCHLD; the program must not
    // inherit that.
    let empty: libc::sigset_t = std::mem::zeroed();
    libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    if trace {
        // Wait here until the tracer has seized us, while we
        // still have its uid and are dumpable (the keeper is
        // not): root without CAP_SYS_PTRACE, as in a container,
        // may seize only such a process. The seizure outlives
        // the uid change below.
        libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0);
        libc::kill(libc::getpid(), libc::SIGSTOP);
    }
    // --- sandbox: the jail.
    if let Err(message) = launch.confinement.enter() {
        libc::write(2, message.as_ptr().cast(), message.len());
        libc::_exit(125);
    }
    // --- end sandbox
    if trace {
        // Only now, seized: a SECCOMP_RET_TRACE with no tracer
        // attached would fail the system call.
        let program = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_ptr() as *mut libc::sock_filter,
        };
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &program as *const _,
        );
    }
    libc::execve(launch.program.as_ptr(), argv.as_ptr(), envp.as_ptr());
    let message = b"xtask grade: exec failed\n";
    libc::write(2, message.as_ptr().cast(), message.len());
    libc::_exit(127)
}
