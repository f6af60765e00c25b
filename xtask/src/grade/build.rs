//! Building the binaries to grade. Compile time never counts against a
//! case's time limit: everything is built before the first case runs.
//!
//! Where the binaries are is cargo's to say, not ours to guess: they are
//! taken from its JSON artifact messages, whatever target-dir setting is in
//! force (`CARGO_TARGET_DIR`, `[build] target-dir`, ...). Two rules keep a
//! grade honest:
//! - only artifacts whose manifest lies inside the tree being graded count;
//! - a target directory outside that tree may be shared with another
//!   checkout, whose build could replace a binary between our build and our
//!   run. The tree's own `target/` is then used instead.
//!
//! Each binary is then snapshotted (hard-linked, or copied) into a private
//! directory for the run, so that nothing built later can change what is
//! graded.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;

/// A package's binaries, by name.
pub type Binaries = BTreeMap<String, PathBuf>;

/// Why a package has no binaries to grade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    /// The tree has no package of that name.
    Missing(String),
    /// The compiler's first error.
    DoesNotCompile(String),
    /// The build went past its time limit and was stopped.
    TooLong(String),
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Self::Missing(why) | Self::DoesNotCompile(why) | Self::TooLong(why) => f.write_str(why),
        }
    }
}

/// A workspace, as cargo sees it.
pub struct Workspace {
    pub root: PathBuf,
    /// Each package's binary targets, by package name.
    packages: BTreeMap<String, BTreeSet<String>>,
    /// The target directory we build into, and why it is not cargo's own
    /// choice (if it is not).
    target_dir: PathBuf,
    pub target_note: Option<String>,
    /// --- sandbox: the jail cargo runs in, for a submission.
    jail: Option<super::jail::BuildJail>,
}

#[derive(Deserialize)]
struct Metadata {
    packages: Vec<MetadataPackage>,
    #[serde(default)]
    workspace_members: Vec<String>,
    target_directory: PathBuf,
    workspace_root: PathBuf,
}

#[derive(Deserialize)]
struct MetadataPackage {
    id: String,
    #[serde(flatten)]
    cargo: super::jail::CargoPackage,
}

#[derive(Deserialize)]
struct Message {
    reason: String,
    #[serde(default)]
    manifest_path: Option<PathBuf>,
    #[serde(default)]
    package_id: Option<String>,
    #[serde(default)]
    target: Option<MessageTarget>,
    #[serde(default)]
    executable: Option<PathBuf>,
    #[serde(default)]
    message: Option<Diagnostic>,
}

#[derive(Deserialize)]
struct MessageTarget {
    name: String,
    kind: Vec<String>,
}

#[derive(Deserialize)]
struct Diagnostic {
    level: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: Option<DiagnosticCode>,
    #[serde(default)]
    spans: Vec<DiagnosticSpan>,
    /// As cargo prints it: the error, where, the source lines, the help.
    #[serde(default)]
    rendered: Option<String>,
}

#[derive(Deserialize)]
struct DiagnosticCode {
    code: String,
}

#[derive(Deserialize)]
struct DiagnosticSpan {
    file_name: String,
    line_start: usize,
    column_start: usize,
    is_primary: bool,
    #[serde(default)]
    label: Option<String>,
}

impl Diagnostic {
    /// The diagnostic as a step's reason not to be graded: one line first
    /// (`src/main.rs:3:18: error[E0308]: mismatched types: expected ...`,
    /// what a gradebook shows), then the whole of it as cargo prints it.
    fn as_reason(&self) -> String {
        let code = self
            .code
            .as_ref()
            .map(|c| format!("[{}]", c.code))
            .unwrap_or_default();
        let mut line = format!("{}{code}: {}", self.level, self.message);
        if let Some(span) = self.spans.iter().find(|s| s.is_primary) {
            line = format!(
                "{}:{}:{}: {line}",
                span.file_name, span.line_start, span.column_start
            );
            if let Some(label) = span.label.as_deref().filter(|l| !l.is_empty()) {
                line = format!("{line}: {label}");
            }
        }
        match self.rendered.as_deref().map(str::trim_end) {
            Some(rendered) if !rendered.is_empty() => format!("{line}\n{rendered}"),
            _ => line,
        }
    }
}

/// How a submission is built: once, so incremental compilation would only
/// cost time and leave state behind in its target; and without debug
/// information, which grading never reads (a third of the build's time).
/// A class's dependency store is built the same way (see `class`).
pub const JAILED_BUILD_SETTINGS: [(&str, &str); 2] =
    [("CARGO_INCREMENTAL", "0"), ("CARGO_PROFILE_DEV_DEBUG", "0")];

