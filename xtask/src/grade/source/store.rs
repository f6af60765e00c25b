//! Where the grader builds submissions: its area in the workbook's own
//! `target/` directory (`target/xtask-grade/`), ignored by git and removed
//! by `cargo clean` like any build output.
//!
//! - `store/`: the skeletons built once, in the build jail, with their own
//!   artefacts removed: what is left in `store/target` is the dependencies
//!   (nix, signal-hook, os_pipe...) compiled. Cargo's fingerprints of
//!   registry crates do not depend on the workspace's path, so every
//!   build seeded from it compiles only the five steps. It is rebuilt only
//!   when the lock file, a manifest, the toolchain or the build settings
//!   change, under an exclusive lock; graders using it hold a shared one.
//! - `submission/` (`--submission`) and `class/slot-N` (`--submissions`,
//!   one per student graded at once): a [`Slot`], where one submission at
//!   a time is laid out (`checkout/`) and built (`build/target`). A slot is
//!   locked by the grader using it.
//!
//! A slot's build sees the store through an overlay mounted in the build
//! jail's own mount namespace (see `jail::BuildTarget::Overlay`): the
//! lower layer is a read-only bind mount of `store/target`, the upper one
//! the slot's `build/target`. Every build shares the store's files and
//! none can change them (a write, chmod or utime there is refused by the
//! kernel with EROFS, whatever the uid and mode bits; Landlock lets the
//! build name no path of the store). Before each build the upper layer is
//! emptied: a build sees nothing a previous one wrote. Where no overlay can
//! be mounted (a container that forbids mounting, an overlay file system
//! under the workbook), the store is copied into the slot before each
//! build instead.
//!
//! The checkouts are inside the workbook's tree, but no build reads
//! anything of it but its checkout: Landlock grants reads beneath the
//! checkout only, and cargo runs from the jail's private directory, so it
//! looks for no cargo configuration in the workbook.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

use super::submission;
use crate::grade::build;
use crate::grade::jail::{self, BuildJail, BuildTarget};
use crate::project;

/// The grader's area: `target/xtask-grade` of the workbook at `root` (the
/// tree's own `target/`, made if missing, whatever cargo's target-dir
/// setting says).
pub fn area(root: &Path) -> Result<PathBuf, String> {
    let area = root.join("target").join("xtask-grade");
    std::fs::create_dir_all(&area).map_err(|e| format!("{}: {e}", area.display()))?;
    std::fs::canonicalize(&area).map_err(|e| format!("{}: {e}", area.display()))
}

/// An exclusive lock on `path` (made if missing); if another grader holds
/// it, says so and waits.
pub fn lock(path: &Path, waiting: &str) -> Result<Flock<File>, String> {
    lock_as(
        path,
        FlockArg::LockExclusiveNonblock,
        FlockArg::LockExclusive,
        waiting,
    )
}

fn lock_as(
    path: &Path,
    now: FlockArg,
    wait: FlockArg,
    waiting: &str,
) -> Result<Flock<File>, String> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Flock::lock(file, now).or_else(|(file, _)| {
        eprintln!("{waiting}");
        Flock::lock(file, wait).map_err(|(_, e)| format!("{}: cannot lock: {e}", path.display()))
    })
}

/// A place where one submission at a time is laid out and built, locked
/// while it is used (`DIR.lock` beside it).
pub struct Slot {
    pub dir: PathBuf,
    /// The submission's checkout, laid out by the grader.
    pub checkout: PathBuf,
    /// The directory the build may write: it holds `target` alone.
    build: PathBuf,
    pub target: PathBuf,
    /// The overlay's work directory.
    work: PathBuf,
    /// `None` for a private slot, which is removed when dropped.
    lock: Option<Flock<File>>,
}

impl Slot {
    /// Takes the slot at `dir` (made if missing), waiting while another
    /// grader uses it.
    pub fn take(dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let dir = std::fs::canonicalize(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let lock = lock(
            &dir.with_extension("lock"),
            &format!(
                "waiting for another grading in {} to finish...",
                dir.display()
            ),
        )?;
        Ok(Self::at(dir, Some(lock)))
    }

    /// A slot of this grader's own (`--workspace --prebuilt-dependencies`
    /// builds a checkout elsewhere, into its target), removed when dropped.
    pub fn private() -> Result<Self, String> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = std::env::temp_dir().join(format!("xtask-deps-{}", std::process::id()));
        let _ = remove_tree(&dir);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        std::fs::create_dir(dir.join("checkout")).map_err(|e| e.to_string())?;
        Ok(Self::at(dir, None))
    }

