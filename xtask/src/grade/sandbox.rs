//! The jail: what a case's programs may touch, and how the kernel holds
//! them to it.
//!
//! # Theory of operation
//!
//! Three kinds of process take part in grading:
//!
//! - the **grader** (`cargo xtask grade`): builds, starts one keeper per
//!   case, reads each keeper's report and judges it. It never runs student
//!   code itself.
//! - the **keeper** (`xtask grade-case`, one per case): sets up the case's
//!   jail, starts, traces and reaps the case's programs, enforces the time
//!   limit, and writes the facts as TOML to its stdout, a pipe only the
//!   grader holds.
//! - the **inside programs**: the student's binaries (and the grader's own
//!   probe worker), and everything they start.
//!
//! Channels: grader → keeper: a TOML request on the keeper's stdin (case
//! file, binaries directory), never its command line, which any process
//! may read. Keeper → grader: the report pipe (keeper's stdout) and its
//! exit status. Keeper ↔ programs: each program's stdin/stdout/stderr pipes,
//! ptrace, signals the keeper sends, the scratch directory. Nothing else:
//! no program holds a descriptor of the grader or of the report pipe, and
//! the environment is built from scratch.
//!
//! The keeper enters its jail first thing, while it is still
//! single-threaded. First a **PID namespace** ([`Keeper::begin`]): as an
//! ordinary user it unshares a **user namespace** (mapping only its own
//! uid) to own it, unshares the PID namespace and forks: the child is the
//! keeper proper, **PID 1** of the namespace, in a mount namespace of its
//! own with a fresh **`/proc`** of the namespace (`hidepid=invisible`)
//! over the host's. The process the grader started stays outside as its
//! parent: it waits, removes the scratch directory, and exits as the
//! keeper did. So:
//!
//! - the programs, the tracer (ptrace events, wait results, `si_pid`), the
//!   PIDs in system call arguments (kill targets, wait ids) and the PIDs
//!   programs print are all one PID space, the namespace's, and `/proc`
//!   speaks it too. The grader takes a PID only from the keeper's report,
//!   and a PID taken from a program's output is signalled only by the
//!   keeper, only if it is one of the case's processes; inside the
//!   namespace no PID can name anything else.
//! - `/proc` lists the case's processes alone (and, with `hidepid`, only
//!   those a program may ptrace: not the keeper). No program can list,
//!   signal (`kill(-1)` included) or read `/proc/<pid>/cmdline` of the
//!   grader, another case or the user's shell: it has no PID for them.
//! - PID 1's rules: orphans come back to it (it is also a child
//!   subreaper, for the degraded case); signals from inside the namespace
//!   that it has no handler for, SIGKILL and SIGSTOP included, are
//!   ignored; and when it exits, the **kernel kills every process left in
//!   the namespace**. It dies with its parent (`PR_SET_PDEATHSIG`), so
//!   the grader's deadline, which kills that parent, ends the whole case:
//!   "nothing survives" is the kernel's to enforce.
//!
//! Where no PID namespace can be had (no user namespaces, a container's
//! partly covered `/proc`), the keeper goes on as before, without one, and
//! says why; the grader's probe finds this first and tells the keepers
//! not to try.
//!
//! Then the rest ([`Jail::enter`]), as root directly, as an ordinary user
//! in its user namespace (made here if not made with the PID namespace):
//!
//! - a **mount namespace**, in which a **private tmpfs** of
//!   [`SCRATCH_LIMIT`] bytes is mounted on the scratch directory. The
//!   host sees an empty directory; the tmpfs disappears with the namespace.
//! - a **network namespace**: only a loopback device, down.
//! - as root, a **pids cgroup** (`pids.max` = [`MAX_PROCESSES`]) and a
//!   **memory cgroup** ([`MEMORY_LIMIT`]) of the case's own (cgroup v1,
//!   where writable).
//! - it makes itself **non-dumpable**, so that no process of its uid can
//!   open its `/proc/<pid>/{fd,mem,environ}` or ptrace it.
//!
//! Each program, between `fork` and `exec` ([`Confinement::enter`], only
//! raw system calls on memory prepared before the fork):
//!
//! - joins the case's cgroups;
//! - gets `RLIMIT_NPROC` = [`MAX_PROCESSES`] and `RLIMIT_DATA` =
//!   [`MEMORY_LIMIT`], the kernel-enforced limits when no cgroup is
//!   writable. `RLIMIT_NPROC` counts per (user namespace, uid), so it needs
//!   a uid or a user namespace of the case's own:
//! - as root: switches to a **uid of the case's own** (no supplementary
//!   groups); as an ordinary user: unshares a **user namespace** of its own.
//! - restricts itself with **Landlock**: read and execute only system
//!   directories (`/usr`, `/lib*`, `/bin`, `/etc`), the directory of
//!   copied binaries, `/proc` (read only) and a few devices; read and write
//!   only in scratch. TCP bind and connect are refused (Landlock ABI 4),
//!   signals and abstract unix sockets are scoped to the program's own
//!   domain (ABI 6). A Landlock domain also forbids ptrace (and so
//!   `/proc/<pid>/{fd,mem,environ,cwd}`) of any process outside it.
//!
//! How each guarantee is enforced:
//!
//! | guarantee | enforced by |
//! | --- | --- |
//! | writes only in scratch | Landlock; also the case uid (root); as an ordinary user, every other mount read-only (Landlock does not cover chmod or utime) |
//! | scratch is size-limited | tmpfs `size=` in the keeper's mount namespace; `RLIMIT_FSIZE` per file |
//! | reads only system files and its own binary | Landlock; binaries are copied by the grader into a read-only directory, so `target/` is never reachable |
//! | no signal, ptrace or `/proc/<pid>/fd` outside the case | PID namespace (nothing outside has a PID there); Landlock scoping and ptrace rule; case uid (root); non-dumpable keeper |
//! | no sight of other processes (`/proc/<pid>/cmdline`, `status`) | PID namespace and its own `/proc`; `hidepid=invisible` (without a PID namespace: only as root, with the case uid) |
//! | the PIDs a program prints are the grader's | keeper, tracer and programs share one PID namespace and its `/proc` |
//! | nothing survives the case | the keeper is PID 1: when it exits the kernel kills the namespace; it dies with the process the grader started; the keeper's own sweep (and cgroups, as root) before that |
//! | process limit at any depth | pids cgroup (root); else `RLIMIT_NPROC` under the case uid or a user namespace of the program's own |
//! | memory limit | memory cgroup (root); `RLIMIT_DATA`; and without the cgroup `RLIMIT_AS` (shared mappings too) |
//! | a limit hit is named | the cgroups' own counts ([`Jail::limits_hit`]: `pids.events`, `memory.failcnt`, `memory.oom_control`); the kernel's refusals and SIGXCPU, which the tracer logs as `limit` events (see `observe`) |
//! | no network | network namespace; Landlock TCP rules |
//! | minimal environment | the runner builds it from nothing |
//! | trusted verdict | the report pipe is the keeper's stdout, which no program inherits and none can open through `/proc`; the grader's deadline does not depend on any descriptor |
//!
//! What cannot be had is named by [`JailFeatures::line`] and missing pieces are
//! listed; `--sandbox=require` turns a missing piece into an error.
//!
//! In a container with the default capabilities (Docker's, Gradescope's:
//! root without CAP_SYS_ADMIN or CAP_SYS_PTRACE, cgroups read-only) no
//! namespace can be made. What remains holds: the case uid, Landlock,
//! rlimits, and the trace. The tracer seizes each program while it still
//! has the keeper's uid (the seizure outlives the uid change), and reads
//! the case uid's `/proc` files with that uid as its file-system uid. The
//! build jail likewise runs without its namespaces and says so.
//!
//! The jail only confines. Observing is the supervisor's job (ptrace and
//! seccomp, see `observe`), judging the verdict's; neither depends on
//! this module beyond the [`Confinement`] a launch carries.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::facts::{JailFeatures, JailRequest, SCRATCH_LIMIT};

/// Far above what any lab step needs, far below a fork bomb.
pub const MAX_PROCESSES: u64 = 64;
/// Memory of the case (cgroup) or of each process (`RLIMIT_DATA`).
pub const MEMORY_LIMIT: u64 = 512 << 20;
/// Address space of each process when no memory cgroup is writable: room
/// for thread stacks and allocator arenas, none for a shared mapping past
/// the memory limit.
pub const ADDRESS_SPACE_LIMIT: u64 = 2 * MEMORY_LIMIT;
/// Case uids, as root: this plus the keeper's PID (PIDs stay below 2^22).
const CASE_UID_BASE: u32 = 1_900_000_000;

/// The keeper's side of a case's jail.
pub struct Jail {
    pub scratch: PathBuf,
    pub isolation: JailFeatures,
    confinement: Arc<Confinement>,
    cgroups: Vec<PathBuf>,
    /// Keeps the Landlock ruleset open while programs are started.
    _ruleset: Option<OwnedFd>,
    uid: Option<u32>,
}