fn cargo() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    Command::new(cargo)
}

impl Workspace {
    /// Reads the workspace at `dir` with `cargo metadata`.
    pub fn open(dir: &Path) -> Result<Self, String> {
        if !dir.is_dir() {
            return Err(format!("{}: no such directory", dir.display()));
        }
        if !dir.join("Cargo.toml").is_file() {
            return Err(format!("{} holds no Cargo.toml", dir.display()));
        }
        let output = cargo()
            .current_dir(dir)
            .args(["metadata", "--no-deps", "--format-version", "1"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "{}: cargo cannot read this workspace: {}",
                dir.display(),
                first_error(&String::from_utf8_lossy(&output.stderr))
            ));
        }
        let metadata: Metadata = serde_json::from_slice(&output.stdout)
            .map_err(|e| format!("cannot read cargo metadata: {e}"))?;
        let root = metadata.workspace_root;
        // Compared with links resolved: a `target` link into a shared
        // directory is outside the tree, whatever its name says.
        let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let (target_dir, target_note) = if real(&metadata.target_directory).starts_with(real(&root))
        {
            (metadata.target_directory, None)
        } else {
            // The tree's own `target/`, unless that is itself a link out.
            let own = Some(root.join("target"))
                .filter(|t| !t.is_symlink())
                .unwrap_or_else(|| root.join("target-grade"));
            let note = format!(
                "building into {}, not the target directory {} set outside this tree (another checkout may share it)",
                own.display(),
                metadata.target_directory.display()
            );
            (own, Some(note))
        };
        Ok(Self {
            root,
            packages: metadata
                .packages
                .iter()
                .map(|p| (p.cargo.name.clone(), p.cargo.binaries()))
                .collect(),
            target_dir,
            target_note,
            jail: None,
        })
    }

    /// A submission's workspace, read by a jailed `cargo metadata` (its
    /// dependencies included) and checked as cargo sees it (see
    /// `jail::check_packages`): `allowed` are the registry packages it
    /// may use. Built into the jail's private target directory, never one
    /// of the checkout's choosing.
    ///
    /// `target` other than private is for the grader's own checkouts
    /// (laid out by the grader from a submission's sources alone, with the
    /// compiled dependencies of the store): never a directory a submission
    /// chose.
    pub fn open_submission(
        dir: &Path,
        time_limit: std::time::Duration,
        allowed: &BTreeSet<(String, String)>,
        target: super::jail::BuildTarget,
    ) -> Result<Self, String> {
        let dir = std::fs::canonicalize(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if !dir.join("Cargo.toml").is_file() {
            return Err(format!("{} holds no Cargo.toml", dir.display()));
        }
        let jail = super::jail::BuildJail::new(&dir, time_limit, target)?;
        let mut command = jail.cargo();
        command
            .current_dir(jail.working_dir())
            .arg("metadata")
            .arg("--manifest-path")
            .arg(dir.join("Cargo.toml"))
            .args(["--format-version", "1"])
            // What this machine builds: cargo then needs no package that
            // only another platform uses (never downloaded here, and it
            // runs offline).
            .args(
                host_triple()
                    .map(|host| ["--filter-platform", host])
                    .into_iter()
                    .flatten(),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        jail.apply(&mut command);
        let output = run_with_deadline(command, Some(jail.time_limit), |_| {})
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        if !output.success {
            return Err(format!(
                "{}: cargo cannot read this workspace: {}",
                dir.display(),
                first_error(&output.stderr)
            ));
        }
        let metadata: Metadata = serde_json::from_slice(&output.stdout)
            .map_err(|e| format!("cannot read cargo metadata: {e}"))?;
        let all: Vec<&super::jail::CargoPackage> =
            metadata.packages.iter().map(|p| &p.cargo).collect();
        super::jail::check_packages(&dir, &all, allowed)?;
        Ok(Self {
            root: metadata.workspace_root,
            packages: metadata
                .packages
                .iter()
                .filter(|p| metadata.workspace_members.contains(&p.id))
                .map(|p| (p.cargo.name.clone(), p.cargo.binaries()))
                .collect(),
            target_dir: jail.target.clone(),
            target_note: None,
            jail: Some(jail),
        })
    }

    /// What the build jail lacks here (empty: all of it, or no jail).
    pub fn jail_missing(&self) -> &[String] {
        self.jail.as_ref().map_or(&[], |j| j.missing.as_slice())
    }

    pub fn jail_line(&self) -> Option<&str> {
        self.jail.as_ref().map(|j| j.isolation.as_str())
    }

    pub fn has_package(&self, name: &str) -> bool {
        self.packages.contains_key(name)
    }
}

/// Building: cargo run on the packages, its messages read for the
/// binaries it made and the errors it met.
impl Workspace {
    /// Builds `packages` (debug or release); for each, its binaries or why
    /// there are none.
    pub fn build(&self, packages: &[String], release: bool) -> Vec<Result<Binaries, BuildError>> {
        let present: Vec<String> = packages
            .iter()
            .filter(|p| self.has_package(p))
            .cloned()
            .collect();
        // One cargo call for all (`--keep-going`: a package that does not
        // compile stops none of the others), its errors told apart by
        // package.
        let mut together = self.cargo_build(&present, release);
        packages
            .iter()
            .map(|package| {
                if !self.has_package(package) {
                    return Err(BuildError::Missing(format!(
                        "{} has no package named {package}",
                        self.root.display()
                    )));
                }
                match together.remove(package) {
                    Some(Some(result)) => result,
                    // The build failed, and nothing says how this package
                    // fared (cargo itself stopped, or a compiler died
                    // without a word): built on its own, to say.
                    _ => self
                        .cargo_build(std::slice::from_ref(package), release)
                        .remove(package)
                        .flatten()
                        .unwrap_or_else(|| {
                            Err(BuildError::DoesNotCompile("the build failed".into()))
                        }),
                }
            })
            .collect()
    }

    /// The `cargo build` of `packages`, in the jail if there is one.
    fn build_command(&self, packages: &[String], release: bool) -> Command {
        let mut command = match &self.jail {
            Some(jail) => jail.cargo(),
            None => cargo(),
        };
        command
            .current_dir(self.jail.as_ref().map_or(&*self.root, |j| j.working_dir()))
            .arg("build")
            .arg("--manifest-path")
            .arg(self.root.join("Cargo.toml"))
            .args(["--keep-going", "--message-format", "json"])
            .arg("--target-dir")
            .arg(&self.target_dir)
            .args(release.then_some("--release"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for package in packages {
            command.args(["-p", package]);
        }
        if let Some(jail) = &self.jail {
            jail.apply(&mut command);
            // After `apply`, whose `env_clear` would drop them.
            for (key, value) in JAILED_BUILD_SETTINGS {
                command.env(key, value);
            }
        }
        command
    }

    /// One `cargo build`: for each package, its executables or why there
    /// are none; `None` when the build failed and no message says how
    /// that package fared.
    fn cargo_build(
        &self,
        packages: &[String],
        release: bool,
    ) -> BTreeMap<String, Option<Result<Binaries, BuildError>>> {
        if packages.is_empty() {
            return BTreeMap::new();
        }
        let command = self.build_command(packages, release);
        let limit = self.jail.as_ref().map(|jail| jail.time_limit);
        let mut found = Found::default();
        let output = match run_with_deadline(command, limit, |line| {
            if let Ok(message) = serde_json::from_str::<Message>(line) {
                self.take_message(message, &mut found);
            }
        }) {
            Ok(output) => output,
            Err(why) => {
                return packages
                    .iter()
                    .map(|p| {
                        (
                            p.clone(),
                            Some(Err(BuildError::DoesNotCompile(why.clone()))),
                        )
                    })
                    .collect()
            }
        };
        packages
            .iter()
            .map(|package| {
                let binaries = found.binaries.remove(package).unwrap_or_default();
                let result = if output.timed_out {
                    Some(Err(BuildError::TooLong(format!(
                        "the build took longer than {} s: stopped",
                        limit.unwrap_or_default().as_secs()
                    ))))
                } else if let Some(error) = found.first_error.remove(package) {
                    Some(Err(BuildError::DoesNotCompile(error)))
                } else if output.success || self.complete(package, &binaries) {
                    Some(Ok(binaries))
                } else if packages.len() == 1 {
                    Some(Err(BuildError::DoesNotCompile(first_error(&output.stderr))))
                } else {
                    None
                };
                (package.clone(), result)
            })
            .collect()
    }

    /// Whether every binary target of `package` was built.
    fn complete(&self, package: &str, binaries: &Binaries) -> bool {
        self.packages
            .get(package)
            .is_some_and(|targets| targets.iter().all(|t| binaries.contains_key(t)))
    }

    fn take_message(&self, message: Message, found: &mut Found) {
        let package = message
            .package_id
            .as_deref()
            .and_then(package_name)
            .unwrap_or_default();
        match message.reason.as_str() {
            "compiler-artifact" => {
                let (Some(manifest), Some(target), Some(executable)) =
                    (message.manifest_path, message.target, message.executable)
                else {
                    return;
                };
                // Only this tree's own binaries: never one that a path
                // dependency outside it produced.
                if !manifest.starts_with(&self.root) || !target.kind.iter().any(|k| k == "bin") {
                    return;
                }
                found
                    .binaries
                    .entry(package)
                    .or_default()
                    .insert(target.name, executable);
            }
            "compiler-message" => {
                let Some(diagnostic) = message.message else {
                    return;
                };
                if diagnostic.level == "error" {
                    found
                        .first_error
                        .entry(package)
                        .or_insert_with(|| diagnostic.as_reason());
                }
            }
            _ => {}
        }
    }
}

/// What a build's messages said, by package name.
#[derive(Default)]
struct Found {
    binaries: BTreeMap<String, Binaries>,
    /// The compiler's first error for each package that has one.
    first_error: BTreeMap<String, String>,
}

/// The platform rustc builds for here (`host:` of `rustc -vV`).
fn host_triple() -> Option<&'static str> {
    static HOST: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
        let output = Command::new(rustc)
            .arg("-vV")
            .stdin(Stdio::null())
            .output()
            .ok()?;
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("host: "))
            .map(|h| h.trim().to_string())
    })
    .as_deref()
}

