//! `cargo xtask reset STEP`: puts a step's skeleton back, as released,
//! after asking; the learner's files go to a numbered backup that it names
//! (`backups/STEP/N/`), never away.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use super::progress::{Progress, StepState};
use crate::grade::source::released::Release;
use crate::project;

pub fn run(step: &str, yes: bool) -> Result<(), String> {
    let step = project::find_step(step)?;
    let root = project::root();
    let release = Release::load(&root)?;
    let src = root.join("exercises").join(step).join("src");
    let released: Vec<PathBuf> = release.files_of(step).map(Path::to_path_buf).collect();
    // What would change: released files that differ, and files the
    // learner added.
    let mut changed = Vec::new();
    for file in &released {
        let skeleton = release.content(file)?;
        if std::fs::read(root.join(file)).ok().as_deref() != Some(&skeleton[..]) {
            changed.push(file.clone());
        }
    }
    for file in super::files_under(&src) {
        let relative = file.strip_prefix(&root).unwrap_or(&file).to_path_buf();
        if !released.contains(&relative) {
            changed.push(relative);
        }
    }
    if changed.is_empty() {
        println!("{step} is already its skeleton: nothing to reset");
        return Ok(());
    }
    let backup = next_backup(&root, step);
    let shown = backup
        .strip_prefix(&root)
        .unwrap_or(&backup)
        .display()
        .to_string();
    println!("reset {step} to its skeleton? these files go to {shown}/:");
    for file in &changed {
        println!("  {}", file.display());
    }
    if !yes && !confirmed()? {
        println!("nothing changed");
        return Ok(());
    }
    for file in &changed {
        let from = root.join(file);
        if from.exists() {
            let inside = file
                .strip_prefix(Path::new("exercises").join(step))
                .unwrap_or(file);
            let to = backup.join(inside);
            std::fs::create_dir_all(to.parent().unwrap())
                .map_err(|e| format!("{}: {e}", backup.display()))?;
            std::fs::copy(&from, &to).map_err(|e| format!("{}: {e}", to.display()))?;
        }
    }
    for file in &changed {
        let path = root.join(file);
        if released.contains(file) {
            std::fs::create_dir_all(path.parent().unwrap())
                .map_err(|e| format!("{}: {e}", path.display()))?;
            std::fs::write(&path, release.content(file)?)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        } else {
            std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    // The released skeleton grades as not started (`dev check` holds it).
    if let Ok(Some(mut progress)) = Progress::read(&root) {
        progress.record(&root, vec![(step, StepState::NotStarted)])?;
    }
    println!("{step} is its skeleton again; your files are in {shown}/");
    Ok(())
}

/// Asks on the terminal; refuses without one (say `--yes`).
fn confirmed() -> Result<bool, String> {
    if !std::io::stdin().is_terminal() {
        return Err(
            "reset asks before it changes anything: run it in a terminal, or give --yes".into(),
        );
    }
    print!("[y/N] ");
    std::io::stdout().flush().ok();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| e.to_string())?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// `backups/STEP/N`, the first N not taken.
fn next_backup(root: &Path, step: &str) -> PathBuf {
    let dir = root.join("backups").join(step);
    (1..)
        .map(|n| dir.join(n.to_string()))
        .find(|d| !d.exists())
        .unwrap()
}
