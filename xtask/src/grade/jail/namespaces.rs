//! The keeper's first step: PID 1 of a PID namespace of its own (with a
//! user and a mount namespace as an ordinary user), and the maps of its
//! own ids.

use std::ffi::CString;

use super::scratch_dir;
use crate::grade::facts::JailRequest;

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
    pub(super) user_ns: bool,
    pub(super) mount_ns: bool,
    /// That `/proc` shows a process only what it may ptrace.
    pub(super) hidepid: bool,
    /// Why there is no PID namespace, when there is none.
    pub(super) why_not: Option<String>,
    /// Why the keeper must not run programs: inside a PID namespace whose
    /// `/proc` is the host's, every PID it reads would name another
    /// process than the one it means.
    pub(super) stranded: Option<String>,
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
pub(super) fn thread_count() -> Option<usize> {
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
pub(super) struct OwnIdMaps([(CString, CString); 3]);

impl OwnIdMaps {
    /// The maps for this process's effective uid and gid.
    pub(super) fn ours() -> Self {
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
    pub(super) unsafe fn write(&self) -> bool {
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
pub(super) fn map_own_ids() -> Result<(), String> {
    OwnIdMaps::ours()
        .0
        .iter()
        .try_for_each(|(path, text)| {
            std::fs::write(path.to_str().unwrap_or_default(), text.as_bytes())
        })
        .map_err(|e| format!("cannot map the user namespace ({e})"))
}

/// A fresh /proc over `/proc`, in the keeper's mount namespace, showing
/// the processes of the keeper's PID namespace: with the first of
/// `options` the kernel takes ("" for none), which it returns.
#[cfg(target_os = "linux")]
pub(super) fn mount_proc_fs(options: &[&'static str]) -> Result<&'static str, nix::errno::Errno> {
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