/// What a cargo run left.
struct CargoOutput {
    success: bool,
    timed_out: bool,
    stdout: Vec<u8>,
    stderr: String,
}

/// Runs `command` (cargo, stdout and stderr piped), handing each line of
/// its stdout to `each_line`. With a `limit`, the command must have a
/// process group of its own: past the limit the whole group (cargo and
/// its compilers) is killed.
fn run_with_deadline(
    mut command: Command,
    limit: Option<std::time::Duration>,
    mut each_line: impl FnMut(&str),
) -> Result<CargoOutput, String> {
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let (finished, done) = std::sync::mpsc::channel::<()>();
    let timed_out = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let group = child.id() as i32;
    let watchdog = limit.map(|limit| {
        let timed_out = std::sync::Arc::clone(&timed_out);
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = done.recv_timeout(limit) {
                timed_out.store(true, std::sync::atomic::Ordering::SeqCst);
                // cargo is not reaped yet (we wait for this thread first),
                // so its group id cannot have been reused.
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(group),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        })
    });
    // stderr is read on a thread of its own: a pipe that nobody drains
    // fills up, and cargo would block writing to it for ever.
    let stderr = child.stderr.take();
    let errors = std::thread::spawn(move || {
        let mut text = Vec::new();
        if let Some(mut pipe) = stderr {
            let _ = std::io::Read::read_to_end(&mut pipe, &mut text);
        }
        String::from_utf8_lossy(&text).into_owned()
    });
    let mut stdout = Vec::new();
    if let Some(pipe) = child.stdout.take() {
        let mut reader = std::io::BufReader::new(pipe);
        let mut line = Vec::new();
        while let Ok(1..) = reader.read_until(b'\n', &mut line) {
            each_line(&String::from_utf8_lossy(&line));
            stdout.extend_from_slice(&line);
            line.clear();
        }
    }
    drop(finished);
    if let Some(watchdog) = watchdog {
        let _ = watchdog.join();
    }
    let status = child.wait();
    let stderr = errors.join().unwrap_or_default();
    Ok(CargoOutput {
        success: status.is_ok_and(|s| s.success()),
        timed_out: timed_out.load(std::sync::atomic::Ordering::SeqCst),
        stdout,
        stderr,
    })
}

