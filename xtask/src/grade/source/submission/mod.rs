//! One student's submission (`cargo xtask grade --submission DIR`), as an
//! autograder receives it: placed over the released skeletons (see
//! `released`) in a checkout of its own in the grader's build area
//! (`target/xtask-grade/submission`, see `store`), which is then built in
//! the sandbox on the dependencies compiled once for the workbook. The
//! build can read nothing of the workbook but that checkout (the
//! instructor's cases included), and cargo reads none of the workbook's
//! cargo settings.
//!
//! # What is taken
//! Only the steps' sources are ever used: the files under `<step>/src/`.
//! The grade depends on them and on the workbook as released, never on
//! the grading machine's `exercises/`: a step the submission leaves out is
//! not built and scores 0 ("missing"), and a file of a step's `src/` that
//! it leaves out is the released skeleton's.
//!
//! # Layouts, as students make them
//! macOS and Windows clutter (`__MACOSX/`, `.DS_Store`, `._*`,
//! `Thumbs.db`) is skipped, and so are `.git/` and `target/` folders; a
//! single top folder around everything (GitHub's "Download ZIP" makes
//! `workbook-main/`) is unwrapped. Then, at the top:
//! - an `exercises/` folder: a clone of the workbook, or a zip of its
//!   `exercises/`. The sources are `exercises/<step>/src/**`; the clone's
//!   `tests/`, `xtask/`, `solutions/` and `support/` are the grader's own,
//!   never read;
//! - a step's folder (`ex1_fibonacci_child/`): the sources are
//!   `<step>/src/**`, paths as under `exercises/`;
//! - neither, with one step graded (`grade ex1 --submission`, or an
//!   autograder made for one step): a step's folder's contents, or
//!   `main.rs` and the other source files alone (a file named as one of
//!   the step's released sources goes where that one is, such as
//!   `print_time.rs` into `src/bin/`). With several steps graded that is
//!   ambiguous, and refused.
//!
//! # Refused
//! A file the build would read if it were used must be the workbook's own,
//! byte for byte (a clone's top `Cargo.toml`: but for the workspace's
//! members, which the checkout sets itself), or the submission is refused,
//! with a reason that says what to upload instead: a manifest
//! (`Cargo.toml`), a `build.rs`, a cargo configuration (`.cargo/`), a
//! `rust-toolchain` file, wherever they are (among the sources, all but a
//! `build.rs`, which there is only a module). So are a link or anything
//! not a regular file (a link could name any file of the grader's), an
//! unreadable or over 1 MiB source, and too many files. Any other file is
//! never used, and a note lists it. Names are shown on one line, control
//! characters escaped: a file name cannot forge a line of the report. A
//! step left out is laid out as released, or where the release cannot be
//! had (no git history), as a placeholder: never the checkout's copy,
//! which may be a solution the build could read.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use super::released::Release;
use crate::project::STEPS;

/// Per source file: a lab step's source is a few kilobytes.
const MAX_FILE_BYTES: u64 = 1 << 20;
const MAX_SOURCES: usize = 200;
/// Every entry looked at, ignored ones included (a clone has a few
/// hundred).
const MAX_ENTRIES: usize = 20_000;
/// How many paths a refusal or a note lists.
const LISTED: usize = 10;
/// How many single top folders are unwrapped.
const MAX_WRAPPERS: usize = 8;

/// A file to place: where it is, and where it goes under `exercises/`.
pub struct Placement {
    pub from: PathBuf,
    pub to: PathBuf,
}

/// A submission that may be graded.
pub struct Accepted {
    /// Its sources, sorted by destination.
    pub placements: Vec<Placement>,
    /// The steps it holds sources of.
    pub steps: BTreeSet<&'static str>,
    /// One line on the files it holds that grading never uses.
    pub note: Option<String>,
}

/// How a submission's paths map onto the workbook's.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `exercises/` at the top: paths are the workbook's.
    Workbook,
    /// Step folders at the top: paths are under `exercises/`.
    StepFolders,
    /// One step's folder's contents: paths are under `exercises/<step>/`.
    OneStep(&'static str),
}