    fn at(dir: PathBuf, lock: Option<Flock<File>>) -> Self {
        let build = dir.join("build");
        Self {
            checkout: dir.join("checkout"),
            target: build.join("target"),
            work: dir.join("work"),
            build,
            dir,
            lock,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.lock.is_none() {
            let _ = remove_tree(&self.dir);
        }
    }
}

/// The dependencies, compiled once (see the module's documentation);
/// shared-locked while it lives.
pub struct Store {
    /// `store/target`, as the skeletons' build left it, their own
    /// artefacts removed.
    target: PathBuf,
    /// Building it, when it had to be built.
    pub built_in: Option<Duration>,
    _lock: Flock<File>,
}

impl Store {
    /// The store of the workbook at `root`, built first if it is missing
    /// or stale and `may_build` (else an error: a class's graders must not
    /// rebuild what their class is using).
    pub fn ready(root: &Path, may_build: bool) -> Result<Self, String> {
        let area = area(root)?;
        let dir = area.join("store");
        let target = dir.join("target");
        let stamp = stamp(root)?;
        let stamp_file = dir.join("stamp");
        let fresh = || std::fs::read_to_string(&stamp_file).ok().as_deref() == Some(stamp.as_str());
        let waiting =
            "waiting for another grading of this workbook to finish with the dependency store...";
        let lock = lock_as(
            &area.join("store.lock"),
            FlockArg::LockSharedNonblock,
            FlockArg::LockShared,
            waiting,
        )?;
        let mut built_in = None;
        if !fresh() {
            if !may_build {
                return Err(
                    "the dependency store is not that of this workbook any more (its manifests, lock file or toolchain changed while grading): grade again"
                        .into(),
                );
            }
            // Rebuilt only under an exclusive lock: no build of another
            // grader is reading it.
            if lock.relock(FlockArg::LockExclusiveNonblock).is_err() {
                eprintln!("{waiting}");
                lock.relock(FlockArg::LockExclusive)
                    .map_err(|e| format!("cannot lock the dependency store: {e}"))?;
            }
            if !fresh() {
                let started = Instant::now();
                build_store(root, &dir, &target)?;
                std::fs::write(&stamp_file, &stamp).map_err(|e| e.to_string())?;
                built_in = Some(started.elapsed());
            }
            lock.relock(FlockArg::LockShared)
                .map_err(|e| format!("cannot lock the dependency store: {e}"))?;
        }
        Ok(Self {
            target,
            built_in,
            _lock: lock,
        })
    }

