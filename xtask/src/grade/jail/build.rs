//! The build jail: cargo run on a submission with nothing of the host it
//! does not need, from a target the grader owns.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::admission::BUILD_MEMORY_LIMIT;
use super::case::restricting_ruleset;
use super::namespaces::OwnIdMaps;
use super::{close_on_exec_from, landlock_abi};

/// A directory of its own for each jail: one grader may hold two at once
/// (a submission's, and the dependency store's while it is built, see
/// `class`), and the first one dropped removes its directory.
pub(super) fn private_dir() -> PathBuf {
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
pub(super) struct OverlayMount {
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

        let env = build_environment(toolchain.as_deref(), &private, tmp, cargo_home, rustup_home);
        let namespaces = build_namespaces_available(user_maps.as_deref());
        let (isolation, missing) = describe_build_jail(
            namespaces,
            root,
            time_limit,
            overlay.is_some(),
            ruleset.is_some(),
        );
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

/// The build's environment, made from nothing: the toolchain's `bin`
/// first on PATH, the jail's private home and temporary directory, and
/// cargo's and rustup's homes.
fn build_environment(
    toolchain: Option<&Path>,
    private: &Path,
    tmp: PathBuf,
    cargo_home: Option<PathBuf>,
    rustup_home: Option<PathBuf>,
) -> Vec<(String, PathBuf)> {
    let mut path = String::new();
    if let Some(bin) = toolchain.as_ref().map(|t| t.join("bin")) {
        path.push_str(&format!("{}:", bin.display()));
    }
    path.push_str("/usr/local/bin:/usr/bin:/bin");
    let mut env: Vec<(String, PathBuf)> = vec![
        ("PATH".into(), path.into()),
        ("HOME".into(), private.to_path_buf()),
        ("TMPDIR".into(), tmp),
        ("LANG".into(), "C.UTF-8".into()),
        ("CARGO_TERM_COLOR".into(), "never".into()),
    ];
    env.extend(cargo_home.map(|h| ("CARGO_HOME".to_string(), h)));
    env.extend(rustup_home.map(|h| ("RUSTUP_HOME".to_string(), h)));
    if let Some(toolchain) = toolchain {
        if let Some(name) = toolchain.file_name() {
            env.push(("RUSTUP_TOOLCHAIN".into(), name.into()));
        }
        let rustc = toolchain.join("bin/rustc");
        if rustc.is_file() {
            env.push(("RUSTC".into(), rustc));
        }
    }
    env
}

/// The build jail's line for the report, and what it lacks.
fn describe_build_jail(
    namespaces: bool,
    root: bool,
    time_limit: std::time::Duration,
    overlay: bool,
    ruleset: bool,
) -> (String, Vec<String>) {
    let parts = format!(
        "{}{}empty environment, {} s limit{}",
        match (namespaces, root) {
            (false, _) => "",
            (true, true) => "net+ipc namespaces, ",
            (true, false) => "user+net+ipc namespaces, ",
        },
        if root { "no capabilities, " } else { "" },
        time_limit.as_secs(),
        if overlay {
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
    match ruleset {
        true => isolation.push_str(", landlock (reads: checkout, toolchain, cargo home; writes: a target directory of the grader's)"),
        false => missing.push("no landlock, so the compiler can read whatever you can".into()),
    }
    if !missing.is_empty() {
        isolation.push_str(&format!("; missing: {}", missing.join("; ")));
    }
    (isolation, missing)
}

/// Whether [`enter_build_namespaces`] works here, tried once in a child
/// (`/bin/true`): a container with the default capabilities refuses it,
/// and the build then runs with what remains, saying what is missing.
#[cfg(target_os = "linux")]
pub(super) fn build_namespaces_available(maps: Option<&OwnIdMaps>) -> bool {
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
pub(super) fn sysroot() -> Option<PathBuf> {
    let output = std::process::Command::new("rustc")
        .args(["--print", "sysroot"])
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout).trim().to_string();
    (output.status.success() && !text.is_empty()).then(|| PathBuf::from(text))
}

#[cfg(target_os = "linux")]
pub(super) fn build_ruleset(readable: &[PathBuf], writable: &[PathBuf]) -> Option<OwnedFd> {
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
    // A build never needs the network: TCP is refused even in its own
    // network namespace.
    restricting_ruleset(abi, rules, true)
}
