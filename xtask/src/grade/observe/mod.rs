//! The observer: the thread that starts, traces and reaps a case's
//! processes, and the event log it keeps.
//!
//! Tracing uses ptrace: each program is seized (`PTRACE_SEIZE`) before it
//! execs, with the fork, vfork, clone, exec and exit options, so that every
//! process it creates is traced too. A seccomp filter installed in the
//! child before `exec` stops the program only on the system calls of the
//! table in `calls` (`SECCOMP_RET_TRACE`, as `strace --seccomp-bpf` does):
//! the filter (`filter`), the decoder's families and the calls' names all
//! come from that one table; the families are listed below. At that
//! stop the tracer notes the arguments and what the descriptors and paths
//! name, then resumes with `PTRACE_SYSCALL` to see the call's *exit*: an
//! event is logged only for a call that succeeded, with what it really did
//! (bytes moved, child reaped, processes a signal reached). Group-stops are
//! left in place with `PTRACE_LISTEN`, so that SIGSTOP and SIGCONT keep
//! their meaning, and every signal is passed on unchanged.
//!
//! Events belong to processes (thread groups), not threads: `pid` is the
//! thread group id, `tid` the thread, when it is not the group leader.
//!
//! | family | system calls | how it is observed |
//! |--------|--------------|--------------------|
//! | writes | write, writev, pwrite64, pwritev, pwritev2, sendto (send), sendmsg, sendmmsg | at exit: the bytes actually written, their text, the descriptor's target |
//! | moves of unseen content | sendfile, splice, tee, copy_file_range; vmsplice into a pipe | at exit: a write of the bytes moved, to its target, with `unseen` (the call) and `source`, and no text; splice and sendfile from a pipe, FIFO or socket also log a read of it, unseen too. The bytes never pass through the process's memory, or (vmsplice) the pipe keeps referring to the writer's pages, which it may change after the call: the content is unknown, so no requirement that needs a text is met by such a move, and its diagnosis names the call |
//! | reads | read, readv, pread64, preadv, preadv2, recvfrom (recv), recvmsg, recvmmsg; vmsplice from a pipe (the kernel copies into memory) | at exit, from pipes, FIFOs, sockets and signalfds only: the bytes actually read, their text |
//! | signals sent | kill, tkill, tgkill, rt_sigqueueinfo, rt_tgsigqueueinfo (sigqueue), pidfd_send_signal | at exit, if it succeeded: the target as given, and the processes it reached (0, -1 and -pgid resolved among the traced processes at entry) |
//! | signals received | signal-delivery stops; rt_sigtimedwait (sigwait, sigwaitinfo); reads of a signalfd | the claimed sender (si_pid) |
//! | process creation | fork, vfork, clone | ptrace fork/vfork/clone events; a new thread is not a process (a `thread` event notes it before it first runs) |
//! | | clone3 | answered ENOSYS by the filter: libc then falls back to clone, whose flags the filter can check |
//! | waits | wait4 (waitpid), waitid (P_PID, P_PGID, P_ALL, P_PIDFD) | at exit: a reap only when an exit status was consumed (not WNOWAIT, not a stop or continue report) |
//! | pipes | pipe, pipe2 | at exit: the new pipe |
//! | FIFOs and names | mknod, mknodat (mkfifo), open, openat, openat2, creat, link, linkat, rename, renameat, renameat2, unlink, unlinkat | at exit: canonical paths; an open is logged when it opened a FIFO; `unlinkat(AT_REMOVEDIR)` is not an unlink |
//! | sockets | socket, socketpair, connect | at exit: the new socket, the address connected to |
//! | exec, exit | execve, execveat, exit, exit_group | ptrace exec and exit events, with CPU time at exit |
//! | memory | mmap, mremap, brk, mprotect (only making memory writable) | at exit, only a refusal: a `limit` event when the kernel refused it (ENOMEM, or brk's unmoved break) and the process's own accounting (`VmData`, `VmSize`) plus the request passes its `RLIMIT_DATA` or `RLIMIT_AS` |
//! | descriptors | dup, fcntl (only F_DUPFD, F_DUPFD_CLOEXEC) | at exit, only a refusal (EMFILE): a `limit` event |
//! | stops, continues | group-stops (PTRACE_EVENT_STOP), and their end | when the tracer sees them, with the CPU time so far (to the ns) |
//! | **refused** | io_uring_setup, io_uring_enter, io_uring_register | the call fails (ENOSYS) and the verdict names it: its I/O would be unseen |
//! | **refused** | process_vm_writev | writes into another process's memory, unseen |
//! | **refused** | pidfd_getfd | takes another process's descriptors |
//! | **refused** | clone with CLONE_UNTRACED | would escape the tracer |
//! | **refused** | seccomp, prctl(PR_SET_SECCOMP) | a filter of the program's own: its SECCOMP_RET_TRACE would stop the tracer with data the program chose. The tracer never reads that data anyway: at each seccomp stop it runs its own filter on the kernel's record of the call (PTRACE_GET_SYSCALL_INFO) |
//! | **refused** | any call through the i386 ABI (`int 0x80`) or the x32 ABI | the filter checks the architecture and the x32 bit: such calls would be unseen |
//!
//! Limits the kernel enforced are logged as `limit` events from the
//! kernel's own answers, never from what a program prints: a fork refused
//! (EAGAIN: `RLIMIT_NPROC`), memory refused (above), a descriptor refused
//! (EMFILE from the open, pipe, socket and dup families) or as many open as
//! `RLIMIT_NOFILE` allows at its exit, a write past `RLIMIT_FSIZE` (EFBIG)
//! or into a full file system (ENOSPC), and SIGXCPU sent by the kernel
//! (`SI_KERNEL`) at `RLIMIT_CPU`. Each names the limit in force then, read
//! from `/proc/<pid>/limits`.
//!
//! The log is bounded whatever the programs do ([`Shared::keep`]): at most
//! [`MAX_EVENTS`] events and [`MAX_TEXT`] bytes of text in all; of what a
//! read or write moved, at most [`EVENT_CONTENTS`] bytes per event and
//! [`MAX_CONTENTS`] per case. A read or write whose contents were not all
//! kept says so (`cut`); past the event or text budget the trace is full:
//! later events are only counted ([`TraceCut`]), and the keeper stops the
//! case. The reference solutions log at most about 2,400 events and 4 KiB
//! of contents per case.
//!
//! ptrace calls must all come from the thread that attached, so this one
//! thread forks the programs, traces them and reaps them. It sleeps in
//! `poll` on a signalfd (SIGCHLD) and on a pipe that carries requests.
//! Where ptrace is not permitted, the same thread runs the programs
//! untraced and the log only says why.
//!
//! Perturbations (a case's `[perturb]`): the tracer can hold a syscall that
//! sends a given signal for a while before letting it run, and can alter
//! bytes that a started program reads from a pipe, so that a case can
//! check causality ("killed *because* the signal came") and data flow
//! ("printed what it received").

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

