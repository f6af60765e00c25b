//! The case jail: what a keeper sets up before its programs run
//! (namespaces, scratch, cgroups, Landlock), and the probe of what this
//! machine allows.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::namespaces::{map_own_ids, mount_proc_fs, Keeper, OwnIdMaps};
use super::{
    landlock_abi, scratch_dir, Confinement, ADDRESS_SPACE_LIMIT, CASE_UID_BASE, MAX_PROCESSES,
    MEMORY_LIMIT,
};
use crate::grade::facts::{JailFeatures, JailRequest, SCRATCH_LIMIT};

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

impl Jail {
    /// Sets up the keeper's jail: namespaces, scratch, cgroups, and the
    /// confinement its programs will enter. Must run while the keeper is
    /// single-threaded (a user namespace requires it). `readable` are the
    /// extra directories programs may read and execute (the binaries).
    #[cfg(target_os = "linux")]
    pub fn enter(readable: &[PathBuf], keeper: &Keeper) -> Self {
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
        unshare_namespaces(root, keeper, &mut isolation);
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

        let cgroups = if root {
            case_cgroups(pid, &mut isolation)
        } else {
            Vec::new()
        };

        isolation.landlock = landlock_abi();
        let ruleset = if isolation.landlock > 0 {
            // In a network namespace of its own, a case reaches only its
            // own loopback device: TCP there is the case's, and allowed
            // (a socket server's step needs it). Without one, Landlock
            // refuses TCP: 127.0.0.1 would be the grading machine's.
            landlock_ruleset(&scratch, readable, isolation.net_ns)
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

/// The case's namespaces: as root (or in the user namespace made with the
/// PID namespace) one at a time, else a user namespace with the others.
#[cfg(target_os = "linux")]
fn unshare_namespaces(root: bool, keeper: &Keeper, isolation: &mut JailFeatures) {
    use nix::sched::{unshare, CloneFlags};
    if root || keeper.user_ns {
        // As root, or in the user namespace made with the PID
        // namespace: one namespace at a time.
        isolation.user_ns = keeper.user_ns;
        isolation.mount_ns = keeper.mount_ns || unshare(CloneFlags::CLONE_NEWNS).is_ok();
        if unshare(CloneFlags::CLONE_NEWNET).is_ok() {
            isolation.net_ns = true;
            loopback_up();
        }
        if unshare(CloneFlags::CLONE_NEWIPC).is_ok() {
            isolation.ipc_ns = true;
        }
    } else {
        let all = CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWNET;
        if unshare(all).is_ok() {
            let mapped = map_own_ids().is_ok();
            isolation.user_ns = mapped;
            isolation.mount_ns = mapped;
            isolation.net_ns = mapped;
            if mapped {
                loopback_up();
            }
            // Owned by our user namespace: allowed once we are in it.
            isolation.ipc_ns = mapped && unshare(CloneFlags::CLONE_NEWIPC).is_ok();
        }
    }
}

/// Brings up the new network namespace's one device, `lo`: a case may
/// serve and connect on 127.0.0.1, and nothing reaches beyond it.
#[cfg(target_os = "linux")]
fn loopback_up() {
    use nix::libc;
    // SAFETY: a socket only to carry the ioctls; `ifreq` is zeroed, then
    // named; the kernel reads and writes inside it.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return;
        }
        let mut request: libc::ifreq = std::mem::zeroed();
        for (to, from) in request.ifr_name.iter_mut().zip(b"lo") {
            *to = *from as libc::c_char;
        }
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut request) == 0 {
            request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(fd, libc::SIOCSIFFLAGS, &request);
        }
        libc::close(fd);
    }
}

/// The pids and memory cgroups of the case (as root, with cgroups v1):
/// the directories made.
#[cfg(target_os = "linux")]
fn case_cgroups(pid: u32, isolation: &mut JailFeatures) -> Vec<PathBuf> {
    let mut cgroups = Vec::new();
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
    cgroups
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
pub(super) fn mount_scratch(scratch: &Path, owner: Option<u32>) -> bool {
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
pub(super) const HIDDEN_DIRS: [&str; 9] = [
    "/tmp", "/var/tmp", "/run", "/var/run", "/dev/shm", "/home", "/root", "/mnt", "/media",
];

/// Mounts an empty tmpfs over each of [`HIDDEN_DIRS`] (in the keeper's
/// private mount namespace: the host sees no change), then binds `keep`
/// (scratch, the binaries) back at their own paths. Landlock does not
/// cover `connect()` to a unix socket by path: a socket that is not there
/// cannot be reached. True if every present directory was covered.
#[cfg(target_os = "linux")]
pub(super) fn hide_host_dirs(keep: &[PathBuf]) -> bool {
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
pub(super) fn freeze_host_mounts(scratch: &Path) -> bool {
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
pub(super) fn freeze_host_mounts(_scratch: &Path) -> bool {
    false
}

#[cfg(not(target_os = "linux"))]
pub(super) fn hide_host_dirs(_keep: &[PathBuf]) -> bool {
    false
}

/// A cgroup v1 of the case's own under the keeper's, with `settings`.
pub(super) fn make_cgroup(
    controller: &str,
    pid: u32,
    settings: &[(&str, String)],
) -> Option<PathBuf> {
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
pub(super) fn landlock_ruleset(
    scratch: &Path,
    readable: &[PathBuf],
    own_network: bool,
) -> Option<OwnedFd> {
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

    restricting_ruleset(abi, rules, !own_network)
}

/// A Landlock ruleset handling every file right, TCP bind and connect
/// (when `refuse_tcp`), and signal and abstract-socket scoping, that
/// grants `rules` and nothing else. Shared by the case jail and the build
/// jail.
#[cfg(target_os = "linux")]
pub(super) fn restricting_ruleset(
    abi: landlock::ABI,
    rules: Vec<(PathBuf, landlock::BitFlags<landlock::AccessFs>)>,
    refuse_tcp: bool,
) -> Option<OwnedFd> {
    use landlock::{
        Access, AccessFs, AccessNet, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr,
        Scope,
    };
    let mut ruleset = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .ok()?;
    if refuse_tcp {
        ruleset = ruleset
            .handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)
            .ok()?;
    }
    let mut ruleset = ruleset
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
