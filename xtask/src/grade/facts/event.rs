//! The trace: what the tracer saw the case's processes do, as the judge
//! reads it.

use serde::{Deserialize, Serialize};

/// Events a case's trace keeps at most.
pub const MAX_EVENTS: usize = 20_000;
/// Bytes of text (`text` and `target`) a case's trace keeps at most.
pub const MAX_TEXT: usize = 1 << 20;
/// Bytes of what reads and writes moved that a case's trace keeps at most.
pub const MAX_CONTENTS: usize = 256 << 10;
/// Bytes of what one read or write moved that its event keeps at most.
pub const EVENT_CONTENTS: usize = 8 << 10;

/// What a case's trace did not keep.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TraceCut {
    /// Why the trace is full, once it is: no later event was kept.
    pub full: Option<String>,
    /// Events not kept because the trace was full.
    pub dropped: u64,
    /// Reads and writes kept without all of their contents.
    pub contents_cut: u64,
}

/// What an [`Event`] records. In the json report and the keeper's TOML,
/// each is its snake-case name (`waited_stop`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A new process (`other`: its parent; `text`: `vfork` when the parent
    /// was suspended until it exec'd, as `posix_spawn` and
    /// `std::process::Command` do).
    #[default]
    Spawn,
    /// An exec that succeeded (`text`: the path).
    Exec,
    /// A process ended (`code`: its status; `cpu_ms`: its CPU time).
    Exit,
    /// A wait that consumed a child's exit status (`other`: the child).
    Reap,
    /// A wait that reported a child's stop.
    WaitedStop,
    /// A wait that reported a child's continue.
    WaitedCont,
    /// A wait that looked at an exit without consuming it (WNOWAIT).
    WaitedExit,
    /// A signal sent (`other`: the target as given; `targets`: those reached).
    Kill,
    /// A signal received (`other`: the claimed sender).
    Signal,
    /// A group-stop began.
    Stop,
    /// A group-stop ended.
    Cont,
    /// A new pipe.
    Pipe,
    /// Bytes read from a pipe, FIFO, socket or signalfd.
    Read,
    /// Bytes written (`target`: where they went).
    Write,
    /// A FIFO opened (`code`: the access mode).
    Open,
    /// A FIFO made (`text`: its path).
    Mkfifo,
    /// A name removed.
    Unlink,
    /// A name linked (`target`: the new name).
    Link,
    /// A name renamed (`target`: the new name).
    Rename,
    /// A new socket.
    Socket,
    /// A socket connected (`text`: the address).
    Connect,
    /// A socket given an address (`text`: a path, or `IP:PORT`).
    Bind,
    /// A socket made to listen (`target`: it).
    Listen,
    /// A connection accepted (`target`: the new socket; `source`: the
    /// listening one).
    Accept,
    /// A system call the sandbox refused (`text`: the call).
    Refused,
    /// A signal-sending call the tracer held back on purpose.
    Held,
    /// Bytes the tracer replaced in what a program read, on purpose.
    Altered,
    /// A kernel-enforced limit hit (`text`: one of [`Limit`]'s names).
    Limit,
    /// A new thread (not a process) before it first ran.
    Thread,
    /// A thread (not a process's main one) ended (`cpu_ms`: its time on a
    /// CPU).
    ThreadEnd,
    /// The keeper's measure at the start of an idle window.
    IdleFrom,
    /// The keeper's measure at the end of an idle window.
    IdleTo,
}