use crate::grade::facts::event::{
    Event, EventKind, Limit, TraceCut, EVENT_CONTENTS, MAX_CONTENTS, MAX_EVENTS, MAX_TEXT,
};
use crate::grade::facts::Perturb;

mod calls;
mod filter;

use calls::{Family, Refusal};
use filter::{filter_verdict, our_filter, seccomp_filter, WATCHED};

/// Everything the supervisor knows, shared with the case's main thread.
#[derive(Default)]
pub struct Shared {
    /// Final statuses of the processes the case started: (code, signal).
    pub ended: BTreeMap<i32, (Option<i32>, Option<i32>)>,
    /// The trace: only through [`Shared::keep`], which bounds it.
    pub events: Vec<Event>,
    /// What the trace did not keep.
    pub cut: TraceCut,
    /// Bytes of text and of contents kept so far.
    text_kept: usize,
    contents_kept: usize,
    /// Why tracing is off, if it is.
    pub untraced: Option<String>,
}

impl Shared {
    /// Bytes of contents the next read or write may keep.
    pub fn contents_room(&self) -> usize {
        if self.cut.full.is_some() {
            return 0;
        }
        EVENT_CONTENTS.min(MAX_CONTENTS - self.contents_kept)
    }

    /// The keeper's measure of each of `pids` at one end of an idle
    /// window (`kind`: `idle_from` or `idle_to`; `window`: which), `at_ms`
    /// into the case, from the kernel's counts in /proc: CPU time (the
    /// larger of the scheduler's count over the live threads and the
    /// process's user and system time, which keeps what ended threads
    /// used) and voluntary context switches (each a wait, so a wake-up).
    pub fn measure_idle(&mut self, kind: EventKind, window: i32, at_ms: f64, pids: &[i32]) {
        for &pid in pids {
            let cpu = match (run_ms(pid), cpu_ms(pid)) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            self.keep(Event {
                at_ms,
                pid,
                kind,
                code: Some(window),
                cpu_ms: cpu,
                wakeups: voluntary_switches(pid),
                ..Event::default()
            });
        }
    }

    /// Logs `event` within the case's budgets: past [`MAX_CONTENTS`] a
    /// read or write keeps no more of its contents; past [`MAX_EVENTS`] or
    /// [`MAX_TEXT`] the trace is full and the event is only counted.
    pub fn keep(&mut self, mut event: Event) {
        if self.cut.full.is_some() {
            self.cut.dropped += 1;
            return;
        }
        if matches!(
            event.kind,
            EventKind::Read | EventKind::Write | EventKind::Altered
        ) {
            if let Some(text) = &mut event.text {
                let room = self.contents_room();
                if text.len() > room {
                    let mut end = room;
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    text.truncate(end);
                    event.cut = true;
                }
                self.contents_kept += text.len();
            }
        }
        let size = event.text.as_ref().map_or(0, String::len)
            + event.target.as_ref().map_or(0, String::len);
        let full = if self.events.len() >= MAX_EVENTS {
            Some(format!("more than {MAX_EVENTS} events"))
        } else if self.text_kept + size > MAX_TEXT {
            Some(format!(
                "more than {} MiB of paths and text",
                MAX_TEXT >> 20
            ))
        } else {
            None
        };
        if let Some(full) = full {
            self.cut.full = Some(format!("{full}, the last of them by process {}", event.pid));
            self.cut.dropped += 1;
            return;
        }
        self.text_kept += size;
        if event.cut && event.unseen.is_none() {
            self.cut.contents_cut += 1;
        }
        self.events.push(event);
    }
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
    /// The jail the program enters before exec (see `jail`).
    pub confinement: Arc<super::jail::Confinement>,
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
    pub fn start(trace: bool, epoch: Instant, perturb: Perturb) -> Self {
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
                worker.perturb = perturb;
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

/// A traced system call between its entry and its exit: what was known at
/// entry (arguments, what descriptors and paths named then).
struct Entry {
    nr: i64,
    args: [u64; 6],
    start_ms: f64,
    /// What the call's descriptor named at entry (`pipe:[..]`, a path).
    target: Option<String>,
    /// The source of a copy, or a resolved path.
    path: Option<String>,
    /// A second resolved path (link, rename).
    path2: Option<String>,
    /// The processes a signal will reach.
    targets: Vec<i32>,
    /// A vmsplice from a pipe into memory: a read.
    reads: bool,
}

/// Per traced thread.
#[derive(Default)]
struct Tracee {
    /// Its thread group (process); 0 until known.
    tgid: i32,
    /// A watched system call whose exit we wait for.
    pending: Option<Entry>,
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
    /// Processes in a group-stop.
    group_stopped: BTreeSet<i32>,
    /// Threads held at a syscall's entry, and when to let them go on.
    held: Vec<(Instant, Pid)>,
    perturb: Perturb,
}

const TRACE_OPTIONS: fn() -> ptrace::Options = || {
    ptrace::Options::PTRACE_O_TRACEFORK
        | ptrace::Options::PTRACE_O_TRACEVFORK
        | ptrace::Options::PTRACE_O_TRACECLONE
        | ptrace::Options::PTRACE_O_TRACEEXEC
        | ptrace::Options::PTRACE_O_TRACEEXIT
        | ptrace::Options::PTRACE_O_TRACESECCOMP
        | ptrace::Options::PTRACE_O_TRACESYSGOOD
        | ptrace::Options::PTRACE_O_EXITKILL
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
            group_stopped: BTreeSet::new(),
            held: Vec::new(),
            perturb: Perturb::default(),
        }
    }

