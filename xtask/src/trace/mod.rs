//! `cargo xtask trace STEP [-- ARGS]`: runs a step's program (yours, or
//! the reference with `--solution`) as the grader runs a case, in its
//! sandbox and under its tracer, and draws what the processes did: one
//! lane per process, forks, signals from sender to receiver, bytes through
//! pipes and FIFOs, stops and continues, exits and reaps. In the terminal,
//! and with `--html FILE` as a page a browser opens.
//!
//! It is a grading of one case (`--case NAME`: one of the step's cases;
//! else one made of ARGS and `--stdin`), so the picture is the grader's own
//! evidence, in the sandbox's PIDs: `picture` makes it from the trace's
//! events, `terminal` and `html` only draw it. Nothing is scored.

pub mod html;
pub mod picture;
pub mod terminal;

use std::path::{Path, PathBuf};

use crate::grade::{self, facts::CaseRun, outcome::StepState};
use crate::project;
use picture::Picture;

/// What `cargo xtask trace` is asked.
#[derive(clap::Args)]
pub struct Options {
    /// The step: its full name or a unique prefix, such as `ex2`.
    pub step: String,
    /// Trace the reference solution instead of yours.
    #[arg(long)]
    pub solution: bool,
    /// Run one of the step's cases (its processes, input and script) by
    /// name, such as `exchange`, instead of ARGS.
    #[arg(long, value_name = "NAME")]
    pub case: Option<String>,
    /// Also trace the reference solution on the same run, drawn beside
    /// yours.
    #[arg(long, conflicts_with = "solution")]
    pub compare: bool,
    /// Also print every event the tracer recorded, one JSON object per
    /// line (the evidence the picture is drawn from).
    #[arg(long)]
    pub events: bool,
    /// Write the picture as one self-contained web page to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Text for the program's standard input (else it reads nothing).
    #[arg(long, value_name = "TEXT", conflicts_with = "case")]
    pub stdin: Option<String>,
    /// The program's arguments.
    #[arg(last = true, conflicts_with = "case")]
    pub args: Vec<String>,
}

pub fn run(options: &Options) -> Result<(), String> {
    let step = project::find_step(&options.step)?;
    let root = project::root();
    let cases = CaseDir::new(&root, step, options)?;
    let mut pictures = Vec::new();
    let sides: &[bool] = match (options.solution, options.compare) {
        (true, _) => &[true],
        (false, true) => &[false, true],
        (false, false) => &[false],
    };
    for &solution in sides {
        let (picture, run) = trace_one(step, &cases, solution)?;
        if options.events {
            for event in &run.events {
                println!(
                    "{}",
                    serde_json::to_string(event).map_err(|e| e.to_string())?
                );
            }
        }
        pictures.push(picture);
    }
    for (n, picture) in pictures.iter().enumerate() {
        if n > 0 {
            println!();
        }
        // What the programs printed, or named their files, never drives
        // the terminal: control characters are shown escaped.
        print!("{}", grade::printable(&terminal::draw(picture)));
    }
    if let Some(file) = &options.html {
        std::fs::write(file, html::page(&pictures))
            .map_err(|e| format!("{}: {e}", file.display()))?;
        println!("\nwrote {}: open it in a browser", file.display());
    }
    Ok(())
}

/// A cases folder holding the one case to run, as `grade --tests` reads
/// it; removed when dropped.
struct CaseDir {
    dir: PathBuf,
    /// What runs, for the title.
    what: String,
}

impl CaseDir {
    fn new(root: &Path, step: &str, options: &Options) -> Result<Self, String> {
        let dir = root
            .join("target/xtask-trace")
            .join(std::process::id().to_string());
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join(step)).map_err(|e| format!("{}: {e}", dir.display()))?;
        let (text, what) = match &options.case {
            Some(name) => {
                let file = root.join("tests").join(step).join(format!("{name}.toml"));
                let text = std::fs::read_to_string(&file).map_err(|_| {
                    format!(
                        "{step} has no case {name:?}: its cases are {}",
                        case_names(&root.join("tests").join(step)).join(", ")
                    )
                })?;
                (text, format!("case {name}"))
            }
            None => {
                let args: Vec<String> = options.args.iter().map(|a| toml_string(a)).collect();
                let stdin = options
                    .stdin
                    .as_deref()
                    .map_or(String::new(), |s| format!("stdin = {}\n", toml_string(s)));
                let text = format!(
                    "description = \"traced by cargo xtask trace\"\n\n[[process]]\nargs = [{}]\n{stdin}",
                    args.join(", ")
                );
                (
                    text,
                    format!("{step} {}", options.args.join(" "))
                        .trim()
                        .to_string(),
                )
            }
        };
        let case = dir.join(step).join("traced.toml");
        std::fs::write(&case, text).map_err(|e| format!("{}: {e}", case.display()))?;
        Ok(Self { dir, what })
    }
}

impl Drop for CaseDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn case_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".toml")
                .map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

/// A TOML basic string.
fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

/// Grades the one case, and makes the picture of its run.
fn trace_one(
    step: &'static str,
    cases: &CaseDir,
    solution: bool,
) -> Result<(Picture, CaseRun), String> {
    let options = grade::Options {
        step: Some(step.to_string()),
        tests: Some(cases.dir.clone()),
        solutions: solution,
        jobs: Some(1),
        ..Default::default()
    };
    let outcome = grade::grade(&options)?;
    let result = outcome
        .steps
        .into_iter()
        .next()
        .ok_or("nothing was graded")?;
    let whose = if solution { "the reference" } else { "yours" };
    match &result.state {
        StepState::Graded | StepState::NotStarted(_) => {}
        other => {
            return Err(format!(
                "{whose} cannot be traced: {}",
                other.diagnosis().unwrap_or("it was not graded")
            ))
        }
    }
    let case = result
        .cases
        .into_iter()
        .next()
        .ok_or("the case did not run")?;
    let run = case.run.ok_or_else(|| {
        case.not_run_because
            .unwrap_or_else(|| "the case did not run".into())
    })?;
    Ok((Picture::of(&format!("{whose}: {}", cases.what), &run), run))
}