/// What one program does to itself between fork and exec, prepared in
/// advance so that the child only makes system calls.
pub struct Confinement {
    cgroup_procs: Vec<CString>,
    /// As root: the case's uid (and gid).
    uid: Option<u32>,
    /// As an ordinary user: the maps for a user namespace of its own.
    user_ns: Option<OwnIdMaps>,
    landlock: Option<RawFd>,
    /// `RLIMIT_AS`, when no memory cgroup holds the case: `RLIMIT_DATA`
    /// alone misses shared mappings.
    address_space: Option<u64>,
}

impl Confinement {
    /// No confinement at all (outside Linux, or turned off).
    pub fn none() -> Arc<Self> {
        Arc::new(Self {
            cgroup_procs: Vec::new(),
            uid: None,
            user_ns: None,
            landlock: None,
            address_space: None,
        })
    }

    /// The uid the programs switch to (as root), if any.
    pub fn uid(&self) -> Option<u32> {
        self.uid
    }

    /// Confines the calling process. Called in the child between `fork`
    /// and `exec`: only raw system calls, no allocation, no locks. Returns
    /// a message for stderr when a step fails; the caller must then exit.
    ///
    /// # Safety
    /// Only in a freshly forked child that will exec or `_exit`.
    #[cfg(target_os = "linux")]
    pub unsafe fn enter(&self) -> Result<(), &'static [u8]> {
        use nix::libc;
        // SAFETY (whole function): open, write, close, setrlimit, unshare,
        // prctl and syscall are async-signal-safe system calls; every
        // string was built before the fork.
        for path in &self.cgroup_procs {
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                return Err(b"xtask grade: cannot join the case's cgroup\n");
            }
            libc::close(fd);
        }
        for (resource, limit) in [
            (libc::RLIMIT_NPROC, MAX_PROCESSES),
            (libc::RLIMIT_DATA, MEMORY_LIMIT),
            (libc::RLIMIT_FSIZE, SCRATCH_LIMIT),
        ] {
            let value = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            libc::setrlimit(resource, &value);
        }
        if let Some(limit) = self.address_space {
            let value = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            libc::setrlimit(libc::RLIMIT_AS, &value);
        }
        if let Some(uid) = self.uid {
            // System V IPC of this program (and its children) alone: no
            // note left by an earlier run of the case (while root can).
            libc::unshare(libc::CLONE_NEWIPC);
            // Raw calls: glibc's wrappers would try to tell other threads.
            let id = uid as libc::c_long;
            if libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) != 0
                || libc::syscall(libc::SYS_setresgid, id, id, id) != 0
                || libc::syscall(libc::SYS_setresuid, id, id, id) != 0
            {
                return Err(b"xtask grade: cannot switch to the case's uid\n");
            }
        }
        // The tracer must be able to seize us, and we must be able to write
        // our own /proc/self/uid_map: the keeper's setting, or the uid
        // change, cleared this.
        libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0);
        if let Some(maps) = &self.user_ns {
            if libc::unshare(libc::CLONE_NEWUSER) != 0 {
                return Err(b"xtask grade: cannot make a user namespace\n");
            }
            if !maps.write() {
                return Err(b"xtask grade: cannot map the user namespace\n");
            }
            // As above: IPC of its own (allowed in its own user namespace).
            libc::unshare(libc::CLONE_NEWIPC);
        }
        if let Some(ruleset) = self.landlock {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0) != 0
            {
                return Err(b"xtask grade: cannot enter the landlock domain\n");
            }
        }
        Ok(())
    }

    #[cfg(not(target_os = "linux"))]
    pub unsafe fn enter(&self) -> Result<(), &'static [u8]> {
        Ok(())
    }
}

