//! The thread that starts, waits for and (where allowed) traces a case's
//! processes, and the event log it keeps.
//!
//! Tracing uses ptrace: each program is seized (`PTRACE_SEIZE`) before it
//! execs, with the fork, vfork, clone, exec and exit options, so that every
//! process it creates is traced too. To keep the cost low, a seccomp filter
//! installed in the child before `exec` stops the program only on the
//! system calls that matter here (`SECCOMP_RET_TRACE`, as
//! `strace --seccomp-bpf` does): sending signals, waiting for children,
//! making pipes, reading and writing, opening, making and removing FIFOs. Group-stops are left in place with
//! `PTRACE_LISTEN`, so that SIGSTOP and SIGCONT keep their meaning, and
//! every signal is passed on unchanged: the programs see no difference
//! beyond latency.
//!
//! ptrace calls must all come from the thread that attached, so this one
//! thread forks the programs, traces them and reaps them. It sleeps in
//! `poll` on a signalfd (SIGCHLD) and on a pipe that carries requests.
//! Where ptrace is not permitted, the same thread runs the programs
//! untraced and the log only says why.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::ptrace;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use serde::{Deserialize, Serialize};

/// One thing a traced process did, `at_ms` after the case started.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub at_ms: f64,
    pub pid: i32,
    /// `spawn`, `exec`, `exit`, `reap`, `waited_stop`, `waited_cont`,
    /// `kill`, `signal`, `stop`, `cont`, `pipe`, `read`, `write`, `open`
    /// (FIFOs only), `mkfifo`, `unlink`, `link`, `rename`.
    pub kind: String,
    /// The other process: the parent (spawn), the target (kill), the
    /// reaped child (reap), the sender (signal).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    /// A path (exec, mkfifo, unlink, or what a write went to), or the text
    /// written to stdout/stderr.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// What a write went to (`/path`, `pipe:[123]`, `socket:[456]`), or
    /// the new name of a link or rename.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fd: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// CPU time used by the process, at its exit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_ms: Option<f64>,
}

/// Everything the supervisor knows, shared with the case's main thread.
#[derive(Default)]
pub struct Shared {
    /// Final statuses of the processes the case started: (code, signal).
    pub ended: BTreeMap<i32, (Option<i32>, Option<i32>)>,
    pub events: Vec<Event>,
    /// Why tracing is off, if it is.
    pub untraced: Option<String>,
}

/// What a program needs to start, prepared before any fork: after `fork`
/// in this multi-threaded process the child may only call
/// async-signal-safe functions, so nothing may be allocated there.
pub struct Launch {
    pub program: CString,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub cwd: CString,
    pub cpu_seconds: u64,
    /// The jail the program enters before exec (see `sandbox`).
    pub confinement: Arc<super::sandbox::Confinement>,
}

