//! `cargo xtask solution STEP`: where the reference solution is, and how
//! it differs from the learner's files; only once the step passes, unless
//! `--force` (which says first what it gives away).

use std::io::IsTerminal;
use std::path::Path;

use super::progress::Progress;
use crate::project;

pub fn run(step: &str, force: bool) -> Result<(), String> {
    let step = project::find_step(step)?;
    let root = project::root();
    let progress = Progress::read(&root).ok().flatten();
    let done = progress
        .as_ref()
        .is_some_and(|p| p.is_done_now(&root, step));
    if !done && !force {
        let state = progress
            .as_ref()
            .and_then(|p| p.steps.get(step))
            .map_or("not graded yet".to_string(), |r| r.state.describe());
        return Err(format!(
            "{step} is not done yet ({state}): the solution is shown once your program passes \
             (`cargo xtask watch`), or with --force"
        ));
    }
    if !done {
        eprintln!(
            "--force: this shows the whole reference solution of {step} before yours passes: \
             every piece the lab sheet and the hints leave you to work out, given away."
        );
    }
    let solution = root.join("solutions").join(step).join("src");
    let mine = root.join("exercises").join(step).join("src");
    let files = super::files_under(&solution);
    println!("the reference solution: {}", shown(&root, &solution));
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    for file in files {
        let relative = file.strip_prefix(&solution).unwrap_or(&file);
        let theirs =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let ours = std::fs::read_to_string(mine.join(relative)).unwrap_or_default();
        println!("\n{}:", shown(&root, &file));
        if ours == theirs {
            println!("  the same as yours");
            continue;
        }
        let patch = diffy::create_patch(&ours, &theirs);
        let text = patch.to_string();
        // Skip diffy's own `--- original`/`+++ modified` header: ours names the files.
        println!("--- yours: exercises/{step}/src/{}", relative.display());
        println!(
            "+++ the reference: solutions/{step}/src/{}",
            relative.display()
        );
        for line in text.lines().skip(2) {
            let painted = match line.chars().next() {
                Some('+') if colour => format!("\x1b[32m{line}\x1b[0m"),
                Some('-') if colour => format!("\x1b[31m{line}\x1b[0m"),
                Some('@') if colour => format!("\x1b[36m{line}\x1b[0m"),
                _ => line.to_string(),
            };
            println!("{painted}");
        }
    }
    Ok(())
}

fn shown(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}