    fn now_ms(&self) -> f64 {
        self.epoch.elapsed().as_secs_f64() * 1e3
    }

    fn record(&self, event: Event) {
        self.shared.lock().unwrap().keep(Event {
            at_ms: self.now_ms(),
            ..event
        });
    }

    /// Bytes of contents the next read or write may keep.
    fn contents_room(&self) -> u64 {
        self.shared.lock().unwrap().contents_room() as u64
    }

    /// A limit the kernel enforced on thread `tid`, with its value then.
    fn limit_hit(&mut self, tid: i32, limit: Limit) -> Event {
        let mut hit = self.by(tid, EventKind::Limit);
        hit.text = Some(limit.name().to_string());
        hit.bytes = limit.proc_name().and_then(|name| soft_limit(tid, name));
        hit
    }

    /// The process a thread belongs to.
    fn tgid(&mut self, tid: i32) -> i32 {
        let tracee = self.tracees.entry(tid).or_default();
        if tracee.tgid == 0 {
            tracee.tgid = tgid_of(tid);
        }
        tracee.tgid
    }

    /// An event of thread `tid`, attributed to its process.
    fn by(&mut self, tid: i32, kind: EventKind) -> Event {
        let pid = self.tgid(tid);
        Event {
            pid,
            tid: (tid != pid).then_some(tid),
            kind,
            ..Event::default()
        }
    }

    fn run(&mut self) {
        if self.trace {
            prefer_this_thread();
        }
        loop {
            while let Ok(request) = self.requests.try_recv() {
                match request {
                    Request::Start(launch, reply) => {
                        let _ = reply.send(self.start(&launch));
                    }
                }
            }
            self.release_held();
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
            // The timeout guards against a lost wake-up, and ends a hold.
            let mut wait_ms: u64 = 50;
            let now = Instant::now();
            for (until, _) in &self.held {
                wait_ms = wait_ms.min(until.saturating_duration_since(now).as_millis() as u64);
            }
            let _ = poll(&mut fds, PollTimeout::from(wait_ms as u8));
            let mut drain = [0u8; 64];
            let _ = nix::unistd::read(self.wake.as_fd(), &mut drain).ok();
            if let Some(signals) = &self.signals {
                while let Ok(Some(_)) = signals.read_signal() {}
            }
        }
    }

    /// Lets held threads go on into their system call, once their time
    /// has come.
    fn release_held(&mut self) {
        let now = Instant::now();
        let (due, wait): (Vec<_>, Vec<_>) = self.held.drain(..).partition(|(t, _)| *t <= now);
        self.held = wait;
        for (_, pid) in due {
            let _ = ptrace::syscall(pid, None);
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
                use nix::libc;
                libc::dup2(stdin_read.as_raw_fd(), 0);
                libc::dup2(stdout_write.as_raw_fd(), 1);
                libc::dup2(stderr_write.as_raw_fd(), 2);
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
                    (libc::RLIMIT_CORE, 0, 0),
                ];
                for (resource, soft, hard) in limits {
                    let value = libc::rlimit {
                        rlim_cur: soft,
                        rlim_max: hard,
                    };
                    libc::setrlimit(resource, &value);
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

    fn ended(&mut self, pid: Pid, code: Option<i32>, signal: Option<i32>) {
        self.tracees.remove(&pid.as_raw());
        self.held.retain(|(_, p)| *p != pid);
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
                    let parent = self.tgid(raw);
                    // A thread is not a process: only a new thread group counts.
                    let thread = event == libc::PTRACE_EVENT_CLONE && tgid_of(new) == parent;
                    let tracee = self.tracees.entry(new).or_default();
                    tracee.tgid = if thread { parent } else { new };
                    if !thread {
                        let mut spawn = self.by(raw, EventKind::Spawn);
                        spawn.other = Some(spawn.pid);
                        spawn.pid = new;
                        self.record(spawn);
                    }
                }
                let _ = ptrace::cont(pid, None);
            }
            libc::PTRACE_EVENT_EXEC => {
                let path = proc_link(&format!("/proc/{raw}/exe"));
                let mut exec = self.by(raw, EventKind::Exec);
                exec.text = path.map(|p| p.display().to_string());
                self.record(exec);
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
                    exit.cpu_ms = cpu_ms(raw);
                    self.record(exit);
                }
                let _ = ptrace::cont(pid, None);
            }
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

