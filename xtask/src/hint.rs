//! `cargo xtask hint`: hints live in `exercises/hints.toml`, not in code.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::project;

#[derive(Deserialize)]
struct StepHints {
    hints: Vec<String>,
}

pub fn load() -> Result<BTreeMap<String, Vec<String>>, String> {
    let path = project::root().join("exercises/hints.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let table: BTreeMap<String, StepHints> =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(table.into_iter().map(|(step, h)| (step, h.hints)).collect())
}

pub fn run(step: &str, level: usize) -> Result<(), String> {
    let step = project::find_step(step)?;
    let all = load()?;
    let hints = all.get(step).ok_or(format!("no hints for {step}"))?;
    let shown = level.clamp(1, hints.len());
    for (n, hint) in hints.iter().take(shown).enumerate() {
        println!("hint {} of {}: {hint}\n", n + 1, hints.len());
    }
    if shown < hints.len() {
        let short = &step[..3];
        println!("more: cargo xtask hint {short} {}", shown + 1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_has_hints() {
        let all = load().unwrap();
        for step in project::STEPS {
            let hints = all
                .get(step)
                .unwrap_or_else(|| panic!("no hints for {step}"));
            assert!(hints.len() >= 3, "{step} has {} hints", hints.len());
        }
        assert_eq!(all.len(), project::STEPS.len(), "hints for an unknown step");
    }
}