/// The package name in a package id: `path+file:///…/ex1#ex1_x@0.1.0` or
/// the older `ex1_x 0.1.0 (path+file:///…)`.
fn package_name(id: &str) -> Option<String> {
    if let Some((_, rest)) = id.rsplit_once('#') {
        let name = rest.split('@').next()?;
        // `…/ex1_x#0.1.0` names the package after its directory.
        if name.chars().next().is_some_and(|c| c.is_ascii_digit()) {
            let path = id.split('#').next()?;
            return path.rsplit('/').next().map(String::from);
        }
        return Some(name.to_string());
    }
    id.split_whitespace().next().map(String::from)
}

/// The compiler's first error line, without cargo's summary lines.
pub fn first_error(stderr: &str) -> String {
    stderr
        .lines()
        .find(|l| l.contains("error") && !l.starts_with("error: could not compile"))
        .unwrap_or("the build failed")
        .trim()
        .to_string()
}

/// A private directory holding this run's snapshot of the binaries it
/// grades; removed when dropped.
pub struct BinarySnapshot {
    pub dir: PathBuf,
}

impl BinarySnapshot {
    pub fn new() -> Result<Self, String> {
        use std::os::unix::fs::DirBuilderExt;
        // Where the cases' user can reach the binaries (see the sandbox).
        let base = &super::jail::case_temp_dir()?.dir;
        let dir = base.join(format!("xtask-bins-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(Self { dir })
    }

    /// Links or copies `binary` in as `name` (a relative path); returns its
    /// new path.
    pub fn add(&self, name: &str, binary: &Path) -> Result<PathBuf, String> {
        let to = self.dir.join(name);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        let _ = std::fs::remove_file(&to);
        // A hard link keeps the inode cargo wrote: cargo replaces a binary by
        // unlinking it, never by writing into it, so the snapshot stays.
        if std::fs::hard_link(binary, &to).is_err() {
            std::fs::copy(binary, &to)
                .map_err(|e| format!("cannot copy {}: {e}", binary.display()))?;
        }
        Ok(to)
    }
}

impl Drop for BinarySnapshot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The build settings reach cargo in the jail, whose environment is
    /// built from nothing (they were once set before it was cleared).
    #[test]
    fn a_jailed_build_keeps_its_settings() {
        let dir = std::env::temp_dir().join(format!("xtask-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let jail = super::super::jail::BuildJail::new(
            &dir,
            std::time::Duration::from_secs(1),
            super::super::jail::BuildTarget::Private,
        )
        .unwrap();
        let workspace = Workspace {
            root: dir.clone(),
            packages: BTreeMap::new(),
            target_dir: jail.target.clone(),
            target_note: None,
            jail: Some(jail),
        };
        let command = workspace.build_command(&["ex1_fibonacci_child".into()], false);
        let env: BTreeMap<_, _> = command.get_envs().collect();
        for (key, value) in JAILED_BUILD_SETTINGS {
            assert_eq!(
                env.get(std::ffi::OsStr::new(key)),
                Some(&Some(std::ffi::OsStr::new(value))),
                "{key}"
            );
        }
        drop(workspace);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_diagnostic_reads_as_one_line_then_as_cargo_prints_it() {
        let message: Message = serde_json::from_str(
            r#"{"reason":"compiler-message","message":{"level":"error","message":"mismatched types",
            "code":{"code":"E0308"},"spans":[{"file_name":"src/main.rs","line_start":3,"column_start":18,
            "is_primary":true,"label":"expected `u32`, found `&str`"}],
            "rendered":"error[E0308]: mismatched types\n --> src/main.rs:3:18\n  |\n3 |     let n: u32 = \"10\";\n"}}"#,
        )
        .unwrap();
        let reason = message.message.unwrap().as_reason();
        let mut lines = reason.lines();
        assert_eq!(
            lines.next(),
            Some("src/main.rs:3:18: error[E0308]: mismatched types: expected `u32`, found `&str`")
        );
        assert_eq!(lines.next(), Some("error[E0308]: mismatched types"));
        assert_eq!(lines.next(), Some(" --> src/main.rs:3:18"));
    }

    #[test]
    fn first_error_skips_the_summary() {
        let stderr = "warning: unused\nexercises/a/src/main.rs:3:5: error[E0425]: cannot find value `x`\nerror: could not compile `a`";
        assert_eq!(
            first_error(stderr),
            "exercises/a/src/main.rs:3:5: error[E0425]: cannot find value `x`"
        );
    }

    #[test]
    fn package_names_from_ids() {
        assert_eq!(
            package_name("path+file:///w/solutions/ex1#ex1_fibonacci_child_solution@0.1.0")
                .as_deref(),
            Some("ex1_fibonacci_child_solution")
        );
        assert_eq!(
            package_name("path+file:///w/ex1_fibonacci_child#0.1.0").as_deref(),
            Some("ex1_fibonacci_child")
        );
        assert_eq!(
            package_name("ex1_x 0.1.0 (path+file:///w/ex1_x)").as_deref(),
            Some("ex1_x")
        );
    }
}