    /// A seccomp stop: a watched call at its entry, or a refused one.
    #[cfg(target_arch = "x86_64")]
    fn on_seccomp(&mut self, pid: Pid) {
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
    fn on_seccomp(&mut self, pid: Pid) {
        let _ = ptrace::cont(pid, None);
    }

    /// What must be noted at a watched call's entry; `None` when its exit
    /// does not matter (a read from a regular file, a null signal).
    #[cfg(target_arch = "x86_64")]
    fn prepare(&mut self, pid: Pid, nr: i64, args: [u64; 6]) -> Option<Entry> {
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
            Family::Connect => {
                // An AF_UNIX address names a path.
                let address = read_bytes(pid, a1, (a2 as usize).min(110));
                if let [1, 0, path @ ..] = &address[..] {
                    let path = String::from_utf8_lossy(path);
                    entry.path = Some(path.split('\0').next().unwrap_or("").to_string());
                }
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
    fn prepare(&mut self, _pid: Pid, _nr: i64, _args: [u64; 6]) -> Option<Entry> {
        None
    }

    /// The processes a signal-sending call will reach: the targets as the
    /// kernel resolves them, among the traced processes.
    #[cfg(target_arch = "x86_64")]
    fn signal_targets(&mut self, tid: i32, nr: i64, args: &[u64; 6]) -> Vec<i32> {
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
    fn processes(&mut self) -> BTreeSet<i32> {
        let tids: Vec<i32> = self.tracees.keys().copied().collect();
        tids.into_iter().map(|t| self.tgid(t)).collect()
    }

    /// A watched call's exit: log what it did, if it succeeded.
    #[cfg(target_arch = "x86_64")]
    fn on_exit(&mut self, pid: Pid, entry: Entry) {
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
            Family::Socket => {
                let mut socket = event(self, EventKind::Socket);
                socket.code = Some(a0 as i32);
                socket.text = Some(calls::name(nr).to_string());
                socket.fd = (nr == libc::SYS_socket).then_some(result as i32);
                self.record(socket);
            }
            Family::Connect => {
                let mut connect = event(self, EventKind::Connect);
                connect.fd = Some(a0 as i32);
                connect.text = entry.path;
                connect.target = entry.target;
                self.record(connect);
            }
            // Watched for their refusals only (above), or never run.
            Family::Fork | Family::Memory | Family::Dup | Family::Refused => {}
        }
    }

    /// An event at a watched call's exit, by thread `tid`, timed from the
    /// call's entry.
    fn exit_event(&mut self, tid: i32, entry: &Entry, kind: EventKind) -> Event {
        Event {
            start_ms: Some(entry.start_ms),
            ..self.by(tid, kind)
        }
    }

    /// A read's exit: its bytes, or the signals a signalfd gave.
    #[cfg(target_arch = "x86_64")]
    fn on_read(&mut self, pid: Pid, entry: Entry, result: i64) {
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
    fn on_write(&mut self, pid: Pid, entry: Entry, result: i64) {
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
    fn on_open(&mut self, pid: Pid, entry: &Entry, result: i64) {
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
    fn on_exit(&mut self, _pid: Pid, _entry: Entry) {}

    /// The exit of wait4 or waitid: a reap only when an exit status was
    /// consumed.
    #[cfg(target_arch = "x86_64")]
    fn on_wait(&mut self, pid: Pid, entry: &Entry, result: i64) {
        use nix::libc;
        let [a0, a1, a2, a3, ..] = entry.args;
        let (child, kind, code, signal) = if entry.nr == libc::SYS_wait4 {
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
            let signal = status
                .filter(|s| libc::WIFSIGNALED(*s))
                .map(|s| libc::WTERMSIG(s));
            (result as i32, kind, code, signal)
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
                _ => (None, None),
            };
            (child, kind, code, signal)
        };
        // WNOHANG with nothing to report.
        if child <= 0 {
            return;
        }
        let mut waited = self.by(pid.as_raw(), kind);
        waited.start_ms = Some(entry.start_ms);
        waited.other = Some(child);
        if kind == EventKind::Reap {
            waited.code = code;
            waited.signal = signal.map(signal_name);
        }
        self.record(waited);
    }

    /// Children of `parent` that exited and whose /proc entry is gone, not
    /// yet logged as reaped: what a wait without siginfo consumed.
    fn vanished_children(&self, parent: i32) -> Vec<i32> {
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

    /// The buffers a read or write call moved data through: (address,
    /// length) pairs.
    #[cfg(target_arch = "x86_64")]
    fn buffers(&self, pid: Pid, nr: i64, args: &[u64; 6], moved: u64) -> Vec<(u64, u64)> {
        use nix::libc;
        let [_, a1, a2, ..] = *args;
        match nr {
            libc::SYS_readv
            | libc::SYS_preadv
            | libc::SYS_preadv2
            | libc::SYS_writev
            | libc::SYS_pwritev
            | libc::SYS_pwritev2
            | libc::SYS_vmsplice => read_iovecs(pid, a1, a2),
            // msghdr: msg_iov at 16, msg_iovlen at 24.
            libc::SYS_sendmsg | libc::SYS_recvmsg => iovecs(pid, a1 + 16, a1 + 24),
            libc::SYS_recvmmsg => iovecs(pid, a1 + 16, a1 + 24),
            _ => vec![(a1, moved)],
        }
    }

    /// Applies the case's replacements to data a started program read;
    /// the altered bytes, if any changed.
    fn alter(&self, pid: Pid, buffers: &[(u64, u64)], data: &[u8]) -> Option<Vec<u8>> {
        let mut altered = data.to_vec();
        for (from, to) in &self.perturb.replace {
            if from.is_empty() || from.len() != to.len() {
                continue;
            }
            let mut at = 0;
            while let Some(found) = altered[at..].windows(from.len()).position(|w| w == from) {
                let start = at + found;
                altered[start..start + to.len()].copy_from_slice(to);
                at = start + to.len();
            }
        }
        if altered == data {
            return None;
        }
        scatter(pid, buffers, &altered);
        Some(altered)
    }
}

/// The limit the kernel enforced in answering a watched call `result`,
/// if that is why the call failed: told by the error (and for memory, by
/// the process's own accounting against its limits), never by the program.
#[cfg(target_arch = "x86_64")]
fn refused_by_limit(tid: i32, entry: &Entry, result: i64) -> Option<Limit> {
    use nix::libc;
    let nr = entry.nr;
    let [a0, a1, a2, a3, ..] = entry.args;
    if nr == libc::SYS_brk {
        // brk answers with the break it left: short of the one asked for,
        // the growth was refused.
        let now = result as u64;
        return (result > 0 && a0 > now).then(|| memory_refused(tid, a0 - now, true))?;
    }
    let errno = if (-4095..0).contains(&result) {
        -result as i32
    } else {
        return None;
    };
    match nr {
        _ if calls::is(nr, Family::Fork) => (errno == libc::EAGAIN).then_some(Limit::Processes),
        libc::SYS_mmap if errno == libc::ENOMEM => {
            // Private writable memory counts against RLIMIT_DATA, every
            // mapping against RLIMIT_AS.
            let prot = a2 as i32;
            let flags = a3 as i32;
            let data = prot & libc::PROT_WRITE != 0
                && flags & (libc::MAP_SHARED | libc::MAP_GROWSDOWN) == 0;
            memory_refused(tid, a1, data)
        }
        libc::SYS_mremap if errno == libc::ENOMEM => {
            memory_refused(tid, a2.saturating_sub(a1), true)
        }
        libc::SYS_mprotect if errno == libc::ENOMEM => memory_refused(tid, a1, true),
        libc::SYS_open
        | libc::SYS_openat
        | libc::SYS_openat2
        | libc::SYS_creat
        | libc::SYS_pipe
        | libc::SYS_pipe2
        | libc::SYS_socket
        | libc::SYS_socketpair
        | libc::SYS_dup
        | libc::SYS_fcntl
            if errno == libc::EMFILE =>
        {
            Some(Limit::OpenFiles)
        }
        _ if calls::writes(nr) && errno == libc::EFBIG => {
            soft_limit(tid, "Max file size").map(|_| Limit::FileSize)
        }
        _ if calls::writes(nr) && errno == libc::ENOSPC => Some(Limit::Disk),
        _ => None,
    }
}

/// Whether `requested` more bytes of memory pass the process's limits:
/// `RLIMIT_DATA` for private writable memory (`data`), else `RLIMIT_AS`,
/// against the kernel's own counts (`VmData`, `VmSize`). Any other
/// ENOMEM (no room to grow in place, too many mappings) is no limit.
fn memory_refused(tid: i32, requested: u64, data: bool) -> Option<Limit> {
    let over = |count: &str, limit: &str| match (kib_field(tid, count), soft_limit(tid, limit)) {
        (Some(used), Some(limit)) => used.saturating_add(requested) > limit,
        _ => false,
    };
    if data && over("VmData:", "Max data size") {
        Some(Limit::Memory)
    } else if over("VmSize:", "Max address space") {
        Some(Limit::AddressSpace)
    } else {
        None
    }
}

/// A `/proc/<pid>/status` field given in kB, in bytes.
fn kib_field(pid: i32, field: &str) -> Option<u64> {
    let status = std::fs::read(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = String::from_utf8_lossy(&status)
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// The soft limit of a resource of `pid` (as `/proc/<pid>/limits` names
/// it), if it has one.
fn soft_limit(pid: i32, name: &str) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    limits
        .lines()
        .find_map(|l| l.strip_prefix(name))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// How many descriptors `pid` has open (see [`as_tracees`]).
fn open_descriptors(pid: i32) -> usize {
    as_tracees(|| std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count())).unwrap_or(0)
}

/// Every traced system call waits for this thread: on a loaded machine a
/// late tracer makes a correct program late (a coordinator's slices grow).
/// So it asks for a real-time priority (the lowest), or else a better nice
/// value; both need privileges, and without them nothing changes. The
/// programs it forks get the normal policy back (SCHED_RESET_ON_FORK).
fn prefer_this_thread() {
    use nix::libc;
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: plain system calls on this thread, with a valid parameter.
    unsafe {
        if libc::sched_setscheduler(0, libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK, &param) != 0 {
            libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, -10);
        }
    }
}

/// A system call at a seccomp stop, as the kernel records it.
struct SeccompCall {
    arch: u32,
    nr: u64,
    args: [u64; 6],
}

/// `PTRACE_GET_SYSCALL_INFO` at a seccomp stop: the kernel's record of the
/// call, architecture included (registers alone cannot tell an `int 0x80`
/// call from a 64-bit one).
#[cfg(target_os = "linux")]
fn seccomp_call(pid: Pid) -> Option<SeccompCall> {
    /// `struct ptrace_syscall_info` with its seccomp member (88 bytes).
    #[repr(C)]
    #[derive(Default)]
    struct Info {
        op: u8,
        reserved: u8,
        flags: u16,
        arch: u32,
        instruction_pointer: u64,
        stack_pointer: u64,
        nr: u64,
        args: [u64; 6],
        ret_data: u32,
        reserved2: u32,
    }
    let mut info = Info::default();
    // SAFETY: the kernel writes at most `size` bytes into `info`.
    let written = unsafe {
        nix::libc::ptrace(
            nix::libc::PTRACE_GET_SYSCALL_INFO,
            pid.as_raw(),
            std::mem::size_of::<Info>(),
            &mut info as *mut Info,
        )
    };
    (written > 0 && info.op == nix::libc::PTRACE_SYSCALL_INFO_SECCOMP).then_some(SeccompCall {
        arch: info.arch,
        nr: info.nr,
        args: info.args,
    })
}

/// The signal a signal-sending call sends.
fn signal_argument(nr: i64, args: &[u64; 6]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if nr == nix::libc::SYS_tgkill || nr == nix::libc::SYS_rt_tgsigqueueinfo {
        return args[2];
    }
    let _ = nr;
    args[1]
}

fn signal_name(number: i32) -> String {
    Signal::try_from(number).map_or(format!("signal {number}"), |s| s.as_str().to_string())
}

fn int_at(bytes: &[u8], at: usize) -> Option<i32> {
    let slice = bytes.get(at..at + 4)?;
    Some(i32::from_ne_bytes(slice.try_into().ok()?))
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The thread group a thread belongs to (itself, if unknown).
fn tgid_of(tid: i32) -> i32 {
    status_field(tid, "Tgid:").unwrap_or(tid)
}

fn status_field(pid: i32, field: &str) -> Option<i32> {
    // Bytes: the name in it need not be UTF-8.
    let status = std::fs::read(format!("/proc/{pid}/status")).ok()?;
    String::from_utf8_lossy(&status)
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|t| t.trim().parse::<i32>().ok())
}

/// A process's process group, from /proc.
fn pgid_of(pid: i32) -> i32 {
    std::fs::read(format!("/proc/{pid}/stat"))
        .ok()
        .map(|s| String::from_utf8_lossy(&s).into_owned())
        .and_then(|s| {
            s.rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(2)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// The process a pidfd of thread `tid` refers to.
fn pidfd_pid(tid: i32, fd: i32) -> Option<i32> {
    let info = as_tracees(|| std::fs::read_to_string(format!("/proc/{tid}/fdinfo/{fd}"))).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|p| p.trim().parse().ok())
}

/// What reads are watched from, and a copy's source is read from:
/// pipes, FIFOs, sockets and signalfds.
fn is_watched_source(target: &str) -> bool {
    target.starts_with("pipe:")
        || target.starts_with("socket:")
        || target == "anon_inode:[signalfd]"
        || is_fifo(target)
}

/// Whether descriptor `fd` of `pid` was opened for reading only.
fn reads_only(pid: i32, fd: RawFd) -> bool {
    let Ok(info) = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")) else {
        return false;
    };
    info.lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|f| i32::from_str_radix(f.trim(), 8).ok())
        .is_some_and(|flags| flags & nix::libc::O_ACCMODE == nix::libc::O_RDONLY)
}

fn is_fifo(path: &str) -> bool {
    use std::os::unix::fs::FileTypeExt;
    path.starts_with('/') && std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

/// User plus system CPU time of `pid` so far, from /proc.
fn cpu_ms(pid: i32) -> Option<f64> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    let stat = String::from_utf8_lossy(&stat);
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { nix::libc::sysconf(nix::libc::_SC_CLK_TCK) } as f64;
    Some(ticks * 1000.0 / per_second.max(1.0))
}

/// Time all threads of `pid` spent on a CPU so far, in ms, from the
/// scheduler's nanosecond counts (`schedstat`): a stop or continue logs it,
/// so that a slice can be judged by the CPU time the program got in it, a
/// measure that a loaded machine does not inflate as it does wall time.
fn run_ms(pid: i32) -> Option<f64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0u64;
    for task in tasks.flatten() {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        total += stat
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some(total as f64 / 1e6)
}

/// Voluntary context switches of all live threads of `pid`.
fn voluntary_switches(pid: i32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0;
    for task in tasks.flatten() {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        total += status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some(total)
}

/// `si_code` of a signal the kernel itself sent.
const SI_KERNEL: i32 = 0x80;

/// `AT_FDCWD` as the register holds it.
const AT_FDCWD: u64 = nix::libc::AT_FDCWD as i64 as u64;

/// An absolute path for `path`, relative to `dir` (a descriptor, or the
/// working directory) of process `pid`.
fn resolve(pid: i32, dir: u64, path: &str) -> String {
    if path.starts_with('/') {
        return path.to_string();
    }
    let base = if dir == AT_FDCWD {
        proc_link(&format!("/proc/{pid}/cwd"))
    } else {
        proc_link(&format!("/proc/{pid}/fd/{}", dir as i32))
    };
    match base {
        Some(base) => base.join(path).display().to_string(),
        None => path.to_string(),
    }
}

/// `resolve`, with the directory part made canonical (symbolic links and
/// `..` followed), the last component kept: the name the call acts on.
fn canonical(pid: i32, dir: u64, path: &str) -> String {
    let resolved = std::path::PathBuf::from(resolve(pid, dir, path));
    match (resolved.parent(), resolved.file_name()) {
        (Some(parent), Some(name)) => std::fs::canonicalize(parent)
            .map_or(resolved.clone(), |p| p.join(name))
            .display()
            .to_string(),
        _ => resolved.display().to_string(),
    }
}

/// What descriptors 0, 1 and 2 of `pid` name, space-separated.
fn stdio_targets(pid: i32) -> String {
    (0..3)
        .map(|fd| fd_target(pid, fd).unwrap_or_default())
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a descriptor refers to: a path, or `pipe:[inode]`.
fn fd_target(pid: i32, fd: RawFd) -> Option<String> {
    proc_link(&format!("/proc/{pid}/fd/{fd}")).map(|p| p.display().to_string())
}

/// The tracees' uid when it is not ours (the case uid, as root); 0 if it
/// is ours.
static TRACEE_UID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Runs `read` as the tracees' uid, if tried as ourselves it is refused.
///
/// A tracee's `/proc/<pid>/{fd,fdinfo,exe,cwd,mem}` are open to its own
/// uid, or to CAP_SYS_PTRACE, which root lacks in a container with the
/// default capabilities (Docker, Gradescope). The file-system uid decides
/// these checks, and it belongs to this thread alone, so the tracer takes
/// the tracees' for the one read and then takes its own back.
fn as_tracees<T, E>(read: impl Fn() -> Result<T, E>) -> Result<T, E> {
    let first = read();
    let uid = TRACEE_UID.load(std::sync::atomic::Ordering::Relaxed);
    if first.is_ok() || uid == 0 {
        return first;
    }
    use nix::libc::{syscall, SYS_setfsgid, SYS_setfsuid};
    // SAFETY: setfsuid and setfsgid take no pointers and change only this
    // thread's credentials; the previous values they return are restored
    // at once. The case's gid is its uid (`jail::Confinement`).
    let (uid_before, gid_before) =
        unsafe { (syscall(SYS_setfsuid, uid), syscall(SYS_setfsgid, uid)) };
    let second = read();
    // SAFETY: as above.
    unsafe {
        syscall(SYS_setfsgid, gid_before);
        syscall(SYS_setfsuid, uid_before);
    }
    second
}

/// Where a tracee's `/proc` link points (see [`as_tracees`]).
fn proc_link(path: &str) -> Option<std::path::PathBuf> {
    as_tracees(|| std::fs::read_link(path)).ok()
}

fn read_bytes(pid: Pid, address: u64, len: usize) -> Vec<u8> {
    use nix::sys::uio::{process_vm_readv, RemoteIoVec};
    if len == 0 {
        return Vec::new();
    }
    let mut buffer = vec![0u8; len];
    let remote = [RemoteIoVec {
        base: address as usize,
        len,
    }];
    let read = match process_vm_readv(pid, &mut [std::io::IoSliceMut::new(&mut buffer)], &remote) {
        Ok(read) => read,
        // Another uid's memory, without CAP_SYS_PTRACE: its /proc/<pid>/mem
        // is open to that uid (see `as_tracees`).
        Err(Errno::EPERM) => {
            use std::os::unix::fs::FileExt;
            as_tracees(|| std::fs::File::open(format!("/proc/{pid}/mem")))
                .and_then(|mem| mem.read_at(&mut buffer, address))
                .unwrap_or(0)
        }
        Err(_) => 0,
    };
    buffer.truncate(read);
    buffer
}

/// An iovec array of `count` entries at `address`.
fn read_iovecs(pid: Pid, address: u64, count: u64) -> Vec<(u64, u64)> {
    let count = count.min(64) as usize;
    read_bytes(pid, address, count * 16)
        .chunks_exact(16)
        .map(|c| {
            (
                u64::from_ne_bytes(c[..8].try_into().unwrap()),
                u64::from_ne_bytes(c[8..].try_into().unwrap()),
            )
        })
        .collect()
}

/// The iovec array whose pointer and count are stored at these addresses
/// (a msghdr's msg_iov and msg_iovlen).
fn iovecs(pid: Pid, pointer_at: u64, count_at: u64) -> Vec<(u64, u64)> {
    let word = |at: u64| u64::from_ne_bytes(read_bytes(pid, at, 8).try_into().unwrap_or([0; 8]));
    read_iovecs(pid, word(pointer_at), word(count_at))
}

/// The first `moved` bytes of the buffers (at most [`EVENT_CONTENTS`]).
fn gather(pid: Pid, buffers: &[(u64, u64)], moved: u64) -> Vec<u8> {
    let mut left = moved.min(EVENT_CONTENTS as u64);
    let mut data = Vec::new();
    for &(address, len) in buffers {
        if left == 0 {
            break;
        }
        let take = len.min(left);
        data.extend(read_bytes(pid, address, take as usize));
        left -= take;
    }
    data
}

/// Writes `data` back over the buffers it was gathered from.
fn scatter(pid: Pid, buffers: &[(u64, u64)], data: &[u8]) {
    use nix::sys::uio::{process_vm_writev, RemoteIoVec};
    let mut at = 0usize;
    for &(address, len) in buffers {
        if at >= data.len() {
            break;
        }
        let take = (len as usize).min(data.len() - at);
        let remote = [RemoteIoVec {
            base: address as usize,
            len: take,
        }];
        let chunk = &data[at..at + take];
        if process_vm_writev(pid, &[std::io::IoSlice::new(chunk)], &remote) == Err(Errno::EPERM) {
            // Another uid's memory: through its /proc/<pid>/mem, as in
            // `read_bytes`.
            use std::os::unix::fs::FileExt;
            let mem = as_tracees(|| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(format!("/proc/{pid}/mem"))
            });
            let _ = mem.and_then(|mem| mem.write_at(chunk, address));
        }
        at += take;
    }
}

fn read_string(pid: Pid, address: u64) -> String {
    let text = lossy(&read_bytes(pid, address, 4096));
    text.split('\0').next().unwrap_or("").to_string()
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use nix::libc;

    /// Runs the classic BPF program on one `seccomp_data` (nr, arch, args).
    fn verdict(nr: i64, arch: u32, arg0: u64) -> u32 {
        verdict_with(nr, arch, &[arg0])
    }

    fn verdict_with(nr: i64, arch: u32, args: &[u64]) -> u32 {
        filter_verdict(&seccomp_filter(), nr as u64, arch, args)
    }

    const X86_64: u32 = 0xC000_003E;
    const I386: u32 = 0x4000_0003;

    #[test]
    fn the_filter_watches_refuses_and_allows() {
        let watched = libc::SECCOMP_RET_TRACE | WATCHED;
        for nr in [
            libc::SYS_write,
            libc::SYS_writev,
            libc::SYS_sendmmsg,
            libc::SYS_readv,
            libc::SYS_rt_sigqueueinfo,
            libc::SYS_pidfd_send_signal,
            libc::SYS_waitid,
            libc::SYS_openat2,
            libc::SYS_socket,
            libc::SYS_fork,
        ] {
            assert_eq!(verdict(nr, X86_64, 0), watched, "syscall {nr}");
        }
        assert_eq!(
            verdict(libc::SYS_getpid, X86_64, 0),
            libc::SECCOMP_RET_ALLOW
        );
        assert_eq!(verdict(libc::SYS_clone, X86_64, 0x11), watched);
        // Memory and descriptors, for the limits the kernel enforces.
        for nr in [
            libc::SYS_mmap,
            libc::SYS_brk,
            libc::SYS_mremap,
            libc::SYS_dup,
        ] {
            assert_eq!(verdict(nr, X86_64, 0), watched, "syscall {nr}");
        }
        let rw = (libc::PROT_READ | libc::PROT_WRITE) as u64;
        let mprotect = |prot| verdict_with(libc::SYS_mprotect, X86_64, &[0, 4096, prot]);
        assert_eq!(mprotect(rw), watched);
        assert_eq!(mprotect(libc::PROT_READ as u64), libc::SECCOMP_RET_ALLOW);
        let fcntl = |cmd: i32| verdict_with(libc::SYS_fcntl, X86_64, &[3, cmd as u64]);
        assert_eq!(fcntl(libc::F_DUPFD), watched);
        assert_eq!(fcntl(libc::F_DUPFD_CLOEXEC), watched);
        assert_eq!(fcntl(libc::F_GETFL), libc::SECCOMP_RET_ALLOW);
        assert_eq!(
            verdict(libc::SYS_munmap, X86_64, 0),
            libc::SECCOMP_RET_ALLOW
        );
        let refused = |code: u32| libc::SECCOMP_RET_TRACE | code;
        assert_eq!(verdict(libc::SYS_clone, X86_64, 0x0080_0011), refused(4));
        assert_eq!(verdict(libc::SYS_io_uring_setup, X86_64, 0), refused(2));
        assert_eq!(verdict(libc::SYS_process_vm_writev, X86_64, 0), refused(3));
        assert_eq!(verdict(libc::SYS_pidfd_getfd, X86_64, 0), refused(7));
        // A filter of the program's own, by either call; other prctls run.
        assert_eq!(verdict(libc::SYS_seccomp, X86_64, 1), refused(8));
        assert_eq!(
            verdict(libc::SYS_prctl, X86_64, libc::PR_SET_SECCOMP as u64),
            refused(8)
        );
        assert_eq!(
            verdict(libc::SYS_prctl, X86_64, libc::PR_SET_NAME as u64),
            libc::SECCOMP_RET_ALLOW
        );
        assert_eq!(verdict(20, I386, 0), refused(5));
        assert_eq!(verdict(0x4000_0001, X86_64, 0), refused(6));
        assert_eq!(
            verdict(libc::SYS_clone3, X86_64, 0),
            libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32
        );
        // Every refusal has words for the verdict.
        for code in 2..=7 {
            assert!(Refusal::of_data(code).is_some(), "refusal {code}");
        }
    }

    fn write_of(text: &str) -> Event {
        Event {
            kind: EventKind::Write,
            text: Some(text.into()),
            target: Some("pipe:[1]".into()),
            ..Event::default()
        }
    }

    #[test]
    fn the_trace_keeps_contents_within_their_budget() {
        let mut shared = Shared::default();
        let chunk = "x".repeat(EVENT_CONTENTS);
        for _ in 0..MAX_CONTENTS / EVENT_CONTENTS {
            assert_eq!(shared.contents_room(), EVENT_CONTENTS);
            shared.keep(write_of(&chunk));
        }
        // Spent: later writes are kept, their contents not, and say so.
        assert_eq!(shared.contents_room(), 0);
        shared.keep(write_of("hello"));
        let last = shared.events.last().unwrap();
        assert_eq!((last.text.as_deref(), last.cut), (Some(""), true));
        assert_eq!(shared.cut.contents_cut, 1);
        assert_eq!(shared.cut.full, None);
        // Other events keep their text: it is not contents.
        shared.keep(Event {
            kind: EventKind::Exec,
            text: Some("/bin/true".into()),
            ..Event::default()
        });
        assert_eq!(
            shared.events.last().unwrap().text.as_deref(),
            Some("/bin/true")
        );
    }

    #[test]
    fn a_full_trace_keeps_no_more_and_counts_what_it_dropped() {
        let mut shared = Shared::default();
        for _ in 0..MAX_EVENTS + 5 {
            shared.keep(Event {
                pid: 7,
                kind: EventKind::Spawn,
                ..Event::default()
            });
        }
        assert_eq!(shared.events.len(), MAX_EVENTS);
        assert_eq!(shared.cut.dropped, 5);
        let full = shared.cut.full.clone().unwrap();
        assert!(
            full.contains(&format!("more than {MAX_EVENTS} events")),
            "{full}"
        );
        assert!(full.contains("process 7"), "{full}");
        // Text: long paths fill it before the events do.
        let mut shared = Shared::default();
        let path = "/".repeat(4096);
        for _ in 0..MAX_TEXT / 4096 + 1 {
            shared.keep(Event {
                kind: EventKind::Mkfifo,
                text: Some(path.clone()),
                ..Event::default()
            });
        }
        assert_eq!(shared.events.len(), MAX_TEXT / 4096);
        assert!(shared
            .cut
            .full
            .as_deref()
            .unwrap()
            .contains("MiB of paths and text"));
        assert_eq!(shared.contents_room(), 0);
    }

    /// vmsplice reads when its descriptor was opened for reading only: a
    /// pipe's read end, not its write end.
    #[test]
    fn a_pipe_read_end_reads_only() {
        let (read, write) = nix::unistd::pipe().unwrap();
        let me = std::process::id() as i32;
        assert!(reads_only(me, read.as_raw_fd()));
        assert!(!reads_only(me, write.as_raw_fd()));
        assert!(is_watched_source(&fd_target(me, read.as_raw_fd()).unwrap()));
        assert!(!is_watched_source("/etc/passwd"));
    }

    #[test]
    fn signal_arguments_and_buffers() {
        let args = [1, 2, 3, 4, 5, 6];
        assert_eq!(signal_argument(libc::SYS_kill, &args), 2);
        assert_eq!(signal_argument(libc::SYS_tgkill, &args), 3);
        assert_eq!(signal_argument(libc::SYS_rt_tgsigqueueinfo, &args), 3);
        assert_eq!(signal_argument(libc::SYS_pidfd_send_signal, &args), 2);
        assert_eq!(int_at(&[1, 0, 0, 0, 2, 0, 0, 0], 4), Some(2));
        assert_eq!(int_at(&[1, 0], 0), None);
    }
}
