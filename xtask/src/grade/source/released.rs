//! The skeletons as the workbook released them, whatever the grading
//! machine's `exercises/` holds now.
//!
//! An instructor's checkout often has steps solved in it (to try the
//! grader, or the reference solutions copied in). A grade of record must
//! not depend on that: a step a student left out, or a file of a step the
//! student did not send, is the released skeleton's. The release is
//! recorded in [`MANIFEST`]: one line per file under `exercises/<step>/src/`,
//! its git blob id (the SHA-1 of `blob LEN\0` and its bytes) and its path.
//! A file's released bytes are the checkout's own when their blob id
//! matches; otherwise git's object of that id, from the checkout's
//! history (`git cat-file`), checked against the id again. `cargo xtask
//! dev check` fails when the manifest and the skeletons disagree, and `cargo
//! xtask dev check --bless` rewrites it from the skeletons once they pass the
//! skeleton checks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::project::STEPS;

/// Where the manifest is, from the workbook's root.
pub const MANIFEST: &str = "xtask/released-skeletons.txt";

const HEADER: &str = "\
# The released skeletons: the git blob id and path of every file under
# exercises/<step>/src/, as the workbook ships them. A step a student leaves
# out is graded as these, never as the grading machine's exercises/.
# Checked by `cargo xtask dev check`; rewritten by `cargo xtask dev check --bless`.
";

/// The git blob id of `bytes`.
pub fn blob_id(bytes: &[u8]) -> String {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(format!("blob {}\0", bytes.len()).as_bytes());
    sha.update(bytes);
    sha.digest().to_string()
}

/// The released skeleton files, by path from the workbook's root.
pub struct Release {
    root: PathBuf,
    files: BTreeMap<PathBuf, String>,
}

impl Release {
    /// Reads the manifest of the workbook at `root`.
    pub fn load(root: &Path) -> Result<Self, String> {
        let path = root.join(MANIFEST);
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut files = BTreeMap::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || format!("{}:{}: expected `BLOB-ID PATH`", path.display(), number + 1);
            let (id, file) = line.split_once(' ').ok_or_else(bad)?;
            if id.len() != 40 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            files.insert(PathBuf::from(file.trim()), id.to_ascii_lowercase());
        }
        Ok(Self {
            root: root.to_path_buf(),
            files,
        })
    }

    /// The released files of `step`, as paths from the workbook's root.
    pub fn files_of<'a>(&'a self, step: &'a str) -> impl Iterator<Item = &'a Path> + 'a {
        let src = Path::new("exercises").join(step).join("src");
        self.files
            .keys()
            .filter(move |p| p.starts_with(&src))
            .map(PathBuf::as_path)
    }

    /// The released bytes of `file` (a path from the workbook's root).
    pub fn content(&self, file: &Path) -> Result<Vec<u8>, String> {
        let id = self
            .files
            .get(file)
            .ok_or_else(|| format!("{} is not in {MANIFEST}", file.display()))?;
        if let Ok(bytes) = std::fs::read(self.root.join(file)) {
            if blob_id(&bytes) == *id {
                return Ok(bytes);
            }
        }
        // Any repository's object will do: its bytes are checked against
        // the id, so a checkout owned by another user is safe to read too.
        let output = Command::new("git")
            .arg("-c")
            .arg(format!("safe.directory={}", self.root.display()))
            .arg("-C")
            .arg(&self.root)
            .args(["cat-file", "blob", id])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output();
        match output {
            Ok(out) if out.status.success() && blob_id(&out.stdout) == *id => Ok(out.stdout),
            _ => Err(format!(
                "{} is not the released skeleton, and no git history here holds the \
                 release: restore it (`git checkout -- {}`) to grade submissions",
                file.display(),
                file.display()
            )),
        }
    }

    /// The skeleton files of the checkout that are not as released:
    /// changed, missing, or not in the release.
    pub fn changed_in_checkout(&self) -> Vec<PathBuf> {
        let now = current(&self.root);
        let mut changed: Vec<PathBuf> = self
            .files
            .iter()
            .filter(|(file, id)| now.get(*file) != Some(*id))
            .map(|(file, _)| file.clone())
            .collect();
        changed.extend(now.keys().filter(|f| !self.files.contains_key(*f)).cloned());
        changed.sort();
        changed
    }

    /// The one-line note for a grading from a checkout whose skeletons are
    /// not the released ones; `None` when they are.
    pub fn note(&self) -> Option<String> {
        let changed = self.changed_in_checkout();
        let first = changed.first()?;
        let more = match changed.len() {
            1 => String::new(),
            n => format!(" and {} more", n - 1),
        };
        Some(format!(
            "this checkout's skeletons are not the released ones ({}{more}): \
             steps and files left out of a submission are graded as released",
            first.display()
        ))
    }
}

