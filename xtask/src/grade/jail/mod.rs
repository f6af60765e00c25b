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
//! - a **network namespace**: only a loopback device, brought up, so that a
//!   program may serve and connect on 127.0.0.1 (its own, no one else's).
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
//!   writable. (Its launch gave it `RLIMIT_CORE` = 1 byte, see
//!   `observe`: no core is ever written, nor piped to the host's crash
//!   helper.) `RLIMIT_NPROC` counts per (user namespace, uid), so it needs
//!   a uid or a user namespace of the case's own:
//! - as root: switches to a **uid of the case's own** (no supplementary
//!   groups); as an ordinary user: unshares a **user namespace** of its own.
//! - restricts itself with **Landlock**: read and execute only system
//!   directories (`/usr`, `/lib*`, `/bin`, `/etc`), the directory of
//!   copied binaries, `/proc` (read only) and a few devices; read and write
//!   only in scratch. TCP bind and connect are refused (Landlock ABI 4)
//!   when the case has no network namespace of its own,
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
//! | nothing survives the case | the keeper is PID 1: when it exits the kernel kills the namespace; it dies with the process the grader started; the keeper's own sweep (and cgroups, as root) before that; the directories of a grading killed outright (SIGKILL) are removed by the next grading ([`leftovers::sweep`]) |
//! | process limit at any depth | pids cgroup (root); else `RLIMIT_NPROC` under the case uid or a user namespace of the program's own |
//! | memory limit | memory cgroup (root); `RLIMIT_DATA`; and without the cgroup `RLIMIT_AS` (shared mappings too) |
//! | a limit hit is named | the cgroups' own counts ([`Jail::limits_hit`]: `pids.events`, `memory.failcnt`, `memory.oom_control`); the kernel's refusals and SIGXCPU, which the tracer logs as `limit` events (see `observe`) |
//! | no network | network namespace (its loopback device only); without one, Landlock's TCP rules |
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

mod admission;
mod build;
mod case;
pub mod leftovers;
mod namespaces;

pub use admission::*;
pub use build::*;
pub use case::*;
pub use namespaces::*;

use std::ffi::CString;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::grade::facts::SCRATCH_LIMIT;

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