/// Checks a submission against the `workbook` it is for, `graded` being
/// the steps graded; Err is the reason it is refused, for the student.
pub fn check(
    dir: &Path,
    workbook: &Path,
    graded: &[&'static str],
    release: &Release,
) -> Result<Accepted, String> {
    if !dir.is_dir() {
        return Err(format!("{}: no such directory", dir.display()));
    }
    let top = unwrap(dir)?;
    let layout = layout(&top, graded)?;
    let mut placements = Vec::new();
    let mut refused = Vec::new();
    let mut ignored = Vec::new();
    let mut seen = 0;
    let mut stack = vec![top.clone()];
    while let Some(folder) = stack.pop() {
        let entries =
            std::fs::read_dir(&folder).map_err(|e| format!("{}: {e}", folder.display()))?;
        for entry in entries.flatten() {
            seen += 1;
            if seen > MAX_ENTRIES {
                return Err(format!(
                    "submission refused: more than {MAX_ENTRIES} files; upload only your \
                     steps' sources, such as ex1_fibonacci_child/src/main.rs"
                ));
            }
            let path = entry.path();
            let relative = path.strip_prefix(&top).unwrap_or(&path).to_path_buf();
            let shown = shown(&relative);
            let name = entry.file_name();
            // Build output is skipped, but not a source module named so.
            let in_src = relative.components().any(|c| c.as_os_str() == "src");
            if clutter(&name.to_string_lossy()) || name == ".git" || (name == "target" && !in_src) {
                continue;
            }
            // A clone's copies of the grader's own folders are never used,
            // so never read either (the grader's fixtures hold links).
            let grader_own = ["tests", "xtask", "solutions", "support"];
            if layout == Layout::Workbook && folder == top && grader_own.iter().any(|g| name == *g)
            {
                continue;
            }
            // Never followed: a link could name any file of the grader's.
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(meta) => meta,
                Err(e) => {
                    refused.push(format!("{shown} ({})", plain_error(&e)));
                    continue;
                }
            };
            if meta.is_dir() {
                stack.push(path);
                continue;
            }
            if meta.file_type().is_symlink() {
                refused.push(format!("{shown} (a link)"));
                continue;
            }
            if !meta.is_file() {
                refused.push(format!("{shown} (not a regular file)"));
                continue;
            }
            match sort_file(&path, &meta, &relative, layout, release, workbook) {
                Sorted::Source(to) => placements.push(Placement { from: path, to }),
                Sorted::Refused(why) => refused.push(format!("{shown} ({why})")),
                Sorted::Ignored => ignored.push(shown),
                Sorted::Workbook => {}
            }
        }
    }
    if placements.len() > MAX_SOURCES {
        refused.push(format!(
            "{} source files (at most {MAX_SOURCES})",
            placements.len()
        ));
    }
    if !refused.is_empty() {
        return Err(format!(
            "submission refused: it holds what would change how the steps are built: {}; \
             upload only your steps' sources (such as ex1_fibonacci_child/src/main.rs), or a \
             clone of the workbook with its own files unchanged",
            listed(refused)
        ));
    }
    placements.sort_by(|a, b| a.to.cmp(&b.to));
    let steps = placements
        .iter()
        .filter_map(|p| {
            let step = p.to.components().next()?.as_os_str().to_str()?;
            STEPS.iter().find(|s| **s == step).copied()
        })
        .collect();
    let note = (!ignored.is_empty()).then(|| {
        format!(
            "not used in grading (only the steps' src/ folders are): {}",
            listed(ignored)
        )
    });
    Ok(Accepted {
        placements,
        steps,
        note,
    })
}