    /// Lays out `slot`'s target directory for a build: empty, with the
    /// store under it as an overlay where the machine allows one, else a
    /// fresh copy of the store. Returns what the build jail is given.
    pub fn seed<'a>(&'a self, slot: &'a Slot) -> Result<BuildTarget<'a>, String> {
        let io = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
        remove_tree(&slot.build)?;
        remove_tree(&slot.work)?;
        std::fs::create_dir_all(&slot.target).map_err(|e| io(&slot.target, e))?;
        std::fs::create_dir_all(&slot.work).map_err(|e| io(&slot.work, e))?;
        let overlay = BuildTarget::Overlay {
            target: &slot.target,
            lower: &self.target,
            work: &slot.work,
        };
        if overlay_works(&slot.checkout, &slot.target, &self.target, &slot.work) {
            // The probe's mount left the overlay's own directory in `work`.
            remove_tree(&slot.work)?;
            std::fs::create_dir_all(&slot.work).map_err(|e| io(&slot.work, e))?;
            return Ok(overlay);
        }
        copy_tree(&self.target, &slot.target)?;
        Ok(BuildTarget::Given(&slot.target))
    }
}

/// Whether a build jail can mount the store's overlay here: tried with
/// `true` in the very jail a build gets.
fn overlay_works(checkout: &Path, target: &Path, lower: &Path, work: &Path) -> bool {
    let jail = BuildJail::new(
        checkout,
        Duration::from_secs(10),
        BuildTarget::Overlay {
            target,
            lower,
            work,
        },
    );
    let Ok(jail) = jail else {
        return false;
    };
    let mut command = Command::new("true");
    jail.apply(&mut command);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Builds the skeletons at `dir` (a checkout of the workbook's
/// exercises) in the build jail, into `target`, and keeps only the
/// dependencies.
fn build_store(root: &Path, dir: &Path, target: &Path) -> Result<(), String> {
    eprintln!("building the dependencies once for this workbook's submissions...");
    remove_tree(dir)?;
    let release = super::released::Release::load(root)?;
    submission::checkout(root, dir, &release, &[])?;
    std::fs::create_dir_all(target).map_err(|e| format!("{}: {e}", target.display()))?;
    let allowed = jail::locked_registry_packages(&root.join("Cargo.lock"));
    let workspace = build::Workspace::open_submission(
        dir,
        jail::BUILD_TIME_LIMIT * 5,
        &allowed,
        BuildTarget::Given(target),
    )?;
    let packages: Vec<String> = project::STEPS.iter().map(|s| s.to_string()).collect();
    for (step, built) in project::STEPS.iter().zip(workspace.build(&packages, false)) {
        built.map_err(|e| format!("the dependency store: {step} does not build: {e}"))?;
    }
    strip_own_artefacts(dir, target)
}

/// What a store depends on: if any of it changes, it is rebuilt.
fn stamp(root: &Path) -> Result<String, String> {
    let mut text = String::new();
    let mut add = |path: &Path| {
        text.push_str(&format!("== {}\n", path.display()));
        text.push_str(&std::fs::read_to_string(path).unwrap_or_default());
    };
    add(&root.join("Cargo.toml"));
    add(&root.join("Cargo.lock"));
    for step in project::STEPS {
        add(&root.join("exercises").join(step).join("Cargo.toml"));
    }
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let version = Command::new(rustc)
        .arg("-vV")
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    text.push_str(&String::from_utf8_lossy(&version.stdout));
    for (key, value) in build::JAILED_BUILD_SETTINGS {
        text.push_str(&format!("{key}={value}\n"));
    }
    for key in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
    ] {
        text.push_str(&format!("{key}={:?}\n", std::env::var_os(key)));
    }
    Ok(text)
}

/// Leaves only the dependencies in the store's target: the skeletons'
/// binaries, objects and fingerprints go (their crate names are the
/// workspace's targets, per `cargo metadata`).
fn strip_own_artefacts(checkout: &Path, target: &Path) -> Result<(), String> {
    let output = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(checkout)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?;
    let mut own = std::collections::BTreeSet::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        own.insert(package["name"].as_str().unwrap_or("").replace('-', "_"));
        for target in package["targets"].as_array().into_iter().flatten() {
            own.insert(target["name"].as_str().unwrap_or("").replace('-', "_"));
        }
    }
    let debug = target.join("debug");
    let io = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    for entry in std::fs::read_dir(&debug)
        .map_err(|e| io(&debug, e))?
        .flatten()
    {
        let name = entry.file_name();
        if !["deps", "build", ".fingerprint"].contains(&name.to_string_lossy().as_ref()) {
            remove_tree(&entry.path())?;
        }
    }
    for kept in ["deps", "build", ".fingerprint"] {
        let dir = debug.join(kept);
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().replace('-', "_");
            let name = name.strip_prefix("lib").unwrap_or(&name);
            if own.iter().any(|crate_name| {
                name.strip_prefix(crate_name.as_str())
                    .is_some_and(|rest| rest.starts_with('_') || rest.starts_with('.'))
            }) {
                remove_tree(&entry.path())?;
            }
        }
    }
    // `.rustc_info.json` (cargo's cache of what rustc says of itself) is
    // kept: every build seeded from the store would otherwise run rustc
    // again to ask.
    for extra in ["tmp", "CACHEDIR.TAG"] {
        remove_tree(&target.join(extra))?;
    }
    Ok(())
}

/// Removes a file or a tree, if it is there. An overlay's work directory
/// holds a directory without permissions, which its owner may still open
/// up and remove.
pub fn remove_tree(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    if !meta.is_dir() {
        return std::fs::remove_file(path).map_err(|e| format!("{}: {e}", path.display()));
    }
    if std::fs::remove_dir_all(path).is_ok() {
        return Ok(());
    }
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(entry.path());
            }
        }
    }
    std::fs::remove_dir_all(path).map_err(|e| format!("cannot remove {}: {e}", path.display()))
}

