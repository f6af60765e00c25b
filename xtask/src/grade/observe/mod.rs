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
//! | sockets | socket, socketpair, connect, bind, listen, accept, accept4 | at exit: the new socket, the address connected to or bound (a path, `IP:PORT`), the listening socket, the accepted connection's socket and its listener |
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
mod contents;
mod entry;
mod exit;
mod filter;
mod limits;
mod procfs;
mod sockets;
mod start;
mod stops;
mod waits;

use calls::{Family, Refusal};
use filter::{filter_verdict, our_filter, seccomp_filter, WATCHED};
use limits::*;
use procfs::*;

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
    /// The one CPU the program (and all it starts) may run on: its
    /// threads then interleave only where one gives the CPU up.
    pub one_cpu: Option<nix::libc::cpu_set_t>,
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