/// What one regular file of a submission is to the grader.
enum Sorted {
    /// A source of a step: placed here in the checkout.
    Source(PathBuf),
    /// It would change the build, for this reason.
    Refused(&'static str),
    /// Not read by the build: never used.
    Ignored,
    /// Byte for byte the workbook's own.
    Workbook,
}

/// Sorts the regular file `path` (`relative` to the submission's top).
fn sort_file(
    path: &Path,
    meta: &std::fs::Metadata,
    relative: &Path,
    layout: Layout,
    release: &Release,
    workbook: &Path,
) -> Sorted {
    let theirs = in_workbook(relative, layout, release);
    if let Some(to) = source(&theirs) {
        return if meta.len() > MAX_FILE_BYTES {
            Sorted::Refused("larger than 1 MiB")
        } else if read_by_the_build(&theirs) && !theirs.ends_with("build.rs") {
            // Cargo never reads them there, but they are cargo's names:
            // refused, as they would be anywhere.
            Sorted::Refused("a cargo file among the sources")
        } else if read_regular(path).is_none() {
            Sorted::Refused("unreadable")
        } else {
            Sorted::Source(to)
        };
    }
    let ours = workbook.join(&theirs);
    let ours_is_file = std::fs::symlink_metadata(&ours).is_ok_and(|m| m.is_file());
    let same = if theirs == Path::new("Cargo.toml") {
        same_workspace(path, &ours)
    } else {
        ours_is_file
            && std::fs::metadata(&ours).is_ok_and(|m| m.len() == meta.len())
            && read_regular(&ours).is_some_and(|o| Some(o) == read_regular(path))
    };
    match (same, read_by_the_build(&theirs), ours_is_file) {
        (true, _, _) => Sorted::Workbook,
        (false, true, true) => Sorted::Refused("changed"),
        (false, true, false) => Sorted::Refused("not in the workbook"),
        (false, false, _) => Sorted::Ignored,
    }
}

/// A path as a message shows it: on one line (control characters
/// escaped, so that a file name cannot forge a line of the report), and
/// shortened when long.
fn shown(path: &Path) -> String {
    let text: String = path
        .to_string_lossy()
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect();
    const LONGEST: usize = 160;
    if text.chars().count() <= LONGEST {
        return text;
    }
    let tail: String = text
        .chars()
        .rev()
        .take(LONGEST)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("...{tail}")
}

/// An I/O error as a student reads it, without the grader's paths.
fn plain_error(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(nix::libc::ENAMETOOLONG) => "its path is too long".into(),
        Some(nix::libc::EACCES) => "unreadable".into(),
        _ => e.kind().to_string(),
    }
}

/// The bytes of the regular file at `path`, never following a link nor
/// blocking on a FIFO put in its place since it was looked at.
fn read_regular(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() > MAX_FILE_BYTES {
        return None;
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes).ok()?;
    Some(bytes)
}

/// Sorted, at most [`LISTED`], joined with commas.
fn listed(mut paths: Vec<String>) -> String {
    paths.sort();
    let more = paths.len().saturating_sub(LISTED);
    paths.truncate(LISTED);
    let mut text = paths.join(", ");
    if more > 0 {
        text.push_str(&format!(" and {more} more"));
    }
    text
}

/// What archivers and file browsers add, never the student's work.
fn clutter(name: &str) -> bool {
    matches!(name, "__MACOSX" | ".DS_Store" | "Thumbs.db") || name.starts_with("._")
}

/// The submission's real top: a single folder around everything (apart
/// from clutter) is unwrapped, unless it is named as one of the layouts'.
fn unwrap(dir: &Path) -> Result<PathBuf, String> {
    let mut top = dir.to_path_buf();
    for _ in 0..MAX_WRAPPERS {
        let entries: Vec<_> = std::fs::read_dir(&top)
            .map_err(|e| format!("{}: {e}", top.display()))?
            .flatten()
            .filter(|e| {
                let name = e.file_name();
                !clutter(&name.to_string_lossy()) && name != ".git" && name != "target"
            })
            .collect();
        let [only] = entries.as_slice() else {
            break;
        };
        let name = only.file_name();
        let named = name == "exercises"
            || name == "src"
            || name.to_string_lossy().starts_with('.')
            || STEPS.iter().any(|s| name == *s);
        // Not followed if it is a link.
        if named || !only.file_type().is_ok_and(|t| t.is_dir()) {
            break;
        }
        top = only.path();
    }
    Ok(top)
}

