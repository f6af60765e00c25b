//! What a submission may be before it is built: no code of its own may
//! run while cargo compiles it, and nothing may make the grader read
//! through a link.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

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
pub(super) fn check_cargo_settings(checkout: &Path, dir: &Path) -> Result<(), String> {
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
pub(super) fn check_manifest(checkout: &Path, path: &Path) -> Result<(), String> {
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
pub(super) fn normalise(path: &Path) -> PathBuf {
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
