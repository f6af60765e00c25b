//! Where the tree to grade comes from: this checkout, another one
//! (`--workspace`), or a student's submission (`--submission`) laid out
//! over the workbook as released (`released`) in a slot of the workbook's
//! own store (`store`), once its files have passed the checks of
//! `submission`. A refusal is the submission's grade, not an error.

pub mod released;
pub mod store;
pub mod submission;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::grade::jail;

/// What the command line asked for, of a source.
pub struct Asked<'a> {
    pub submission: Option<&'a Path>,
    pub workspace: Option<&'a Path>,
    pub solutions: bool,
    /// Where `--submission` lays out its checkout (a class's slot).
    pub checkout: Option<&'a Path>,
}

/// The tree to build and grade, and what holds it.
pub struct Source {
    pub dir: PathBuf,
    /// `--submission`: the slot it is laid out and built in, locked while
    /// this lives.
    pub slot: Option<store::Slot>,
    /// `--submission`: the steps it holds (the others are not built).
    provided: Option<BTreeSet<&'static str>>,
    /// What the grader wants said (where cases run, what the submission
    /// and the checkout's skeletons call for).
    pub notes: Vec<String>,
}

impl Source {
    /// The tree to grade, or a refusal of the submission (`Ok(Err(..))`).
    pub fn lay_out(
        asked: &Asked,
        root: &Path,
        steps: &[&'static str],
    ) -> Result<Result<Self, String>, String> {
        // Before anything is built: where the cases' programs can reach.
        let case_temp = jail::case_temp_dir()?;
        let mut source = Source {
            dir: root.to_path_buf(),
            slot: None,
            provided: None,
            notes: case_temp.note.iter().cloned().collect(),
        };
        match (asked.submission, asked.workspace) {
            (Some(_), Some(_)) => return Err("give --submission or --workspace, not both".into()),
            (Some(_), None) if asked.solutions => {
                return Err("--submission grades a student's steps, not --solutions".into())
            }
            (Some(dir), None) => {
                let release = released::Release::load(root)?;
                let accepted = match submission::check(dir, root, steps, &release) {
                    Ok(accepted) => accepted,
                    Err(refusal) => return Ok(Err(refusal)),
                };
                let dir = match asked.checkout {
                    Some(dir) => dir.to_path_buf(),
                    None => store::area(root)?.join("submission"),
                };
                let taken = store::Slot::take(&dir)?;
                submission::checkout(root, &taken.checkout, &release, &accepted.placements)?;
                source.notes.extend(release.note());
                source.notes.extend(accepted.note);
                source.provided = Some(accepted.steps);
                source.dir = taken.checkout.clone();
                source.slot = Some(taken);
            }
            (None, Some(dir)) if !dir.is_dir() => {
                return Err(format!("--workspace {}: no such directory", dir.display()))
            }
            (None, Some(dir)) => source.dir = dir.to_path_buf(),
            (None, None) => {}
        }
        Ok(Ok(source))
    }

    /// Whether the tree holds `step` (a step a submission leaves out is
    /// not built: it scores 0, as its skeleton would, whatever the
    /// checkout's `exercises/` holds).
    pub fn holds(&self, step: &str) -> bool {
        self.provided.as_ref().is_none_or(|p| p.contains(step))
    }
}