/// Which layout the folder at `top` has.
fn layout(top: &Path, graded: &[&'static str]) -> Result<Layout, String> {
    let is_dir = |name: &str| std::fs::symlink_metadata(top.join(name)).is_ok_and(|m| m.is_dir());
    if is_dir("exercises") {
        return Ok(Layout::Workbook);
    }
    if STEPS.iter().any(|s| is_dir(s)) {
        return Ok(Layout::StepFolders);
    }
    let loose: Vec<String> = std::fs::read_dir(top)
        .map_err(|e| format!("{}: {e}", top.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name == "src" || (name.ends_with(".rs") && name != "build.rs"))
        .collect();
    match (graded, loose.first()) {
        (_, None) => Ok(Layout::StepFolders),
        ([step], Some(_)) => Ok(Layout::OneStep(step)),
        (_, Some(first)) => Err(format!(
            "submission refused: {} is not in a step's folder, and {} steps are graded, \
             so which step it is for is unknown; upload each step's sources in its folder, \
             such as ex1_fibonacci_child/src/main.rs",
            shown(Path::new(first)),
            graded.len()
        )),
    }
}

/// Where the file at `relative` in the submission would be in the
/// workbook.
fn in_workbook(relative: &Path, layout: Layout, release: &Release) -> PathBuf {
    match layout {
        Layout::Workbook => relative.to_path_buf(),
        Layout::StepFolders => Path::new("exercises").join(relative),
        Layout::OneStep(step) => {
            let folder = Path::new("exercises").join(step);
            let name = relative.file_name().unwrap_or_default();
            let loose_source = relative.parent() == Some(Path::new(""))
                && name != "build.rs"
                && relative.extension().is_some_and(|e| e == "rs");
            if !loose_source {
                return folder.join(relative);
            }
            // A loose `x.rs` goes where the released `x.rs` is, if the
            // step has one and only one; else into `src/`.
            let direct = folder.join("src").join(name);
            let named: Vec<&Path> = release
                .files_of(step)
                .filter(|f| f.file_name() == Some(name))
                .collect();
            match named.as_slice() {
                [only] if !named.contains(&direct.as_path()) => only.to_path_buf(),
                _ => direct,
            }
        }
    }
}

/// `exercises/<step>/src/<rest>` becomes `<step>/src/<rest>`.
fn source(in_workbook: &Path) -> Option<PathBuf> {
    let relative = in_workbook.strip_prefix("exercises").ok()?;
    let mut parts = relative.components();
    let step = parts.next()?.as_os_str().to_str()?;
    let src = parts.next()?.as_os_str();
    let rest = parts.as_path();
    let plain = rest.components().all(|c| matches!(c, Component::Normal(_)));
    (STEPS.contains(&step) && src == "src" && plain && !rest.as_os_str().is_empty())
        .then(|| Path::new(step).join("src").join(rest))
}

/// Whether a clone's top manifest is the workbook's, but for the
/// workspace's members, which the checkout lays out itself (the
/// autograder's workbook lists no solutions; a student's clone does).
fn same_workspace(theirs: &Path, ours: &Path) -> bool {
    let read = |path: &Path| -> Option<toml::Table> {
        let metadata = std::fs::metadata(path).ok()?;
        if metadata.len() > MAX_FILE_BYTES {
            return None;
        }
        let mut table = toml::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
        exercises_only(&mut table).ok()?;
        Some(table)
    };
    match (read(theirs), read(ours)) {
        (Some(theirs), Some(ours)) => theirs == ours,
        _ => false,
    }
}

/// Makes a workspace manifest's members the exercises alone.
fn exercises_only(table: &mut toml::Table) -> Result<(), String> {
    let workspace = table
        .get_mut("workspace")
        .and_then(|w| w.as_table_mut())
        .ok_or("no [workspace]")?;
    workspace.insert(
        "members".into(),
        toml::Value::Array(vec!["exercises/*".into()]),
    );
    workspace.remove("default-members");
    workspace.remove("exclude");
    Ok(())
}

/// Whether cargo would read the file at `in_workbook` if it were used:
/// manifests, build scripts, cargo settings and toolchain files.
fn read_by_the_build(in_workbook: &Path) -> bool {
    let name = in_workbook
        .file_name()
        .unwrap_or_default()
        .to_string_lossy();
    name == "Cargo.toml"
        || name == "build.rs"
        || name.starts_with("rust-toolchain")
        || in_workbook.components().any(|c| c.as_os_str() == ".cargo")
}

/// Lays out the checkout a submission is graded in, `dir` (outside the
/// workbook): a workspace of the exercises alone (the workbook's manifest
/// with `exercises/*` as its only members, and its lock file), the
/// workbook's `exercises/` with every step's `src/` as released, and the
/// submission over it.
///
/// Every step stays a member, so that the lock file fits; a step the
/// submission leaves out is not built, so where its released sources are
/// not to be had its `src/` is the checkout's. A step it holds is built,
/// so each released file it leaves out must be had, or nothing is graded.
pub fn checkout(
    workbook: &Path,
    dir: &Path,
    release: &Release,
    placements: &[Placement],
) -> Result<(), String> {
    let dir = dir.to_path_buf();
    let io = |path: &Path, e: std::io::Error| format!("{}: {e}", path.display());
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let manifest = workbook.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).map_err(|e| io(&manifest, e))?;
    let mut table: toml::Table =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", manifest.display()))?;
    exercises_only(&mut table).map_err(|e| format!("{}: {e}", manifest.display()))?;
    let text = format!(
        "# Made by `cargo xtask grade --submission`: the exercises alone.\n{}",
        toml::to_string(&table).map_err(|e| e.to_string())?
    );
    std::fs::write(dir.join("Cargo.toml"), text).map_err(|e| io(&dir, e))?;
    let lock = workbook.join("Cargo.lock");
    if lock.is_file() {
        std::fs::copy(&lock, dir.join("Cargo.lock")).map_err(|e| io(&lock, e))?;
    }
    let exercises = dir.join("exercises");
    if exercises.exists() {
        std::fs::remove_dir_all(&exercises).map_err(|e| io(&exercises, e))?;
    }
    copy_sources(&workbook.join("exercises"), &exercises, 0)?;
    for step in STEPS {
        let placed: BTreeSet<&Path> = placements
            .iter()
            .filter(|p| p.to.starts_with(step))
            .map(|p| p.to.as_path())
            .collect();
        for file in release.files_of(step) {
            let to = dir.join(file);
            let inside = file.strip_prefix("exercises").unwrap_or(file);
            // The submission's own layout wins: a file where the release
            // has a folder, or a folder where it has a file.
            let in_the_way = placed
                .iter()
                .any(|p| inside.starts_with(p) || p.starts_with(inside));
            if in_the_way && !placed.contains(inside) {
                continue;
            }
            let bytes = match release.content(file) {
                Ok(bytes) => bytes,
                Err(_) if placed.contains(inside) => continue,
                Err(why) if !placed.is_empty() => return Err(why),
                // Not built, and never the checkout's copy (it may be a
                // solution, which the build could read): cargo's reading
                // of the workspace needs only that the file is there.
                // A `main` keeps it a binary that builds, for the store,
                // which compiles every step once for its dependencies.
                Err(_) => b"// Not in the submission: never graded.\nfn main() {}\n".to_vec(),
            };
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
            }
            std::fs::write(&to, bytes).map_err(|e| io(&to, e))?;
        }
    }
    place(placements, &exercises)?;
    Ok(())
}

/// Copies a tree's regular files, build output and (one level down, in a
/// step's folder) its `src/` aside: those are laid out as released.
fn copy_sources(from: &Path, into: &Path, depth: usize) -> Result<(), String> {
    std::fs::create_dir_all(into).map_err(|e| format!("{}: {e}", into.display()))?;
    let entries = std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))?;
    for entry in entries.flatten() {
        let (path, name) = (entry.path(), entry.file_name());
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() && name != "target" && !(depth == 1 && name == "src") {
            copy_sources(&path, &into.join(&name), depth + 1)?;
        } else if kind.is_file() {
            std::fs::copy(&path, into.join(&name))
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(())
}

/// Copies a checked submission over `exercises`; returns how many files.
fn place(placements: &[Placement], exercises: &Path) -> Result<usize, String> {
    for placement in placements {
        let to = exercises.join(&placement.to);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        // Copied, never linked: the grader's copy must not change with the
        // submission's folder.
        std::fs::copy(&placement.from, &to)
            .map_err(|e| format!("{} -> {}: {e}", placement.from.display(), to.display()))?;
    }
    Ok(placements.len())
}

#[cfg(test)]
mod tests;