impl EventKind {
    /// Its name, as the reports write it.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Spawn => "spawn",
            EventKind::Exec => "exec",
            EventKind::Exit => "exit",
            EventKind::Reap => "reap",
            EventKind::WaitedStop => "waited_stop",
            EventKind::WaitedCont => "waited_cont",
            EventKind::WaitedExit => "waited_exit",
            EventKind::Kill => "kill",
            EventKind::Signal => "signal",
            EventKind::Stop => "stop",
            EventKind::Cont => "cont",
            EventKind::Pipe => "pipe",
            EventKind::Read => "read",
            EventKind::Write => "write",
            EventKind::Open => "open",
            EventKind::Mkfifo => "mkfifo",
            EventKind::Unlink => "unlink",
            EventKind::Link => "link",
            EventKind::Rename => "rename",
            EventKind::Socket => "socket",
            EventKind::Connect => "connect",
            EventKind::Bind => "bind",
            EventKind::Listen => "listen",
            EventKind::Accept => "accept",
            EventKind::Refused => "refused",
            EventKind::Held => "held",
            EventKind::Altered => "altered",
            EventKind::Limit => "limit",
            EventKind::Thread => "thread",
            EventKind::ThreadEnd => "thread_end",
            EventKind::IdleFrom => "idle_from",
            EventKind::IdleTo => "idle_to",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One thing a traced process did, `at_ms` after the case started.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// When the tracer saw it done (a system call's exit).
    pub at_ms: f64,
    /// When the system call began, for events logged at a syscall's exit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_ms: Option<f64>,
    /// The process (thread group id).
    pub pid: i32,
    /// The thread, when it is not the process's main thread.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tid: Option<i32>,
    pub kind: EventKind,
    /// The other process: the parent (spawn), the target as given (kill),
    /// the reaped child (reap), the claimed sender (signal).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other: Option<i32>,
    /// The processes a signal reached (kill).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<i32>>,
    /// The signal: sent, received, that ended a process (exit, reap) or
    /// stopped it (waited_stop).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// The kernel's "core dumped" bit of a death by signal (exit, reap).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub core_dumped: bool,
    /// Exit status (exit, reap), access mode (open), si_code (signal), the
    /// process group it was in (exec).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    /// A path (exec, mkfifo, unlink, open), the text moved (read, write),
    /// the system call (kill, write, refused), the limit (limit: one of
    /// [`Limit`]'s names).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The contents of a read or write were not all kept (`text` is only
    /// their beginning, or nothing): past [`EVENT_CONTENTS`] or
    /// [`MAX_CONTENTS`], or never seen (fd-to-fd copies).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cut: bool,
    /// What a read or write went to (`/path`, `pipe:[123]`,
    /// `socket:[456]`), or the new name of a link or rename.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fd: Option<i32>,
    /// Bytes actually moved; for a limit, the limit in force (bytes,
    /// descriptors or seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// CPU time used by the process so far: at its exit (user + system),
    /// at a stop or continue (time on a CPU, to the nanosecond); by the
    /// thread, at its end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_ms: Option<f64>,
    /// Data moved by a call whose bytes the tracer cannot see (see the
    /// family table): that call's name. `text` is then absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unseen: Option<String>,
    /// Where such a move took its data from (a path, `pipe:[..]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Times the process's threads so far gave up the CPU to wait (the
    /// kernel's voluntary context switches): at an idle window's ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wakeups: Option<u64>,
}

/// The kernel-enforced limits a `limit` event names (its `text`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// `RLIMIT_NPROC` (or a pids cgroup): a fork refused.
    Processes,
    /// `RLIMIT_DATA`: private writable memory refused.
    Memory,
    /// `RLIMIT_AS`: a mapping refused.
    AddressSpace,
    /// `RLIMIT_NOFILE`.
    OpenFiles,
    /// `RLIMIT_FSIZE`.
    FileSize,
    /// A full file system (ENOSPC); the event's `target` is the file.
    Disk,
    /// `RLIMIT_CPU`: SIGXCPU from the kernel.
    Cpu,
}

impl Limit {
    pub const ALL: [Limit; 7] = [
        Limit::Processes,
        Limit::Memory,
        Limit::AddressSpace,
        Limit::OpenFiles,
        Limit::FileSize,
        Limit::Disk,
        Limit::Cpu,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Limit::Processes => "processes",
            Limit::Memory => "memory",
            Limit::AddressSpace => "address space",
            Limit::OpenFiles => "open files",
            Limit::FileSize => "file size",
            Limit::Disk => "disk",
            Limit::Cpu => "cpu time",
        }
    }

    /// The limit a `limit` event names.
    pub fn of(event: &Event) -> Option<Limit> {
        let name = event.text.as_deref()?;
        Self::ALL.into_iter().find(|l| l.name() == name)
    }

    /// Its line in `/proc/<pid>/limits`.
    pub fn proc_name(self) -> Option<&'static str> {
        match self {
            Limit::Processes => Some("Max processes"),
            Limit::Memory => Some("Max data size"),
            Limit::AddressSpace => Some("Max address space"),
            Limit::OpenFiles => Some("Max open files"),
            Limit::FileSize => Some("Max file size"),
            Limit::Cpu => Some("Max cpu time"),
            Limit::Disk => None,
        }
    }
}