pub struct Started {
    pub pid: i32,
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

enum Request {
    Start(Box<Launch>, Sender<Result<Started, String>>),
}

/// The handle the case's main thread holds.
pub struct Supervisor {
    requests: Sender<Request>,
    wake: OwnedFd,
    pub shared: Arc<Mutex<Shared>>,
    thread: Option<std::thread::JoinHandle<()>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Supervisor {
    /// Must be called before any other thread exists: SIGCHLD is blocked
    /// here, and threads started later inherit the mask, so that only the
    /// signalfd ever sees it.
    pub fn start(trace: bool, epoch: Instant) -> Self {
        let mut chld = SigSet::empty();
        chld.add(Signal::SIGCHLD);
        let _ = chld.thread_block();
        // Non-blocking: the supervisor drains it after every poll, whether
        // or not a byte came.
        let flags = nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC;
        let (wake_read, wake_write) = nix::unistd::pipe2(flags).expect("pipe");
        let (requests, receiver) = mpsc::channel();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let shared = Arc::clone(&shared);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut worker = Worker::new(trace, epoch, shared, receiver, wake_read, stop);
                worker.run();
            })
        };
        Self {
            requests,
            wake: wake_write,
            shared,
            thread: Some(thread),
            stop,
        }
    }

    pub fn launch(&self, launch: Launch) -> Result<Started, String> {
        let (reply, answer) = mpsc::channel();
        self.requests
            .send(Request::Start(Box::new(launch), reply))
            .map_err(|_| "the supervisor has stopped".to_string())?;
        let _ = nix::unistd::write(&self.wake, b"x");
        answer
            .recv()
            .map_err(|_| "the supervisor has stopped".to_string())?
    }

    /// The final status of a started process, once it has ended.
    pub fn ended(&self, pid: i32) -> Option<(Option<i32>, Option<i32>)> {
        self.shared.lock().unwrap().ended.get(&pid).copied()
    }

    /// Stops the thread once nothing is left to wait for, or after two
    /// seconds at most: the report must not wait on the programs.
    pub fn finish(mut self) -> Shared {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = nix::unistd::write(&self.wake, b"x");
        if let Some(thread) = self.thread.take() {
            let until = Instant::now() + std::time::Duration::from_secs(2);
            while !thread.is_finished() && Instant::now() < until {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
        std::mem::take(&mut *self.shared.lock().unwrap())
    }
}

/// Per traced process: what it is in the middle of.
#[derive(Default)]
struct Tracee {
    /// In a wait4/waitid call whose result we want at syscall exit: the
    /// call, and for waitid where its siginfo goes.
    in_wait: Option<(i64, u64)>,
    /// In a group-stop (SIGSTOP and friends).
    group_stopped: bool,
    /// Seen at least once since it was attached.
    seen: bool,
}

struct Worker {
    trace: bool,
    epoch: Instant,
    shared: Arc<Mutex<Shared>>,
    requests: Receiver<Request>,
    wake: OwnedFd,
    stop: Arc<std::sync::atomic::AtomicBool>,
    signals: Option<SignalFd>,
    /// The processes the case started (our real children).
    started: BTreeSet<i32>,
    tracees: BTreeMap<i32, Tracee>,
}

const TRACE_OPTIONS: fn() -> ptrace::Options = || {
    ptrace::Options::PTRACE_O_TRACEFORK
        | ptrace::Options::PTRACE_O_TRACEVFORK
        | ptrace::Options::PTRACE_O_TRACECLONE
        | ptrace::Options::PTRACE_O_TRACEEXEC
        | ptrace::Options::PTRACE_O_TRACEEXIT
        | ptrace::Options::PTRACE_O_TRACESECCOMP
        | ptrace::Options::PTRACE_O_TRACESYSGOOD
};

impl Worker {
    fn new(
        trace: bool,
        epoch: Instant,
        shared: Arc<Mutex<Shared>>,
        requests: Receiver<Request>,
        wake: OwnedFd,
        stop: Arc<std::sync::atomic::AtomicBool>,
    ) -> Self {
        let mut chld = SigSet::empty();
        chld.add(Signal::SIGCHLD);
        let signals =
            SignalFd::with_flags(&chld, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).ok();
        if !trace {
            shared.lock().unwrap().untraced =
                Some("tracing is off (--no-trace): only the output is checked".to_string());
        } else if !cfg!(target_arch = "x86_64") {
            shared.lock().unwrap().untraced =
                Some("tracing needs x86_64 here: only the output is checked".to_string());
        }
        let trace = trace && cfg!(target_arch = "x86_64");
        Self {
            trace,
            epoch,
            shared,
            requests,
            wake,
            stop,
            signals,
            started: BTreeSet::new(),
            tracees: BTreeMap::new(),
        }
    }

    fn now_ms(&self) -> f64 {
        self.epoch.elapsed().as_secs_f64() * 1e3
    }

    fn record(&self, event: Event) {
        self.shared.lock().unwrap().events.push(Event {
            at_ms: self.now_ms(),
            ..event
        });
    }

    fn run(&mut self) {
        loop {
            while let Ok(request) = self.requests.try_recv() {
                match request {
                    Request::Start(launch, reply) => {
                        let _ = reply.send(self.start(&launch));
                    }
                }
            }
            self.collect();
            let all_ended = {
                let shared = self.shared.lock().unwrap();
                self.started.iter().all(|p| shared.ended.contains_key(p))
            };
            let stopping = self.stop.load(std::sync::atomic::Ordering::SeqCst);
            if stopping {
                // A tracee that is gone without our seeing its exit (someone
                // else reaped it) would otherwise be waited for forever.
                self.tracees
                    .retain(|&pid, _| nix::sys::signal::kill(Pid::from_raw(pid), None).is_ok());
            }
            if stopping && all_ended && self.tracees.is_empty() {
                return;
            }
            let mut fds = vec![PollFd::new(self.wake.as_fd(), PollFlags::POLLIN)];
            if let Some(signals) = &self.signals {
                fds.push(PollFd::new(signals.as_fd(), PollFlags::POLLIN));
            }
            // The timeout only guards against a lost wake-up.
            let _ = poll(&mut fds, PollTimeout::from(50u8));
            let mut drain = [0u8; 64];
            let _ = nix::unistd::read(self.wake.as_fd(), &mut drain).ok();
            if let Some(signals) = &self.signals {
                while let Ok(Some(_)) = signals.read_signal() {}
            }
        }
    }

    /// Forks and starts one program, seized by us if tracing is on.
    fn start(&mut self, launch: &Launch) -> Result<Started, String> {
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
        // SAFETY: this process has several threads. Between fork and exec
        // the child calls only async-signal-safe system calls (dup2, chdir,
        // setsid, setrlimit, sigprocmask, kill, prctl, execve, _exit, and
        // the jail's open, write, unshare, setresuid, landlock) on memory
        // prepared before the fork, and never returns.
        match unsafe { fork() } {
            Err(e) => Err(format!("fork failed: {e}")),
            Ok(ForkResult::Child) => unsafe {
                use nix::libc;
                libc::dup2(stdin_read.as_raw_fd(), 0);
                libc::dup2(stdout_write.as_raw_fd(), 1);
                libc::dup2(stderr_write.as_raw_fd(), 2);
                if libc::chdir(launch.cwd.as_ptr()) != 0 {
                    libc::_exit(126);
                }
                libc::setsid();
                let limits = [
                    (libc::RLIMIT_CPU, launch.cpu_seconds),
                    (libc::RLIMIT_FSIZE, 64 << 20),
                    (libc::RLIMIT_NOFILE, 256),
                    (libc::RLIMIT_CORE, 0),
                ];
                for (resource, limit) in limits {
                    let value = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    libc::setrlimit(resource, &value);
                }
                // The supervisor blocks SIGCHLD; the program must not
                // inherit that.
                let empty: libc::sigset_t = std::mem::zeroed();
                libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
                // --- sandbox: the jail, entered before the tracer seizes us.
                if let Err(message) = launch.confinement.enter() {
                    libc::write(2, message.as_ptr().cast(), message.len());
                    libc::_exit(125);
                }
                // --- end sandbox
                if trace {
                    // Wait here until the tracer has seized us, then
                    // install the filter: a SECCOMP_RET_TRACE with no
                    // tracer attached would fail the system call.
                    libc::kill(libc::getpid(), libc::SIGSTOP);
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
            },
            Ok(ForkResult::Parent { child }) => {
                drop((stdin_read, stdout_write, stderr_write));
                self.started.insert(child.as_raw());
                if trace {
                    if let Err(why) = self.seize(child) {
                        self.trace = false;
                        self.shared.lock().unwrap().untraced = Some(why);
                        // Let it run untraced: continue it past its SIGSTOP.
                        let _ = nix::sys::signal::kill(child, Signal::SIGCONT);
                    }
                }
                self.record(Event {
                    pid: child.as_raw(),
                    kind: "spawn".into(),
                    other: Some(std::process::id() as i32),
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
    fn seize(&mut self, child: Pid) -> Result<(), String> {
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

    /// Handles every pending wait event without blocking.
    fn collect(&mut self) {
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
    fn collect_untraced(&mut self) {
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

    fn handle(&mut self, status: WaitStatus) {
        if std::env::var_os("XTASK_TRACE_DEBUG").is_some() {
            eprintln!("supervisor: {status:?}");
        }
        match status {
            WaitStatus::Exited(pid, code) => self.ended(pid, Some(code), None),
            WaitStatus::Signaled(pid, signal, _) => self.ended(pid, None, Some(signal as i32)),
            WaitStatus::PtraceEvent(pid, signal, event) => self.on_event(pid, signal, event),
            WaitStatus::PtraceSyscall(pid) => {
                // The exit of a pipe, wait4 or waitid we asked to see.
                let call = self.tracees.entry(pid.as_raw()).or_default().in_wait.take();
                let pipe_call = |nr: i64| nr == nix::libc::SYS_pipe || nr == nix::libc::SYS_pipe2;
                if let (Some((nr, fds)), Ok(regs)) = (call, ptrace::getregs(pid)) {
                    // --- sandbox
                    if is_fork(nr) {
                        if regs.rax as i64 == -(nix::libc::EAGAIN as i64) {
                            self.record(Event {
                                pid: pid.as_raw(),
                                kind: "fork_refused".into(),
                                ..Event::default()
                            });
                        }
                    // --- end sandbox
                    } else if pipe_call(nr) {
                        if regs.rax == 0 {
                            self.record_pipe(pid, fds);
                        }
                    } else {
                        let infop = fds;
                        let result = regs.rax as i64;
                        // What the wait returned: a child that ended (reaped),
                        // or only a stop or continue report about one.
                        let (child, kind) = if nr != nix::libc::SYS_waitid {
                            // wait4(pid, *status, ...): 0x7f in the low byte
                            // means stopped, 0xffff continued.
                            let status = match read_bytes(pid, infop, 4)[..] {
                                [a, b, c, d] if infop != 0 => i32::from_ne_bytes([a, b, c, d]),
                                _ => 0,
                            };
                            let kind = if status & 0xff == 0x7f {
                                "waited_stop"
                            } else if status == 0xffff {
                                "waited_cont"
                            } else {
                                "reap"
                            };
                            (result, kind)
                        } else if result == 0 {
                            // waitid returns 0; siginfo holds si_code at 8 and
                            // si_pid at 16, on x86_64.
                            match read_bytes(pid, infop + 8, 12)[..] {
                                [c0, c1, c2, c3, _, _, _, _, p0, p1, p2, p3] => {
                                    let code = i32::from_ne_bytes([c0, c1, c2, c3]);
                                    let kind = match code {
                                        nix::libc::CLD_STOPPED | nix::libc::CLD_TRAPPED => {
                                            "waited_stop"
                                        }
                                        nix::libc::CLD_CONTINUED => "waited_cont",
                                        _ => "reap",
                                    };
                                    (i32::from_ne_bytes([p0, p1, p2, p3]) as i64, kind)
                                }
                                _ => (0, "reap"),
                            }
                        } else {
                            (0, "reap")
                        };
                        if child > 0 {
                            self.record(Event {
                                pid: pid.as_raw(),
                                kind: kind.into(),
                                other: Some(child as i32),
                                ..Event::default()
                            });
                        }
                    }
                }
                let _ = ptrace::cont(pid, None);
            }
            WaitStatus::Stopped(pid, signal) => {
                // A signal is about to be delivered: note it, pass it on.
                let sender = ptrace::getsiginfo(pid)
                    .ok()
                    .map(|info| unsafe { info.si_pid() });
                let tracee = self.tracees.entry(pid.as_raw()).or_default();
                if signal == Signal::SIGCONT && tracee.group_stopped {
                    // The end of a group-stop may show up here first.
                    tracee.group_stopped = false;
                    self.record(Event {
                        pid: pid.as_raw(),
                        kind: "cont".into(),
                        ..Event::default()
                    });
                }
                self.record(Event {
                    pid: pid.as_raw(),
                    kind: "signal".into(),
                    other: sender,
                    signal: Some(signal.as_str().into()),
                    ..Event::default()
                });
                let _ = ptrace::cont(pid, signal);
            }
            _ => {}
        }
    }

    /// At the exit of a successful pipe/pipe2: the pipe the new read end
    /// names (`pipe:[inode]`), so that later reads and writes match it.
    fn record_pipe(&self, pid: Pid, fds: u64) {
        if let [a, b, c, d, ..] = read_bytes(pid, fds, 8)[..] {
            let read_end = i32::from_ne_bytes([a, b, c, d]);
            self.record(Event {
                pid: pid.as_raw(),
                kind: "pipe".into(),
                fd: Some(read_end),
                target: fd_target(pid.as_raw(), read_end),
                ..Event::default()
            });
        }
    }

    fn ended(&mut self, pid: Pid, code: Option<i32>, signal: Option<i32>) {
        self.tracees.remove(&pid.as_raw());
        if self.started.contains(&pid.as_raw()) {
            self.shared
                .lock()
                .unwrap()
                .ended
                .insert(pid.as_raw(), (code, signal));
        }
    }

    fn on_event(&mut self, pid: Pid, signal: Signal, event: i32) {
        use nix::libc;
        let raw = pid.as_raw();
        match event {
            libc::PTRACE_EVENT_FORK | libc::PTRACE_EVENT_VFORK | libc::PTRACE_EVENT_CLONE => {
                if let Ok(new) = ptrace::getevent(pid) {
                    let new = new as i32;
                    // A thread is not a process: only a new thread group counts.
                    if event != libc::PTRACE_EVENT_CLONE || is_process(new) {
                        self.record(Event {
                            pid: new,
                            kind: "spawn".into(),
                            other: Some(raw),
                            ..Event::default()
                        });
                    }
                    self.tracees.entry(new).or_default();
                }
                let _ = ptrace::cont(pid, None);
            }
            libc::PTRACE_EVENT_EXEC => {
                let path = std::fs::read_link(format!("/proc/{raw}/exe")).ok();
                self.record(Event {
                    pid: raw,
                    kind: "exec".into(),
                    text: path.map(|p| p.display().to_string()),
                    ..Event::default()
                });
                let _ = ptrace::cont(pid, None);
            }
            libc::PTRACE_EVENT_EXIT => {
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
                if is_process(raw) {
                    self.record(Event {
                        pid: raw,
                        kind: "exit".into(),
                        code,
                        signal,
                        cpu_ms: cpu_ms(raw),
                        ..Event::default()
                    });
                }
                let _ = ptrace::cont(pid, None);
            }
            libc::PTRACE_EVENT_SECCOMP => {
                if let Some(call) = self.on_syscall(pid) {
                    self.tracees.entry(raw).or_default().in_wait = Some(call);
                    let _ = ptrace::syscall(pid, None);
                } else {
                    let _ = ptrace::cont(pid, None);
                }
            }
            libc::PTRACE_EVENT_STOP => {
                let tracee = self.tracees.entry(raw).or_default();
                let first = !tracee.seen;
                tracee.seen = true;
                let stop_signal = matches!(
                    signal,
                    Signal::SIGSTOP | Signal::SIGTSTP | Signal::SIGTTIN | Signal::SIGTTOU
                );
                if stop_signal && !first {
                    // A group-stop: stay stopped, but keep reporting.
                    if !tracee.group_stopped {
                        tracee.group_stopped = true;
                        self.record(Event {
                            pid: raw,
                            kind: "stop".into(),
                            signal: Some(signal.as_str().into()),
                            ..Event::default()
                        });
                    }
                    unsafe { libc::ptrace(libc::PTRACE_LISTEN, raw, 0, 0) };
                } else {
                    if tracee.group_stopped {
                        tracee.group_stopped = false;
                        self.record(Event {
                            pid: raw,
                            kind: "cont".into(),
                            ..Event::default()
                        });
                    }
                    let _ = ptrace::cont(pid, None);
                }
            }
            _ => {
                let _ = ptrace::cont(pid, None);
            }
        }
    }

    /// Records a traced system call at its entry. Returns the call if its
    /// exit is wanted too (the waits, to learn whom they reaped).
    #[cfg(target_arch = "x86_64")]
    fn on_syscall(&mut self, pid: Pid) -> Option<(i64, u64)> {
        use nix::libc;
        let Ok(regs) = ptrace::getregs(pid) else {
            return None;
        };
        let raw = pid.as_raw();
        let nr = regs.orig_rax as i64;
        let (a0, a1, a2) = (regs.rdi, regs.rsi, regs.rdx);
        let signal_name = |n: u64| {
            Signal::try_from(n as i32).map_or(format!("signal {n}"), |s| s.as_str().to_string())
        };
        match nr {
            libc::SYS_kill | libc::SYS_tkill | libc::SYS_tgkill => {
                // kill(pid, sig), tkill(tid, sig), tgkill(tgid, tid, sig).
                let (target, signal) = if nr == libc::SYS_tgkill {
                    (a0, a2)
                } else {
                    (a0, a1)
                };
                // Signal 0 only asks whether the target exists.
                if signal != 0 {
                    self.record(Event {
                        pid: raw,
                        kind: "kill".into(),
                        other: Some(target as i32),
                        signal: Some(signal_name(signal)),
                        ..Event::default()
                    });
                }
            }
            libc::SYS_wait4 => return Some((nr, a1)),
            // --- sandbox: a refused fork is a process limit the kernel
            // enforced (RLIMIT_NPROC); its exit says so. A successful one
            // is reported by PTRACE_EVENT_FORK instead.
            libc::SYS_fork | libc::SYS_vfork | libc::SYS_clone | libc::SYS_clone3 => {
                return Some((nr, 0))
            }
            // --- end sandbox
            libc::SYS_pipe | libc::SYS_pipe2 => return Some((nr, a0)),
            libc::SYS_open | libc::SYS_openat => {
                // Only FIFOs are logged: who opened which, for reading or
                // writing (`code`: 0 read, 1 write, 2 both).
                let (dir, path, flags) = if nr == libc::SYS_open {
                    (AT_FDCWD, a0, a1)
                } else {
                    (a0, a1, a2)
                };
                let path = resolve(raw, dir, &read_string(pid, path));
                let fifo = std::fs::metadata(&path).is_ok_and(|m| {
                    use std::os::unix::fs::FileTypeExt;
                    m.file_type().is_fifo()
                });
                if fifo {
                    let mode = (flags as i32) & libc::O_ACCMODE;
                    self.record(Event {
                        pid: raw,
                        kind: "open".into(),
                        text: Some(path),
                        code: Some(mode),
                        ..Event::default()
                    });
                }
            }
            libc::SYS_read => {
                // Only reads from pipes matter here: who read each pipe.
                let target = fd_target(raw, a0 as RawFd);
                if target.as_deref().is_some_and(|t| t.starts_with("pipe:")) {
                    self.record(Event {
                        pid: raw,
                        kind: "read".into(),
                        fd: Some(a0 as i32),
                        target,
                        ..Event::default()
                    });
                }
            }
            libc::SYS_waitid => return Some((nr, a2)),
            libc::SYS_write => {
                let fd = a0 as RawFd;
                self.record(Event {
                    pid: raw,
                    kind: "write".into(),
                    fd: Some(fd),
                    bytes: Some(a2),
                    text: Some(read_memory(pid, a1, (a2 as usize).min(8192))),
                    target: fd_target(raw, fd),
                    ..Event::default()
                });
            }
            libc::SYS_mknod | libc::SYS_mknodat => {
                let (dir, path, mode) = if nr == libc::SYS_mknod {
                    (AT_FDCWD, a0, a1)
                } else {
                    (a0, a1, a2)
                };
                if mode as u32 & libc::S_IFMT == libc::S_IFIFO {
                    let path = resolve(raw, dir, &read_string(pid, path));
                    self.record(Event {
                        pid: raw,
                        kind: "mkfifo".into(),
                        text: Some(path),
                        ..Event::default()
                    });
                }
            }
            libc::SYS_unlink | libc::SYS_unlinkat => {
                let (dir, path) = if nr == libc::SYS_unlink {
                    (AT_FDCWD, a0)
                } else {
                    (a0, a1)
                };
                let path = resolve(raw, dir, &read_string(pid, path));
                self.record(Event {
                    pid: raw,
                    kind: "unlink".into(),
                    text: Some(path),
                    ..Event::default()
                });
            }
            libc::SYS_link
            | libc::SYS_rename
            | libc::SYS_linkat
            | libc::SYS_renameat
            | libc::SYS_renameat2 => {
                let kind = if nr == libc::SYS_link || nr == libc::SYS_linkat {
                    "link"
                } else {
                    "rename"
                };
                let (from, to) = if nr == libc::SYS_link || nr == libc::SYS_rename {
                    (
                        resolve(raw, AT_FDCWD, &read_string(pid, a0)),
                        resolve(raw, AT_FDCWD, &read_string(pid, a1)),
                    )
                } else {
                    (
                        resolve(raw, a0, &read_string(pid, a1)),
                        resolve(raw, a2, &read_string(pid, regs.r10)),
                    )
                };
                self.record(Event {
                    pid: raw,
                    kind: kind.into(),
                    text: Some(from),
                    target: Some(to),
                    ..Event::default()
                });
            }
            _ => {}
        }
        None
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn on_syscall(&mut self, _pid: Pid) -> Option<(i64, u64)> {
        None
    }
}

/// --- sandbox: the system calls that create a process or thread.
fn is_fork(nr: i64) -> bool {
    use nix::libc;
    [
        libc::SYS_fork,
        libc::SYS_vfork,
        libc::SYS_clone,
        libc::SYS_clone3,
    ]
    .contains(&nr)
}

/// True if `pid` leads a thread group (a process, not a thread).
fn is_process(pid: i32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return true;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|t| t.trim().parse::<i32>().ok())
        .is_none_or(|tgid| tgid == pid)
}

/// User plus system CPU time of `pid` so far, from /proc.
fn cpu_ms(pid: i32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { nix::libc::sysconf(nix::libc::_SC_CLK_TCK) } as f64;
    Some(ticks * 1000.0 / per_second.max(1.0))
}

/// `AT_FDCWD` as the register holds it.
const AT_FDCWD: u64 = nix::libc::AT_FDCWD as i64 as u64;

/// An absolute path for `path`, relative to `dir` (a descriptor, or the
/// working directory) of process `pid`.
fn resolve(pid: i32, dir: u64, path: &str) -> String {
    if path.starts_with('/') {
        return path.to_string();
    }
    let base = if dir == AT_FDCWD {
        std::fs::read_link(format!("/proc/{pid}/cwd")).ok()
    } else {
        std::fs::read_link(format!("/proc/{pid}/fd/{}", dir as i32)).ok()
    };
    match base {
        Some(base) => base.join(path).display().to_string(),
        None => path.to_string(),
    }
}

/// What a descriptor refers to: a path, or `pipe:[inode]`.
fn fd_target(pid: i32, fd: RawFd) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
        .ok()
        .map(|p| p.display().to_string())
}

fn read_bytes(pid: Pid, address: u64, len: usize) -> Vec<u8> {
    use nix::sys::uio::{process_vm_readv, RemoteIoVec};
    let mut buffer = vec![0u8; len];
    let remote = [RemoteIoVec {
        base: address as usize,
        len,
    }];
    let read =
        process_vm_readv(pid, &mut [std::io::IoSliceMut::new(&mut buffer)], &remote).unwrap_or(0);
    buffer.truncate(read);
    buffer
}

fn read_memory(pid: Pid, address: u64, len: usize) -> String {
    String::from_utf8_lossy(&read_bytes(pid, address, len)).into_owned()
}

fn read_string(pid: Pid, address: u64) -> String {
    let text = read_memory(pid, address, 4096);
    text.split('\0').next().unwrap_or("").to_string()
}

/// A classic BPF program: stop (SECCOMP_RET_TRACE) on the system calls the
/// grader watches, allow everything else. Other architectures: allow all.
fn seccomp_filter() -> Vec<nix::libc::sock_filter> {
    use nix::libc;
    const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let statement = |code: u16, k: u32| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: JEQ_K,
        jt,
        jf,
        k,
    };
    #[cfg(target_arch = "x86_64")]
    let watched: Vec<i64> = vec![
        libc::SYS_kill,
        libc::SYS_tkill,
        libc::SYS_tgkill,
        libc::SYS_wait4,
        libc::SYS_waitid,
        libc::SYS_pipe,
        libc::SYS_pipe2,
        libc::SYS_read,
        libc::SYS_open,
        libc::SYS_openat,
        libc::SYS_write,
        libc::SYS_mknod,
        libc::SYS_mknodat,
        libc::SYS_unlink,
        libc::SYS_unlinkat,
        libc::SYS_link,
        libc::SYS_linkat,
        libc::SYS_rename,
        libc::SYS_renameat,
        libc::SYS_renameat2,
        // --- sandbox: to see refused forks.
        libc::SYS_fork,
        libc::SYS_vfork,
        libc::SYS_clone,
        libc::SYS_clone3,
    ];
    #[cfg(not(target_arch = "x86_64"))]
    let watched: Vec<i64> = Vec::new();
    let n = watched.len() as u8;
    // seccomp_data: nr at offset 0, arch at offset 4.
    let mut program = vec![
        statement(LD_W_ABS, 4),
        jump(AUDIT_ARCH_X86_64, 0, n + 1), // another ABI: allow
        statement(LD_W_ABS, 0),
    ];
    for (i, nr) in watched.iter().enumerate() {
        // On a match, jump to the TRACE return just past the ALLOW.
        program.push(jump(*nr as u32, n - i as u8, 0));
    }
    program.push(statement(RET_K, libc::SECCOMP_RET_ALLOW));
    program.push(statement(RET_K, libc::SECCOMP_RET_TRACE));
    program
}