/// Copies a tree (the store into a slot, where no overlay can be had).
/// `std::fs::copy` shares the blocks where the file system can
/// (copy_file_range, reflinks).
fn copy_tree(from: &Path, into: &Path) -> Result<(), String> {
    std::fs::create_dir_all(into).map_err(|e| format!("{}: {e}", into.display()))?;
    for entry in std::fs::read_dir(from)
        .map_err(|e| format!("{}: {e}", from.display()))?
        .flatten()
    {
        let to = into.join(entry.file_name());
        let kind = entry.file_type().map_err(|e| e.to_string())?;
        if kind.is_dir() {
            copy_tree(&entry.path(), &to)?;
        } else if kind.is_file() {
            // Each file keeps its modification time: cargo takes a
            // dependency whose output is newer than its dependent's for
            // rebuilt, and would compile again whatever was copied first.
            let io = |e: std::io::Error| format!("{}: {e}", entry.path().display());
            std::fs::copy(entry.path(), &to).map_err(io)?;
            let modified = entry.metadata().and_then(|m| m.modified()).map_err(io)?;
            std::fs::File::options()
                .write(true)
                .open(&to)
                .and_then(|f| f.set_modified(modified))
                .map_err(io)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    /// The store's guarantee, tried from inside a build jail: through the
    /// overlay the build may change what it sees, but the store's own
    /// files cannot be written, removed, re-moded or re-dated by any path,
    /// though the build runs as their owner (root without capabilities
    /// here), whom mode bits would not stop from a chmod.
    #[test]
    fn no_build_can_change_the_store() {
        let dir = std::env::temp_dir().join(format!("xtask-store-test-{}", std::process::id()));
        let _ = remove_tree(&dir);
        let lower = dir.join("store/target");
        let file = lower.join("debug/deps/libshared.rlib");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, "compiled once").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let before = std::fs::metadata(&file).unwrap();
        let lower_mode = std::fs::metadata(&lower).unwrap().mode();
        let checkout = dir.join("slot/checkout");
        std::fs::create_dir_all(&checkout).unwrap();
        let (target, work) = (dir.join("slot/build/target"), dir.join("slot/work"));
        std::fs::create_dir_all(&target).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        if !overlay_works(&checkout, &target, &lower, &work) {
            eprintln!("skipped: no overlay can be mounted here (the store is copied instead)");
            let _ = remove_tree(&dir);
            return;
        }
        let jail = BuildJail::new(
            &checkout,
            Duration::from_secs(30),
            BuildTarget::Overlay {
                target: &target,
                lower: &lower,
                work: &work,
            },
        )
        .unwrap();
        let seen = target.join("debug/deps/libshared.rlib");
        let (seen, store) = (seen.display(), file.display());
        // Each attempt prints "ok NAME" only if it got through.
        let script = format!(
            "cat {seen} && echo && echo ok read-through-overlay
             echo rebuilt > {seen} && echo ok write-through-overlay
             echo stolen > {store} && echo ok write-store
             chmod 666 {store} && echo ok chmod-store
             touch -d 2000-01-01 {store} && echo ok utime-store
             rm -f {store} && echo ok remove-store
             mv {store} {store}.moved && echo ok rename-store
             chmod 777 {lower} && echo ok chmod-store-dir
             true",
            lower = lower.display()
        );
        let mut command = Command::new("sh");
        command.arg("-c").arg(&script);
        jail.apply(&mut command);
        let output = command.output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let got: Vec<&str> = stdout
            .lines()
            .filter_map(|l| l.strip_prefix("ok "))
            .collect();
        assert_eq!(
            got,
            ["read-through-overlay", "write-through-overlay"],
            "stdout:\n{stdout}\nstderr:\n{stderr}"
        );
        // The chmod and utime are refused by the read-only mount itself,
        // not by a mode bit.
        assert!(stderr.contains("Read-only file system"), "{stderr}");
        // The store is as it was; the build's write landed in its slot.
        let after = std::fs::metadata(&file).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "compiled once");
        assert_eq!(
            (after.mode(), after.mtime(), after.mtime_nsec(), after.ino()),
            (
                before.mode(),
                before.mtime(),
                before.mtime_nsec(),
                before.ino()
            )
        );
        assert_eq!(
            std::fs::metadata(&lower).unwrap().mode(),
            lower_mode,
            "the store's directory was re-moded"
        );
        assert_eq!(
            std::fs::read_to_string(target.join("debug/deps/libshared.rlib")).unwrap(),
            "rebuilt\n"
        );
        drop(jail);
        remove_tree(&dir).unwrap();
    }
}