/// Marks every descriptor from `first` up close-on-exec. Only system
/// calls: safe between fork and exec.
#[cfg(target_os = "linux")]
pub fn close_on_exec_from(first: u32) {
    use nix::libc;
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range and fcntl take no pointers.
    unsafe {
        if libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) != 0 {
            // Before Linux 5.11: one descriptor at a time.
            for fd in first as libc::c_int..4096 {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub fn close_on_exec_from(_first: u32) {}

/// The Landlock ABI the kernel offers, 0 if none.
#[cfg(target_os = "linux")]
pub fn landlock_abi() -> i32 {
    use nix::libc;
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attribute and this flag, the call only returns
    // the ABI version.
    let version = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    version.max(0) as i32
}

#[cfg(not(target_os = "linux"))]
pub fn landlock_abi() -> i32 {
    0
}

/// The scratch directory of the keeper whose PID on the host is
/// `host_pid`. The keeper makes it; whoever started the keeper removes it
/// should the keeper not (it is hidden under the keeper's own `/tmp`).
pub fn scratch_dir(host_pid: u32) -> PathBuf {
    case_temp_dir()
        .map(|t| t.dir.clone())
        .unwrap_or_else(|_| std::env::temp_dir())
        .join(format!("xtask-grade-{host_pid}"))
}

/// Where the directories a case's programs must reach are made: the
/// binaries' snapshot and each keeper's scratch directory.
pub struct CaseTempDir {
    pub dir: PathBuf,
    /// Why it is not `TMPDIR`, when it is not.
    pub note: Option<String>,
}

/// [`CaseTempDir`], chosen once per process. As root, the programs run as
/// a case uid of their own, which must be able to enter every directory
/// above theirs: a `TMPDIR` only its owner may enter (a `mktemp -d`
/// folder, a private home, systemd's private temp) would make every `exec`
/// fail. Then `/tmp` is used instead, with a note; failing that, grading
/// stops with one line. The grader hands the choice to its keepers in
/// their `TMPDIR`, so that both name the same scratch directories.
pub fn case_temp_dir() -> Result<&'static CaseTempDir, String> {
    static CHOSEN: std::sync::OnceLock<Result<CaseTempDir, String>> = std::sync::OnceLock::new();
    CHOSEN
        .get_or_init(|| {
            let wanted = std::env::temp_dir();
            if !nix::unistd::geteuid().is_root() {
                // The programs keep this uid (or one mapped to it).
                return Ok(CaseTempDir {
                    dir: wanted,
                    note: None,
                });
            }
            let closed = |dir: &Path| closed_ancestor(dir);
            match (closed(&wanted), closed(Path::new("/tmp"))) {
                (None, _) => Ok(CaseTempDir {
                    dir: wanted,
                    note: None,
                }),
                (Some(shut), None) => Ok(CaseTempDir {
                    dir: PathBuf::from("/tmp"),
                    note: Some(format!(
                        "TMPDIR ({}) cannot be entered by the user the cases run as ({} is \
                         closed to others): their binaries and scratch directories are in /tmp",
                        wanted.display(),
                        shut.display()
                    )),
                }),
                (Some(shut), Some(_)) => Err(format!(
                    "TMPDIR ({}) cannot be entered by the user the cases run as ({} is \
                     closed to others), nor can /tmp: set TMPDIR to a directory every user \
                     may enter (mode 1777, as /tmp usually is)",
                    wanted.display(),
                    shut.display()
                )),
            }
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The first directory from `/` down to `dir` (itself included) that a
/// user other than its owner and group may not enter, if any (or that
/// does not exist).
fn closed_ancestor(dir: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    dir.ancestors()
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .find(|d| {
            std::fs::metadata(d)
                .map_or(true, |m| !m.is_dir() || m.permissions().mode() & 0o001 == 0)
        })
        .map(Path::to_path_buf)
}

/// What a keeper became in its first step ([`Keeper::begin`]).
pub struct Keeper {
    /// How much of the jail the grader asked for.
    pub jail: JailRequest,
    /// Its PID as the grader and the host see it (inside its PID
    /// namespace it is PID 1): names its scratch directory, cgroups and
    /// case uid, which must be unique on the machine.
    pub host_pid: u32,
    /// PID 1 of a PID namespace of its own, whose `/proc` is mounted.
    pub pid_ns: bool,
    /// Made along with it: a user namespace (as an ordinary user) and a
    /// mount namespace.
    user_ns: bool,
    mount_ns: bool,
    /// That `/proc` shows a process only what it may ptrace.
    hidepid: bool,
    /// Why there is no PID namespace, when there is none.
    why_not: Option<String>,
    /// Why the keeper must not run programs: inside a PID namespace whose
    /// `/proc` is the host's, every PID it reads would name another
    /// process than the one it means.
    stranded: Option<String>,
}

impl Keeper {
    /// The keeper's first step, while it is single-threaded: it becomes
    /// PID 1 of a PID namespace of its own, with a `/proc` of that
    /// namespace in a mount namespace of its own. The process the grader
    /// started stays outside as the namespace's parent: it waits, removes
    /// the scratch directory, and ends as the keeper ended, without ever
    /// returning from here. Should it die first (the grader's deadline
    /// kills it), the keeper is killed with it, and the kernel kills
    /// everything in the namespace. Where no PID namespace can be made,
    /// the keeper goes on as it is, and says why.
    #[cfg(target_os = "linux")]
    pub fn begin(jail: JailRequest) -> Self {
        let mut keeper = Self {
            jail,
            host_pid: std::process::id(),
            pid_ns: false,
            user_ns: false,
            mount_ns: false,
            hidepid: false,
            why_not: None,
            stranded: None,
        };
        match jail {
            JailRequest::Off => keeper.why_not = Some("the sandbox is off".into()),
            JailRequest::NoPidNamespace => {
                keeper.why_not = Some("the grader's probe could make none here".into())
            }
            JailRequest::Whole => {
                if let Err(why) = keeper.split() {
                    keeper.why_not = Some(why);
                }
            }
        }
        keeper
    }

    #[cfg(not(target_os = "linux"))]
    pub fn begin(jail: JailRequest) -> Self {
        Self {
            jail,
            host_pid: std::process::id(),
            pid_ns: false,
            user_ns: false,
            mount_ns: false,
            hidepid: false,
            why_not: Some("only Linux has them".into()),
            stranded: None,
        }
    }

    /// An error when the keeper cannot run programs (see `stranded`).
    pub fn usable(&self) -> Result<(), String> {
        match &self.stranded {
            Some(why) => Err(format!("the case's PID namespace is unusable: {why}")),
            None => Ok(()),
        }
    }

    /// Unshares the PID namespace and forks its PID 1, which returns; the
    /// parent waits for it and exits.
    #[cfg(target_os = "linux")]
    fn split(&mut self) -> Result<(), String> {
        use nix::sched::{unshare, CloneFlags};
        use nix::sys::wait::{waitpid, WaitStatus};
        use nix::unistd::{fork, geteuid, ForkResult};
        // The child of the fork goes on running this program: sound only
        // while no other thread exists.
        if thread_count() != Some(1) {
            return Err("the keeper already runs other threads".into());
        }
        if !geteuid().is_root() {
            // The user namespace first: it owns the PID namespace, and
            // makes it, and mounting its /proc, allowed.
            unshare(CloneFlags::CLONE_NEWUSER)
                .map_err(|e| format!("no user namespace to make one in ({e})"))?;
            if let Err(why) = map_own_ids() {
                self.stranded = Some(why.clone());
                return Err(why);
            }
            self.user_ns = true;
        }
        unshare(CloneFlags::CLONE_NEWPID).map_err(|e| format!("cannot make one ({e})"))?;
        let flags = nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK;
        let (alive_read, alive_write) =
            nix::unistd::pipe2(flags).map_err(|e| format!("pipe: {e}"))?;
        // SAFETY: single-threaded (checked above): the child may do
        // anything the parent could.
        match unsafe { fork() } {
            Err(e) => {
                // The namespace has no PID 1 yet: no other fork can work.
                let why = format!("cannot start its PID 1 ({e})");
                self.stranded = Some(why.clone());
                Err(why)
            }
            Ok(ForkResult::Child) => {
                drop(alive_write);
                // Dies with the parent, whoever kills it; being PID 1, it
                // takes the whole namespace with it.
                let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
                // The parent may have died before that: its end is closed.
                if matches!(nix::unistd::read(&alive_read, &mut [0u8; 1]), Ok(0)) {
                    std::process::exit(1);
                }
                drop(alive_read);
                self.mount_proc()
            }
            Ok(ForkResult::Parent { child }) => {
                drop(alive_read);
                let _ = nix::sys::prctl::set_dumpable(false);
                let status = loop {
                    match waitpid(child, None) {
                        Err(nix::errno::Errno::EINTR) => continue,
                        other => break other,
                    }
                };
                // Out here, the scratch directory is not hidden.
                let _ = std::fs::remove_dir_all(scratch_dir(self.host_pid));
                drop(alive_write);
                match status {
                    Ok(WaitStatus::Exited(_, code)) => std::process::exit(code),
                    Ok(WaitStatus::Signaled(_, signal, _)) => {
                        use nix::sys::signal::{raise, signal as set_handler, SigHandler};
                        // SAFETY: the default action, for a signal that
                        // should end this process as it ended the keeper.
                        unsafe {
                            let _ = set_handler(signal, SigHandler::SigDfl);
                        }
                        let _ = raise(signal);
                        std::process::exit(128 + signal as i32)
                    }
                    _ => std::process::exit(1),
                }
            }
        }
    }

    /// PID 1's side: a mount namespace of its own, and in it a `/proc` of
    /// the PID namespace over the host's.
    #[cfg(target_os = "linux")]
    fn mount_proc(&mut self) -> Result<(), String> {
        use nix::mount::{mount, MsFlags};
        use nix::sched::{unshare, CloneFlags};
        let mut strand = |why: String| {
            self.stranded = Some(why.clone());
            Err(why)
        };
        if let Err(e) = unshare(CloneFlags::CLONE_NEWNS) {
            return strand(format!("no mount namespace for its /proc ({e})"));
        }
        self.mount_ns = true;
        let private = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
        if let Err(e) = mount(None::<&str>, "/", None::<&str>, private, None::<&str>) {
            return strand(format!("cannot make the mounts private ({e})"));
        }
        match mount_proc_fs(&["hidepid=invisible", "hidepid=2", ""]) {
            Ok(options) => {
                self.pid_ns = true;
                self.hidepid = !options.is_empty();
                Ok(())
            }
            // A partly covered /proc (in some containers) cannot be
            // mounted afresh in a user namespace.
            Err(e) => strand(format!("its /proc cannot be mounted ({e})")),
        }
    }
}

/// The number of threads of this process, from /proc.
#[cfg(target_os = "linux")]
fn thread_count() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}

/// The maps of a user namespace that maps our own uid and gid and nothing
/// else: `/proc/self/{setgroups,uid_map,gid_map}` and what goes in each.
/// Built before a fork, so that the child can write them with system calls
/// alone ([`OwnIdMaps::write`]).
#[derive(Debug, Clone)]
struct OwnIdMaps([(CString, CString); 3]);

impl OwnIdMaps {
    /// The maps for this process's effective uid and gid.
    fn ours() -> Self {
        use nix::unistd::{getegid, geteuid};
        let (uid, gid) = (geteuid().as_raw(), getegid().as_raw());
        let c = |text: String| CString::new(text).unwrap_or_default();
        Self([
            (c("/proc/self/setgroups".into()), c("deny".into())),
            (c("/proc/self/uid_map".into()), c(format!("{uid} {uid} 1"))),
            (c("/proc/self/gid_map".into()), c(format!("{gid} {gid} 1"))),
        ])
    }

    /// Writes the maps into the user namespace the caller just made;
    /// false if the kernel refused one.
    ///
    /// # Safety
    /// Safe between fork and exec: open, write and close only, on memory
    /// prepared before the fork.
    #[cfg(target_os = "linux")]
    unsafe fn write(&self) -> bool {
        use nix::libc;
        for (path, text) in &self.0 {
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            let len = text.count_bytes();
            let written = fd >= 0 && libc::write(fd, text.as_ptr().cast(), len) == len as isize;
            if fd >= 0 {
                libc::close(fd);
            }
            if !written {
                return false;
            }
        }
        true
    }
}

/// Maps our own uid and gid, and nothing else, into the user namespace
/// just made.
#[cfg(target_os = "linux")]
fn map_own_ids() -> Result<(), String> {
    OwnIdMaps::ours()
        .0
        .iter()
        .try_for_each(|(path, text)| {
            std::fs::write(path.to_str().unwrap_or_default(), text.as_bytes())
        })
        .map_err(|e| format!("cannot map the user namespace ({e})"))
}

impl Jail {
    /// Sets up the keeper's jail: namespaces, scratch, cgroups, and the
    /// confinement its programs will enter. Must run while the keeper is
    /// single-threaded (a user namespace requires it). `readable` are the
    /// extra directories programs may read and execute (the binaries).
    #[cfg(target_os = "linux")]
    pub fn enter(readable: &[PathBuf], keeper: &Keeper) -> Self {
        use nix::sched::{unshare, CloneFlags};
        use nix::unistd::geteuid;

        if keeper.jail == JailRequest::Off {
            let mut jail = Self::unconfined(keeper.host_pid);
            jail.isolation = JailFeatures::off();
            return jail;
        }
        let pid = keeper.host_pid;
        let scratch = scratch_dir(pid);
        let _ = std::fs::remove_dir_all(&scratch);
        {
            use std::os::unix::fs::DirBuilderExt;
            let _ = std::fs::DirBuilder::new().mode(0o700).create(&scratch);
        }
        let root = geteuid().is_root();
        let mut isolation = JailFeatures {
            supported: true,
            pid_ns: keeper.pid_ns,
            hidepid: keeper.hidepid,
            ..JailFeatures::default()
        };
        if root || keeper.user_ns {
            // As root, or in the user namespace made with the PID
            // namespace: one namespace at a time.
            isolation.user_ns = keeper.user_ns;
            isolation.mount_ns = keeper.mount_ns || unshare(CloneFlags::CLONE_NEWNS).is_ok();
            if unshare(CloneFlags::CLONE_NEWNET).is_ok() {
                isolation.net_ns = true;
            }
            if unshare(CloneFlags::CLONE_NEWIPC).is_ok() {
                isolation.ipc_ns = true;
            }
        } else {
            let all =
                CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWNET;
            if unshare(all).is_ok() {
                let mapped = map_own_ids().is_ok();
                isolation.user_ns = mapped;
                isolation.mount_ns = mapped;
                isolation.net_ns = mapped;
                // Owned by our user namespace: allowed once we are in it.
                isolation.ipc_ns = mapped && unshare(CloneFlags::CLONE_NEWIPC).is_ok();
            }
        }
        // No process of our uid may open our /proc files or ptrace us
        // (only now: it would also have closed our own uid_map to us).
        let _ = nix::sys::prctl::set_dumpable(false);
        let case_uid = root.then_some(CASE_UID_BASE + pid);
        if isolation.mount_ns {
            isolation.scratch_tmpfs = mount_scratch(&scratch, case_uid);
            let mut keep = vec![scratch.clone()];
            keep.extend(readable.iter().cloned());
            isolation.hidden_dirs = hide_host_dirs(&keep);
            // Without a PID namespace (whose /proc is mounted already),
            // other processes' command lines (the grader's --tests, its
            // helpers') are at least out of the case uid's sight.
            if !keeper.pid_ns && keeper.stranded.is_none() && root {
                isolation.hidepid = mount_proc_fs(&["hidepid=invisible", "hidepid=2"]).is_ok();
            }
            // As an ordinary user, programs have our uid (in a user
            // namespace of their own), and Landlock does not cover chmod
            // or utime: only a read-only mount keeps them off our files.
            // (As root, the case uid owns nothing out here.)
            if !root {
                isolation.read_only_host = freeze_host_mounts(&scratch);
            }
        }
        if let Some(case_uid) = case_uid {
            isolation.own_uid = true;
            let _ = std::os::unix::fs::chown(&scratch, Some(case_uid), Some(case_uid));
        }
        let _ = std::fs::create_dir(scratch.join("run"));
        if let Some(case_uid) = case_uid {
            let _ = std::os::unix::fs::chown(scratch.join("run"), Some(case_uid), Some(case_uid));
        }

        let mut cgroups = Vec::new();
        if root {
            for (controller, settings) in [
                ("pids", vec![("pids.max", MAX_PROCESSES.to_string())]),
                (
                    "memory",
                    vec![
                        ("memory.limit_in_bytes", MEMORY_LIMIT.to_string()),
                        ("memory.swappiness", "0".to_string()),
                    ],
                ),
            ] {
                if let Some(dir) = make_cgroup(controller, pid, &settings) {
                    match controller {
                        "pids" => isolation.pids_cgroup = true,
                        _ => isolation.memory_cgroup = true,
                    }
                    cgroups.push(dir);
                }
            }
        }

        isolation.landlock = landlock_abi();
        let ruleset = if isolation.landlock > 0 {
            landlock_ruleset(&scratch, readable)
        } else {
            None
        };
        if ruleset.is_none() {
            isolation.landlock = 0;
        }
        isolation.note_missing(keeper.why_not.as_deref());

        let c = |text: String| CString::new(text).unwrap_or_default();
        let confinement = Confinement {
            cgroup_procs: cgroups
                .iter()
                .map(|dir| c(dir.join("cgroup.procs").display().to_string()))
                .collect(),
            uid: case_uid,
            user_ns: (!root && isolation.user_ns).then(OwnIdMaps::ours),
            landlock: ruleset.as_ref().map(|fd| fd.as_raw_fd()),
            address_space: (!isolation.memory_cgroup).then_some(ADDRESS_SPACE_LIMIT),
        };
        Self {
            scratch,
            isolation,
            confinement: Arc::new(confinement),
            cgroups,
            _ruleset: ruleset,
            uid: case_uid,
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub fn enter(_readable: &[PathBuf], keeper: &Keeper) -> Self {
        Self::unconfined(keeper.host_pid)
    }

    /// A plain scratch directory, and nothing else.
    fn unconfined(host_pid: u32) -> Self {
        let scratch = scratch_dir(host_pid);
        let _ = std::fs::create_dir_all(scratch.join("run"));
        Self {
            scratch,
            isolation: JailFeatures::default(),
            confinement: Confinement::none(),
            cgroups: Vec::new(),
            _ruleset: None,
            uid: None,
        }
    }

    pub fn confinement(&self) -> Arc<Confinement> {
        Arc::clone(&self.confinement)
    }

    /// Writes a file of the case into scratch, owned by the case's uid.
    pub fn write_file(&self, relative: &str, content: &str) {
        let path = self.scratch.join(relative);
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let _ = std::fs::write(&path, content);
        if let Some(uid) = self.uid {
            let _ = std::os::unix::fs::chown(&path, Some(uid), Some(uid));
        }
    }

    /// Limits the kernel enforced during the case, as verdict sentences.
    pub fn limits_hit(&self) -> Vec<String> {
        let mut hit = Vec::new();
        for dir in &self.cgroups {
            let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
            let counter = |text: &str, key: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(key))
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .unwrap_or(0)
            };
            if counter(&read("pids.events"), "max ") > 0 {
                hit.push(format!("started more than {MAX_PROCESSES} processes"));
            }
            if counter(&read("memory.oom_control"), "oom_kill ") > 0
                || counter(&read("memory.failcnt"), "") > 0
            {
                hit.push(format!(
                    "used more than {} MiB of memory",
                    MEMORY_LIMIT >> 20
                ));
            }
        }
        hit
    }

    /// True if scratch is full: a program wrote up to its size limit.
    pub fn scratch_full(&self) -> bool {
        if !self.isolation.scratch_tmpfs {
            return false;
        }
        nix::sys::statvfs::statvfs(&self.scratch).is_ok_and(|s| s.blocks_available() == 0)
    }

    /// Every process still in the case's cgroups (root only), so that
    /// even one that left the keeper's tree is found.
    pub fn cgroup_members(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        for dir in &self.cgroups {
            let text = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
        pids.sort_unstable();
        pids.dedup();
        pids
    }
}

impl Drop for Jail {
    fn drop(&mut self) {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        for _ in 0..1000 {
            let left = self.cgroup_members();
            if left.is_empty() {
                break;
            }
            for pid in left {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        for dir in &self.cgroups {
            let _ = std::fs::remove_dir(dir);
        }
        #[cfg(target_os = "linux")]
        if self.isolation.scratch_tmpfs {
            let _ = nix::mount::umount2(&self.scratch, nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// Mounts a private tmpfs on `scratch`, in the keeper's own mount
/// namespace, after making every mount private so that nothing
/// propagates back to the host.
#[cfg(target_os = "linux")]
fn mount_scratch(scratch: &Path, owner: Option<u32>) -> bool {
    use nix::mount::{mount, MsFlags};
    if mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .is_err()
    {
        return false;
    }
    let mut options = format!("size={SCRATCH_LIMIT},mode=0700");
    if let Some(uid) = owner {
        options.push_str(&format!(",uid={uid},gid={uid}"));
    }
    mount(
        Some("xtask-scratch"),
        scratch,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(options.as_str()),
    )
    .is_ok()
}

/// Where sockets, other users' files and other runs' scratch live: each
/// gets an empty tmpfs in the keeper's mount namespace.
const HIDDEN_DIRS: [&str; 9] = [
    "/tmp", "/var/tmp", "/run", "/var/run", "/dev/shm", "/home", "/root", "/mnt", "/media",
];

/// Mounts an empty tmpfs over each of [`HIDDEN_DIRS`] (in the keeper's
/// private mount namespace: the host sees no change), then binds `keep`
/// (scratch, the binaries) back at their own paths. Landlock does not
/// cover `connect()` to a unix socket by path: a socket that is not there
/// cannot be reached. True if every present directory was covered.
#[cfg(target_os = "linux")]
fn hide_host_dirs(keep: &[PathBuf]) -> bool {
    use nix::mount::{mount, MsFlags};
    use std::os::unix::fs::OpenOptionsExt;
    // Held open (O_PATH) across the mounts that hide them.
    let kept: Vec<(PathBuf, std::fs::File)> = keep
        .iter()
        .filter_map(|path| {
            let file = std::fs::File::options()
                .read(true)
                .custom_flags(nix::libc::O_PATH | nix::libc::O_DIRECTORY)
                .open(path)
                .ok()?;
            Some((path.clone(), file))
        })
        .collect();
    let mut all = true;
    for dir in HIDDEN_DIRS {
        let Ok(meta) = std::fs::symlink_metadata(dir) else {
            continue; // not on this system
        };
        if !meta.is_dir() {
            continue; // a link (/var/run -> /run) is covered by its target
        }
        let mode = if dir == "/tmp" || dir == "/var/tmp" || dir == "/dev/shm" {
            "mode=1777"
        } else {
            "mode=0755"
        };
        let options = format!("size=1m,nr_inodes=4096,{mode}");
        all &= mount(
            Some("xtask-hidden"),
            dir,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some(options.as_str()),
        )
        .is_ok();
    }
    for (path, file) in &kept {
        if !HIDDEN_DIRS.iter().any(|d| path.starts_with(d)) {
            continue;
        }
        let source = format!("/proc/self/fd/{}", file.as_raw_fd());
        all &= std::fs::create_dir_all(path).is_ok()
            && mount(
                Some(source.as_str()),
                path,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .is_ok();
    }
    all
}

/// Makes every mount of the keeper's namespace read-only but `scratch`
/// and `/proc` (a program writes its own user namespace's maps there):
/// `mount_setattr` with `AT_RECURSIVE` (Linux 5.12). Setting read-only is
/// allowed even on the mounts our user namespace inherited locked.
#[cfg(target_os = "linux")]
fn freeze_host_mounts(scratch: &Path) -> bool {
    use nix::libc;
    use std::os::unix::ffi::OsStrExt;
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    let setattr = |path: &Path, flags: libc::c_uint, attr: MountAttr| -> bool {
        let Ok(path) = CString::new(path.as_os_str().as_bytes()) else {
            return false;
        };
        // SAFETY: a valid C string and a mount_attr of the size given.
        unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                libc::AT_FDCWD,
                path.as_ptr(),
                flags,
                &attr as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            ) == 0
        }
    };
    let read_only = |set: bool| MountAttr {
        attr_set: if set { MOUNT_ATTR_RDONLY } else { 0 },
        attr_clr: if set { 0 } else { MOUNT_ATTR_RDONLY },
        propagation: 0,
        userns_fd: 0,
    };
    setattr(Path::new("/"), AT_RECURSIVE, read_only(true))
        && setattr(scratch, 0, read_only(false))
        && setattr(Path::new("/proc"), 0, read_only(false))
}

#[cfg(not(target_os = "linux"))]
fn freeze_host_mounts(_scratch: &Path) -> bool {
    false
}

/// A fresh /proc over `/proc`, in the keeper's mount namespace, showing
/// the processes of the keeper's PID namespace: with the first of
/// `options` the kernel takes ("" for none), which it returns.
#[cfg(target_os = "linux")]
fn mount_proc_fs(options: &[&'static str]) -> Result<&'static str, nix::errno::Errno> {
    use nix::mount::{mount, MsFlags};
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let mut error = nix::errno::Errno::EINVAL;
    for options in options {
        let data = (!options.is_empty()).then_some(*options);
        match mount(Some("proc"), "/proc", Some("proc"), flags, data) {
            Ok(()) => return Ok(options),
            Err(e) => error = e,
        }
    }
    Err(error)
}

#[cfg(not(target_os = "linux"))]
fn hide_host_dirs(_keep: &[PathBuf]) -> bool {
    false
}

/// A cgroup v1 of the case's own under the keeper's, with `settings`.
fn make_cgroup(controller: &str, pid: u32, settings: &[(&str, String)]) -> Option<PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = own.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        controllers
            .split(',')
            .any(|c| c == controller)
            .then(|| path.to_string())
    })?;
    let dir = Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(path.trim_start_matches('/'))
        .join(format!("xtask-grade-{pid}"));
    std::fs::create_dir(&dir).ok()?;
    for (file, value) in settings {
        if std::fs::write(dir.join(file), value).is_err() && *file != "memory.swappiness" {
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
    }
    Some(dir)
}

/// The Landlock ruleset every program of the case enters. Best effort
/// over the kernel's ABI: what the kernel lacks is left out.
#[cfg(target_os = "linux")]
fn landlock_ruleset(scratch: &Path, readable: &[PathBuf]) -> Option<OwnedFd> {
    use landlock::{Access, AccessFs, ABI};
    let abi = ABI::V6;
    let read = AccessFs::from_read(abi);
    let device = AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::IoctlDev;
    let mut rules: Vec<(PathBuf, landlock::BitFlags<AccessFs>)> = [
        "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/proc",
    ]
    .iter()
    .map(|p| (PathBuf::from(p), read))
    .collect();
    rules.extend(
        [
            "/dev/null",
            "/dev/zero",
            "/dev/full",
            "/dev/random",
            "/dev/urandom",
        ]
        .iter()
        .map(|p| (PathBuf::from(p), device)),
    );
    rules.push(("/sys/devices/system/cpu".into(), read));
    rules.extend(readable.iter().map(|p| (p.clone(), read)));
    rules.push((scratch.to_path_buf(), AccessFs::from_all(abi)));

    restricting_ruleset(abi, rules)
}

/// A Landlock ruleset handling every file right, TCP bind and connect, and
/// signal and abstract-socket scoping, that grants `rules` and nothing else.
/// Shared by the case jail and the build jail.
#[cfg(target_os = "linux")]
fn restricting_ruleset(
    abi: landlock::ABI,
    rules: Vec<(PathBuf, landlock::BitFlags<landlock::AccessFs>)>,
) -> Option<OwnedFd> {
    use landlock::{
        Access, AccessFs, AccessNet, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr,
        Scope,
    };
    let mut ruleset = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .ok()?
        .handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)
        .ok()?
        .scope(Scope::Signal | Scope::AbstractUnixSocket)
        .ok()?
        .create()
        .ok()?;
    for (path, access) in rules {
        let Ok(fd) = PathFd::new(&path) else {
            continue; // not on this system
        };
        // Directories take every right; files only the file rights.
        let access = if path.is_dir() {
            access
        } else {
            access & AccessFs::from_file(abi)
        };
        ruleset = ruleset.add_rule(PathBeneath::new(fd, access)).ok()?;
    }
    let fd: Option<OwnedFd> = ruleset.into();
    fd
}

/// What `cargo xtask grade` prints and checks before grading: the
/// isolation a keeper gets on this machine, found by a keeper-like child
/// (`xtask sandbox-probe`) so that the grader itself stays outside.
pub fn probe() -> JailFeatures {
    if !cfg!(target_os = "linux") {
        return JailFeatures::default();
    }
    let Ok(me) = std::env::current_exe() else {
        return JailFeatures::default();
    };
    let child = std::process::Command::new(me)
        .arg("sandbox-probe")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn();
    let output = child.and_then(|child| {
        let pid = child.id();
        let output = child.wait_with_output();
        // Its scratch directory, hidden from it under its own /tmp, is
        // ours to remove.
        let _ = std::fs::remove_dir_all(scratch_dir(pid));
        output
    });
    match output {
        Ok(output) if output.status.success() => {
            toml::from_str(&String::from_utf8_lossy(&output.stdout)).unwrap_or_default()
        }
        _ => JailFeatures {
            supported: true,
            missing: vec!["the sandbox probe failed: no isolation is known to hold".into()],
            ..JailFeatures::default()
        },
    }
}

/// `xtask sandbox-probe`: enter a jail as a keeper would, and say what held.
pub fn probe_command() -> Result<(), String> {
    // As a keeper: a PID namespace first. One stranded without its /proc
    // is reported (the grader then tells its keepers not to try).
    let keeper = Keeper::begin(JailRequest::Whole);
    let jail = Jail::enter(&[], &keeper);
    let text = toml::to_string(&jail.isolation).map_err(|e| e.to_string())?;
    print!("{text}");
    Ok(())
}

// ---------------------------------------------------------------------------
// Building a submission.
//
// Compiling runs no code of the submission only if no package of it has a
// build script or is a procedural macro, and if cargo starts no program
// of its choosing (a `rustc-wrapper`, a `linker` or a `runner` in a cargo
// setting). Two layers decide:
//
// - before cargo reads anything ([`check_submission`]): no symbolic link
//   anywhere (walked without following), no cargo setting but
//   `build.target-dir`, no toolchain file, and the obvious spellings of a
//   build script or proc macro, for a clear message;
// - then cargo's own view ([`check_packages`], from a jailed `cargo
//   metadata`): no package of the checkout with a `custom-build` or
//   `proc-macro` target, however it was spelled, none outside the
//   checkout, and registry packages only among those the workbook itself
//   uses.
//
// Cargo then runs in a jail ([`BuildJail`]): an environment built from
// nothing (so `include_bytes!("/proc/self/environ")` learns nothing), no
// network, no System V IPC of the host, no capability, a time limit and a
// memory limit, and a Landlock domain: reads only the checkout, the
// toolchain, cargo's home (read only: nothing the build writes is ever
// read by the grader's own cargo) and the system's libraries; writes only
// to a target directory the grader owns outside the checkout (so a
// `target/` shipped with the submission, or a link, is never used) and to
// the checkout's `Cargo.lock`; signals and abstract sockets stay inside.
// Cargo runs from the jail's private directory (`--manifest-path`), so
// that it reads no cargo configuration of the checkout's parents. The
// compiled dependencies a build starts from (the `store`) are shared
// read-only: see [`BuildTarget::Overlay`].
// ---------------------------------------------------------------------------

/// How long a submission's build may take, by default.
pub const BUILD_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);
/// Memory of each process of the build (`RLIMIT_DATA`).
pub const BUILD_MEMORY_LIMIT: u64 = 4 << 30;

/// Refuses a submission that could run code of its own while it is built,
/// or make the grader read through a link, with a message naming what to
/// remove. Looks at every entry in the checkout, `target/` and `.git/`
/// included, without following any link.
pub fn check_submission(checkout: &Path) -> Result<(), String> {
    let refuse = |path: &Path, why: &str| {
        Err(format!(
            "refusing to build {}: {} {why}",
            checkout.display(),
            path.strip_prefix(checkout).unwrap_or(path).display()
        ))
    };
    match std::fs::symlink_metadata(checkout) {
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(format!(
                "refusing to build {}: it is a symbolic link; name the directory itself",
                checkout.display()
            ))
        }
        Err(e) => return Err(format!("{}: {e}", checkout.display())),
        Ok(_) => {}
    }
    let mut stack = vec![checkout.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut names = Vec::new();
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            // A link could make the build (or the grader, reading a
            // manifest) use a file outside the submission.
            if kind.is_symlink() {
                return refuse(
                    &path,
                    "is a symbolic link: a submission holds none; replace it with the file itself",
                );
            }
            names.push((entry.file_name().to_string_lossy().into_owned(), path, kind));
        }
        let has_manifest = names
            .iter()
            .any(|(n, _, k)| n == "Cargo.toml" && k.is_file());
        for (name, path, kind) in names {
            if kind.is_dir() {
                if name == ".cargo" {
                    check_cargo_settings(checkout, &path)?;
                }
                stack.push(path);
                continue;
            }
            let skipped = path
                .strip_prefix(checkout)
                .ok()
                .and_then(|p| p.components().next())
                .is_some_and(|first| first.as_os_str() == "target" || first.as_os_str() == ".git");
            if skipped {
                continue; // walked only for links: never built from
            }
            if name.starts_with("rust-toolchain") {
                return refuse(&path, "picks another toolchain: remove it");
            }
            if name == "build.rs" && has_manifest {
                return refuse(&path, "is a build script: it would run on the grader's machine while building; remove it");
            }
            if name == "Cargo.toml" {
                check_manifest(checkout, &path)?;
            }
        }
    }
    Ok(())
}

/// Only `[build] target-dir` may be set: any other cargo setting
/// (`rustc-wrapper`, `linker`, `runner`, `rustflags`, aliases...) can make
/// cargo run a program of the submission, or change how it is built.
fn check_cargo_settings(checkout: &Path, dir: &Path) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let shown = path.strip_prefix(checkout).unwrap_or(&path).display();
        let settings: Option<toml::Table> = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| toml::from_str(&text).ok());
        let harmless = settings.is_some_and(|table| {
            table.iter().all(|(key, value)| {
                key == "build"
                    && value
                        .as_table()
                        .is_some_and(|build| build.keys().all(|k| k == "target-dir"))
            })
        });
        if !harmless {
            return Err(format!(
                "refusing to build {}: {shown} holds cargo settings other than build.target-dir, which can make cargo run programs of the submission while building; remove them",
                checkout.display()
            ));
        }
    }
    Ok(())
}

/// The spellings cargo reads, for a clear message before cargo runs; the
/// decision rests on [`check_packages`].
fn check_manifest(checkout: &Path, path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let manifest: toml::Table = toml::from_str(&text)
        .map_err(|e| format!("{}: not a valid Cargo.toml: {e}", path.display()))?;
    let refuse = |why: String| Err(format!("refusing to build {}: {why}", path.display()));
    for section in ["package", "project"] {
        let build = manifest
            .get(section)
            .and_then(|p| p.get("build"))
            .filter(|b| b.as_bool() != Some(false));
        if build.is_some() {
            return refuse(format!("its [{section}] names a build script"));
        }
    }
    let lib = manifest.get("lib");
    let proc_macro = ["proc-macro", "proc_macro"]
        .iter()
        .any(|key| lib.and_then(|l| l.get(*key)).and_then(|v| v.as_bool()) == Some(true))
        || lib
            .and_then(|l| l.get("crate-type").or_else(|| l.get("crate_type")))
            .is_some_and(|t| t.to_string().contains("proc-macro"));
    if proc_macro {
        return refuse("it is a proc-macro crate, which runs inside the compiler".into());
    }
    for section in [
        "patch",
        "replace",
        "build-dependencies",
        "build_dependencies",
    ] {
        if manifest.contains_key(section) {
            return refuse(format!("it has a [{section}] section"));
        }
    }
    if manifest
        .get("profile")
        .is_some_and(|p| text.contains("linker") || p.to_string().contains("rustflags"))
    {
        return refuse("its [profile] sets a linker or rustflags".into());
    }
    // Every dependency comes from the registry or from inside the checkout.
    let dir = path.parent().unwrap_or(checkout);
    let mut tables: Vec<&toml::Value> = Vec::new();
    for key in ["dependencies", "dev-dependencies", "dev_dependencies"] {
        tables.extend(manifest.get(key));
        tables.extend(manifest.get("workspace").and_then(|w| w.get(key)));
    }
    if let Some(targets) = manifest.get("target").and_then(|t| t.as_table()) {
        for target in targets.values() {
            if target.get("build-dependencies").is_some()
                || target.get("build_dependencies").is_some()
            {
                return refuse("it has build-dependencies".into());
            }
            tables.extend(target.get("dependencies"));
        }
    }
    for table in tables.iter().filter_map(|t| t.as_table()) {
        for (name, spec) in table {
            if spec.get("git").is_some() {
                return refuse(format!("dependency {name} comes from git"));
            }
            if let Some(relative) = spec.get("path").and_then(|p| p.as_str()) {
                let target = normalise(&dir.join(relative));
                if !target.starts_with(normalise(checkout)) {
                    return refuse(format!(
                        "dependency {name} lies outside the submission ({relative})"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A package as `cargo metadata` describes it (what [`check_packages`]
/// needs of it).
#[derive(Debug, Deserialize)]
pub struct CargoPackage {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub source: Option<String>,
    pub manifest_path: PathBuf,
    #[serde(default)]
    pub targets: Vec<CargoTarget>,
}

impl CargoPackage {
    /// The names of its binary targets.
    pub fn binaries(&self) -> BTreeSet<String> {
        self.targets
            .iter()
            .filter(|t| t.kind.iter().any(|k| k == "bin"))
            .map(|t| t.name.clone())
            .collect()
    }
}

#[derive(Debug, Deserialize)]
pub struct CargoTarget {
    pub name: String,
    #[serde(default)]
    pub kind: Vec<String>,
    #[serde(default)]
    pub crate_types: Vec<String>,
    #[serde(default)]
    pub src_path: PathBuf,
}

/// Cargo's own view decides: refuses any package of the submission with a
/// build script or a proc-macro target (however the manifest spelled it),
/// any path package outside the checkout, and any package from elsewhere
/// than crates.io at a version the workbook itself uses (`allowed`: name,
/// version).
pub fn check_packages(
    checkout: &Path,
    packages: &[&CargoPackage],
    allowed: &BTreeSet<(String, String)>,
) -> Result<(), String> {
    let refuse = |why: String| Err(format!("refusing to build {}: {why}", checkout.display()));
    for package in packages {
        let name = &package.name;
        match package.source.as_deref() {
            None => {
                if !package.manifest_path.starts_with(checkout) {
                    return refuse(format!(
                        "package {name} lies outside the submission ({})",
                        package.manifest_path.display()
                    ));
                }
                for target in &package.targets {
                    let shown = target
                        .src_path
                        .strip_prefix(checkout)
                        .unwrap_or(&target.src_path)
                        .display();
                    if target.kind.iter().any(|k| k == "custom-build") {
                        return refuse(format!(
                            "package {name} has a build script ({shown}): it would run on the grader's machine while building; remove it"
                        ));
                    }
                    if target
                        .kind
                        .iter()
                        .chain(&target.crate_types)
                        .any(|k| k == "proc-macro")
                    {
                        return refuse(format!(
                            "package {name} is a proc-macro crate ({shown}), which runs inside the compiler; remove it"
                        ));
                    }
                }
            }
            Some(source) => {
                let crates_io = source == "registry+https://github.com/rust-lang/crates.io-index"
                    || source == "sparse+https://index.crates.io/";
                if !crates_io || !allowed.contains(&(name.clone(), package.version.clone())) {
                    return refuse(format!(
                        "dependency {name} {} ({source}) is not one the workbook uses; only those are built",
                        package.version
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The registry packages (name, version) of a `Cargo.lock`: the workbook's
/// own, which a submission may use.
pub fn locked_registry_packages(lock: &Path) -> BTreeSet<(String, String)> {
    let text = std::fs::read_to_string(lock).unwrap_or_default();
    let table: toml::Table = toml::from_str(&text).unwrap_or_default();
    let mut found = BTreeSet::new();
    for package in table
        .get("package")
        .and_then(|p| p.as_array())
        .into_iter()
        .flatten()
    {
        let field = |key: &str| package.get(key).and_then(|v| v.as_str());
        if let (Some(name), Some(version), Some(_)) =
            (field("name"), field("version"), field("source"))
        {
            found.insert((name.to_string(), version.to_string()));
        }
    }
    found
}

/// `a/b/../c` as `a/c`, without touching the file system.
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// A directory of its own for each jail: one grader may hold two at once
/// (a submission's, and the dependency store's while it is built, see
/// `class`), and the first one dropped removes its directory.
fn private_dir() -> PathBuf {
    static JAILS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = JAILS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("xtask-build-{}-{n}", std::process::id()))
}

/// Where a jailed build writes its target directory.
pub enum BuildTarget<'a> {
    /// A private directory of the jail's own, empty at first.
    Private,
    /// A directory the grader laid out and owns (a copy of the dependency
    /// store, see `store`).
    Given(&'a Path),
    /// `target`, seen by the build as the dependency store `lower` with
    /// the build's own writes on top (an overlay mounted in the build's
    /// own mount namespace, over a read-only bind mount of `lower`): the
    /// store is shared by every build and none can change it. Outside the
    /// build, `target` holds only what the build wrote. `work` is the
    /// overlay's work directory, on the same file system as `target`, and
    /// `target`'s parent holds nothing else (the build may write there:
    /// the mount hides `target`'s own Landlock rule).
    Overlay {
        target: &'a Path,
        lower: &'a Path,
        work: &'a Path,
    },
}

/// The mounts that make a [`BuildTarget::Overlay`], prepared before the
/// fork (the child makes only system calls).
#[cfg(target_os = "linux")]
struct OverlayMount {
    lower: CString,
    target: CString,
    /// `lowerdir=…,upperdir=…,workdir=…`.
    options: CString,
    /// The flags of the mount `lower` is on, which a read-only remount
    /// must keep (in a user namespace, they are locked).
    kept_flags: nix::libc::c_ulong,
}

#[cfg(target_os = "linux")]
impl OverlayMount {
    fn new(target: &Path, lower: &Path, work: &Path) -> Result<Self, String> {
        use nix::sys::statvfs::{statvfs, FsFlags};
        use std::os::unix::ffi::OsStrExt;
        let path = |p: &Path| {
            let bytes = p.as_os_str().as_bytes();
            // The overlay's options are split at commas and colons.
            if bytes.iter().any(|b| b",:\\".contains(b)) {
                return Err(format!(
                    "{}: a comma, colon or backslash in the path",
                    p.display()
                ));
            }
            CString::new(bytes).map_err(|e| e.to_string())
        };
        let (lower, target, work) = (path(lower)?, path(target)?, path(work)?);
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.to_string_lossy(),
            target.to_string_lossy(),
            work.to_string_lossy()
        );
        let flags = statvfs(Path::new(&*lower.to_string_lossy()))
            .map_err(|e| format!("{}: {e}", lower.to_string_lossy()))?
            .flags();
        let mut kept_flags = 0;
        for (statvfs_flag, mount_flag) in [
            (FsFlags::ST_NOSUID, nix::libc::MS_NOSUID),
            (FsFlags::ST_NODEV, nix::libc::MS_NODEV),
            (FsFlags::ST_NOEXEC, nix::libc::MS_NOEXEC),
            (FsFlags::ST_NOATIME, nix::libc::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, nix::libc::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, nix::libc::MS_RELATIME),
        ] {
            if flags.contains(statvfs_flag) {
                kept_flags |= mount_flag;
            }
        }
        Ok(Self {
            lower,
            target,
            options: CString::new(options).map_err(|e| e.to_string())?,
            kept_flags,
        })
    }

    /// In the child, in a mount namespace of its own: `lower` read-only,
    /// the overlay on `target`.
    ///
    /// # Safety
    /// Only system calls on memory prepared before the fork.
    unsafe fn mount(&self) -> std::io::Result<()> {
        use nix::libc;
        let fail = || Err(std::io::Error::last_os_error());
        let none = std::ptr::null::<libc::c_char>();
        // Nothing mounted here is seen outside, and nothing mounted
        // outside later reaches in.
        if libc::mount(
            none,
            c"/".as_ptr(),
            none,
            libc::MS_REC | libc::MS_PRIVATE,
            none.cast(),
        ) != 0
        {
            return fail();
        }
        // The store read-only, for every process of the build, whatever
        // its uid and mode bits: a write, chmod or utime gets EROFS.
        if libc::mount(
            self.lower.as_ptr(),
            self.lower.as_ptr(),
            none,
            libc::MS_BIND,
            none.cast(),
        ) != 0
            || libc::mount(
                none,
                self.lower.as_ptr(),
                none,
                libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | self.kept_flags,
                none.cast(),
            ) != 0
        {
            return fail();
        }
        if libc::mount(
            c"overlay".as_ptr(),
            self.target.as_ptr(),
            c"overlay".as_ptr(),
            0,
            self.options.as_ptr().cast(),
        ) != 0
        {
            return fail();
        }
        Ok(())
    }
}

/// The jail `cargo` runs in for a submission: see the section's comment.
/// Owns the private directory the build writes into; removed when dropped.
pub struct BuildJail {
    ruleset: Option<OwnedFd>,
    /// The dependency store under the target directory, if it is shared.
    #[cfg(target_os = "linux")]
    overlay: Option<Arc<OverlayMount>>,
    /// As an ordinary user, the maps of the user namespace that brings the
    /// network and IPC namespaces with it.
    user_maps: Option<Arc<OwnIdMaps>>,
    /// As root: drop every capability before exec.
    drop_capabilities: bool,
    /// Whether the network and IPC namespaces can be made here (not in a
    /// container with the default capabilities).
    namespaces: bool,
    pub isolation: String,
    /// What a missing feature leaves open (empty: the full build jail).
    pub missing: Vec<String>,
    /// The whole environment cargo gets.
    env: Vec<(String, PathBuf)>,
    /// The grader's private directory: `target/` and `tmp/` of the build.
    private: PathBuf,
    pub target: PathBuf,
    pub time_limit: std::time::Duration,
}

impl BuildJail {
    /// A jail building `checkout` into `target` (see [`BuildTarget`]).
    #[cfg(target_os = "linux")]
    pub fn new(
        checkout: &Path,
        time_limit: std::time::Duration,
        target: BuildTarget,
    ) -> Result<Self, String> {
        use nix::unistd::geteuid;
        use std::os::unix::fs::DirBuilderExt;
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let from_env = |key: &str, fallback: &str| {
            std::env::var_os(key)
                .map(PathBuf::from)
                .or_else(|| home.as_ref().map(|h| h.join(fallback)))
        };
        let cargo_home = from_env("CARGO_HOME", ".cargo");
        let rustup_home = from_env("RUSTUP_HOME", ".rustup");
        // The toolchain cargo came from (…/toolchains/NAME/bin/cargo): its
        // programs are called directly, never through rustup's proxies.
        let toolchain = std::env::var_os("CARGO")
            .map(PathBuf::from)
            .and_then(|c| c.parent()?.parent().map(Path::to_path_buf))
            .or_else(sysroot);
        let private = private_dir();
        let _ = std::fs::remove_dir_all(&private);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&private)
            .map_err(|e| format!("cannot create {}: {e}", private.display()))?;
        // The directory whose Landlock rule lets the build write `target`.
        let (target, writes_in, overlay) = match target {
            // Never a link: what the build writes must land where we say.
            BuildTarget::Given(dir) | BuildTarget::Overlay { target: dir, .. }
                if dir.is_symlink() =>
            {
                return Err(format!("{} is a symbolic link", dir.display()))
            }
            BuildTarget::Given(dir) => (dir.to_path_buf(), dir.to_path_buf(), None),
            BuildTarget::Overlay {
                target,
                lower,
                work,
            } => (
                target.to_path_buf(),
                target
                    .parent()
                    .ok_or("the target directory has no parent")?
                    .to_path_buf(),
                Some(Arc::new(OverlayMount::new(target, lower, work)?)),
            ),
            BuildTarget::Private => (private.join("target"), private.join("target"), None),
        };
        let tmp = private.join("tmp");
        let _ = std::fs::create_dir(&target);
        let _ = std::fs::create_dir(&tmp);

        let mut readable = vec![checkout.to_path_buf(), PathBuf::from("/sys")];
        readable.extend(rustup_home.clone());
        readable.extend(toolchain.clone());
        readable.extend(cargo_home.clone());
        let mut writable = vec![private.clone(), writes_in];
        // Cargo records the versions it resolved in the checkout's
        // Cargo.lock: that one file may be written (made now if missing;
        // no link can be in the way, see `check_submission`).
        let lock = checkout.join("Cargo.lock");
        if !lock.exists() {
            let _ = std::fs::write(&lock, "");
        }
        writable.push(lock);
        let ruleset = if landlock_abi() > 0 {
            build_ruleset(&readable, &writable)
        } else {
            None
        };
        let root = geteuid().is_root();
        let user_maps = (!root).then(|| Arc::new(OwnIdMaps::ours()));

        let mut path = String::new();
        if let Some(bin) = toolchain.as_ref().map(|t| t.join("bin")) {
            path.push_str(&format!("{}:", bin.display()));
        }
        path.push_str("/usr/local/bin:/usr/bin:/bin");
        let mut env: Vec<(String, PathBuf)> = vec![
            ("PATH".into(), path.into()),
            ("HOME".into(), private.clone()),
            ("TMPDIR".into(), tmp),
            ("LANG".into(), "C.UTF-8".into()),
            ("CARGO_TERM_COLOR".into(), "never".into()),
        ];
        env.extend(cargo_home.map(|h| ("CARGO_HOME".to_string(), h)));
        env.extend(rustup_home.map(|h| ("RUSTUP_HOME".to_string(), h)));
        if let Some(toolchain) = &toolchain {
            if let Some(name) = toolchain.file_name() {
                env.push(("RUSTUP_TOOLCHAIN".into(), name.into()));
            }
            let rustc = toolchain.join("bin/rustc");
            if rustc.is_file() {
                env.push(("RUSTC".into(), rustc));
            }
        }
        let namespaces = build_namespaces_available(user_maps.as_deref());
        let parts = format!(
            "{}{}empty environment, {} s limit{}",
            match (namespaces, root) {
                (false, _) => "",
                (true, true) => "net+ipc namespaces, ",
                (true, false) => "user+net+ipc namespaces, ",
            },
            if root { "no capabilities, " } else { "" },
            time_limit.as_secs(),
            if overlay.is_some() {
                ", the dependency store read-only under an overlay"
            } else {
                ""
            }
        );
        let mut missing = Vec::new();
        if !namespaces {
            missing.push(
                "no network namespace (none can be made here): only TCP is refused (landlock)"
                    .to_string(),
            );
        }
        let mut isolation = format!("build sandbox: {parts}");
        match &ruleset {
            Some(_) => isolation.push_str(", landlock (reads: checkout, toolchain, cargo home; writes: a target directory of the grader's)"),
            None => missing.push("no landlock, so the compiler can read whatever you can".into()),
        }
        if !missing.is_empty() {
            isolation.push_str(&format!("; missing: {}", missing.join("; ")));
        }
        Ok(Self {
            ruleset,
            overlay,
            user_maps,
            drop_capabilities: root,
            namespaces,
            isolation,
            missing,
            env,
            private,
            target,
            time_limit,
        })
    }

    /// The cargo to run: the toolchain's own, found before the
    /// environment is cleared.
    pub fn cargo(&self) -> std::process::Command {
        let toolchain_cargo = self
            .env
            .iter()
            .find(|(k, _)| k == "RUSTC")
            .map(|(_, rustc)| rustc.with_file_name("cargo"))
            .filter(|cargo| cargo.is_file());
        let cargo = toolchain_cargo
            .map(Into::into)
            .or_else(|| std::env::var_os("CARGO"))
            .unwrap_or_else(|| "cargo".into());
        std::process::Command::new(cargo)
    }

    #[cfg(not(target_os = "linux"))]
    pub fn new(
        _checkout: &Path,
        time_limit: std::time::Duration,
        target: BuildTarget,
    ) -> Result<Self, String> {
        let private = private_dir();
        let _ = std::fs::create_dir_all(&private);
        let target = match target {
            BuildTarget::Given(dir) => dir.to_path_buf(),
            BuildTarget::Overlay { .. } => return Err("only Linux has overlays".into()),
            BuildTarget::Private => private.join("target"),
        };
        Ok(Self {
            ruleset: None,
            user_maps: None,
            drop_capabilities: false,
            namespaces: false,
            isolation: "build sandbox: none (only Linux has one)".into(),
            missing: vec!["no build sandbox outside Linux".into()],
            env: Vec::new(),
            target,
            private,
            time_limit,
        })
    }

    /// Where cargo runs: the jail's private directory, so that no cargo
    /// configuration of the checkout's parents (the workbook's own, when
    /// the checkout is in its build area) is read: cargo looks for them
    /// from its working directory, never from `--manifest-path`.
    pub fn working_dir(&self) -> &Path {
        &self.private
    }

    /// Makes `command` (cargo) enter the jail between fork and exec.
    #[cfg(target_os = "linux")]
    pub fn apply(&self, command: &mut std::process::Command) {
        use nix::libc;
        use std::os::unix::process::CommandExt;
        command
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        command.arg("--offline");
        // A group of its own, so that the time limit kills the compilers too.
        command.process_group(0);
        let ruleset = self.ruleset.as_ref().map(|fd| fd.as_raw_fd());
        let maps = self.user_maps.clone();
        let drop_capabilities = self.drop_capabilities;
        let namespaces = self.namespaces;
        let overlay = self.overlay.clone();
        // SAFETY: the closure runs in the forked child before exec and
        // makes only system calls (close_range or fcntl, unshare, open,
        // write, close, mount, setrlimit, prctl, landlock_restrict_self) on
        // memory prepared before the fork.
        unsafe {
            command.pre_exec(move || {
                // Cargo (and the compiler) get no descriptor the grader
                // inherited: only the pipes Command set up as 0, 1 and 2.
                close_on_exec_from(3);
                if namespaces {
                    enter_build_namespaces(maps.as_deref())?;
                }
                // In a mount namespace of the build's own (inside the
                // user namespace, as an ordinary user), mounted while we
                // may: before the capabilities go, and before Landlock,
                // which forbids mounting.
                if let Some(overlay) = &overlay {
                    if libc::unshare(libc::CLONE_NEWNS) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    overlay.mount()?;
                }
                let memory = libc::rlimit {
                    rlim_cur: BUILD_MEMORY_LIMIT,
                    rlim_max: BUILD_MEMORY_LIMIT,
                };
                libc::setrlimit(libc::RLIMIT_DATA, &memory);
                let no_core = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                libc::setrlimit(libc::RLIMIT_CORE, &no_core);
                if drop_capabilities {
                    // Root keeps its uid (the toolchain may lie under a
                    // home only root can enter) but no capability: the
                    // bounding set emptied, exec grants none back.
                    for cap in 0..64 {
                        libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0);
                    }
                    libc::prctl(
                        libc::PR_CAP_AMBIENT,
                        libc::PR_CAP_AMBIENT_CLEAR_ALL,
                        0,
                        0,
                        0,
                    );
                }
                if let Some(ruleset) = ruleset {
                    if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                        || libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub fn apply(&self, command: &mut std::process::Command) {
        command.arg("--offline");
    }
}

/// Unshares the build's network and IPC namespaces: as root directly, as
/// an ordinary user with a user namespace mapping only its own ids.
///
/// # Safety
/// Only in a freshly forked child: system calls on memory prepared before
/// the fork, nothing else.
#[cfg(target_os = "linux")]
unsafe fn enter_build_namespaces(maps: Option<&OwnIdMaps>) -> std::io::Result<()> {
    use nix::libc;
    let fail = || Err(std::io::Error::last_os_error());
    let namespaces = libc::CLONE_NEWNET | libc::CLONE_NEWIPC;
    let Some(maps) = maps else {
        return if libc::unshare(namespaces) != 0 {
            fail()
        } else {
            Ok(())
        };
    };
    if libc::unshare(libc::CLONE_NEWUSER | namespaces) != 0 || !maps.write() {
        return fail();
    }
    Ok(())
}

/// Whether [`enter_build_namespaces`] works here, tried once in a child
/// (`/bin/true`): a container with the default capabilities refuses it,
/// and the build then runs with what remains, saying what is missing.
#[cfg(target_os = "linux")]
fn build_namespaces_available(maps: Option<&OwnIdMaps>) -> bool {
    use std::os::unix::process::CommandExt;
    let maps = maps.cloned();
    let mut probe = std::process::Command::new("/bin/true");
    probe
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: the closure only calls `enter_build_namespaces`, whose
    // contract it meets: a fresh child about to exec.
    unsafe {
        probe.pre_exec(move || enter_build_namespaces(maps.as_ref()));
    }
    probe.status().is_ok_and(|status| status.success())
}

impl Drop for BuildJail {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.private);
    }
}

/// The active toolchain's directory, as rustc says (when cargo did not
/// tell us through `CARGO`).
fn sysroot() -> Option<PathBuf> {
    let output = std::process::Command::new("rustc")
        .args(["--print", "sysroot"])
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout).trim().to_string();
    (output.status.success() && !text.is_empty()).then(|| PathBuf::from(text))
}

#[cfg(target_os = "linux")]
fn build_ruleset(readable: &[PathBuf], writable: &[PathBuf]) -> Option<OwnedFd> {
    use landlock::{Access, AccessFs, ABI};
    let abi = ABI::V6;
    let read = AccessFs::from_read(abi);
    // Of /etc, only what the dynamic loader and the `cc` link need: never
    // the password files.
    let mut rules: Vec<(PathBuf, landlock::BitFlags<AccessFs>)> = [
        "/usr",
        "/bin",
        "/sbin",
        "/lib",
        "/lib32",
        "/lib64",
        "/libx32",
        "/proc",
        "/etc/ld.so.cache",
        "/etc/ld.so.preload",
        "/etc/ld.so.conf",
        "/etc/ld.so.conf.d",
        "/etc/alternatives",
    ]
    .iter()
    .map(|p| (PathBuf::from(p), read))
    .collect();
    rules.push(("/dev/null".into(), AccessFs::ReadFile | AccessFs::WriteFile));
    rules.push(("/dev/urandom".into(), AccessFs::ReadFile.into()));
    rules.extend(readable.iter().map(|p| (p.clone(), read)));
    rules.extend(
        writable
            .iter()
            .map(|p| (p.clone(), AccessFs::from_all(abi))),
    );
    restricting_ruleset(abi, rules)
}