/// The blob ids of the checkout's skeleton files now.
fn current(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut files = BTreeMap::new();
    for step in STEPS {
        let src = Path::new("exercises").join(step).join("src");
        let mut stack = vec![src];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(root.join(&dir)) else {
                continue;
            };
            for entry in entries.flatten() {
                let relative = dir.join(entry.file_name());
                match entry.file_type() {
                    Ok(kind) if kind.is_dir() => stack.push(relative),
                    Ok(kind) if kind.is_file() => {
                        if let Ok(bytes) = std::fs::read(entry.path()) {
                            files.insert(relative, blob_id(&bytes));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    files
}

/// Problems with the manifest of the workbook at `root`, for `check`.
pub fn manifest_problems(root: &Path) -> Vec<String> {
    let release = match Release::load(root) {
        Ok(release) => release,
        Err(e) => return vec![e],
    };
    release
        .changed_in_checkout()
        .into_iter()
        .map(|file| {
            format!(
                "{}: not as recorded in {MANIFEST} (run `cargo xtask dev check --bless` if the \
                 skeleton changed on purpose)",
                file.display()
            )
        })
        .collect()
}

/// Rewrites the manifest from the checkout's skeletons.
pub fn bless(root: &Path) -> Result<usize, String> {
    let files = current(root);
    let mut text = String::from(HEADER);
    for (file, id) in &files {
        text.push_str(&format!("{id} {}\n", file.display()));
    }
    let path = root.join(MANIFEST);
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(files.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_ids_are_gits() {
        // As `git hash-object --stdin` gives them.
        assert_eq!(
            blob_id(b"hello\n"),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
        assert_eq!(blob_id(b""), "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
    }

    /// A skeleton solved after it was committed: its released bytes come
    /// from git's history; with the history gone, they cannot be had.
    #[test]
    fn a_changed_skeleton_is_read_from_git() {
        let root = std::env::temp_dir().join(format!("xtask-released-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let file = Path::new("exercises").join(STEPS[0]).join("src/main.rs");
        std::fs::create_dir_all(root.join(file.parent().unwrap())).unwrap();
        std::fs::create_dir_all(root.join("xtask")).unwrap();
        std::fs::write(root.join(&file), "todo!()\n").unwrap();
        let git = |args: &[&str]| {
            let status = Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@example.org", "-C"])
                .arg(&root)
                .args(args)
                .stdout(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success(), "git {args:?}");
        };
        git(&["init", "-q"]);
        git(&["add", "-A"]);
        git(&["commit", "-q", "-m", "released"]);
        assert_eq!(bless(&root).unwrap(), 1);
        let release = Release::load(&root).unwrap();
        assert_eq!(release.note(), None);
        std::fs::write(root.join(&file), "solved\n").unwrap();
        assert_eq!(release.content(&file).unwrap(), b"todo!()\n");
        assert!(release.note().unwrap().contains("main.rs"));
        assert_eq!(manifest_problems(&root).len(), 1);
        std::fs::remove_dir_all(root.join(".git")).unwrap();
        let why = release.content(&file).unwrap_err();
        assert!(why.contains("not the released skeleton"), "{why}");
        let _ = std::fs::remove_dir_all(&root);
    }
}
