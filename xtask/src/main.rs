//! `cargo xtask`: the workbook's own tasks, in Rust, run through Cargo.
//!
//! - `cargo xtask list`, `watch [STEP]`, `hint STEP [LEVEL]`, `reset STEP`
//!   and `solution STEP`: the learner's loop (`learn/`, `hint.rs`).
//! - `cargo xtask trace STEP [-- ARGS]` draws what a step's processes did,
//!   as the grader's tracer saw it (`trace/`).
//! - `cargo xtask grade [STEP]` builds the students' steps (or, with
//!   `--solutions`, the reference ones), runs the cases in `tests/` and
//!   reports a score (`--format human|json|gradescope|junit`).
//! - `cargo xtask bench` builds the reference solutions in release mode and
//!   measures them beside baselines taken in the same run.
//! - `cargo xtask dev check` checks the workbook's own conventions (skeletons
//!   mirror solutions, lab sheets are complete, forks are justified).
//!
//! The alias lives in `.cargo/config.toml`; each subcommand has a module.

mod bench;
mod conventions;
pub mod grade;
mod hint;
mod learn;
mod project;
mod trace;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The workbook's own tasks: grade the lab steps, print hints, check the
/// workbook's conventions, and measure the steps with speed goals.
#[derive(Parser)]
#[command(name = "cargo xtask", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build and grade the lab steps against the cases in `tests/`.
    ///
    /// Exits with status 0 only when every selected case passed.
    Grade(grade::Options),
    /// Run one case and print what happened, as TOML (used by `grade`).
    /// Without a case file, the request (case, binaries, ...) is read as
    /// TOML from stdin: the grader's way, so that no path shows on the
    /// command line, which every process may read.
    #[command(hide = true)]
    GradeCase {
        case: Option<PathBuf>,
        #[arg(long, requires = "case")]
        bins: Option<PathBuf>,
        #[arg(long, requires = "case")]
        probe: Option<PathBuf>,
        #[arg(long, default_value = "")]
        suffix: String,
        #[arg(long, default_value = "")]
        step: String,
        #[arg(long)]
        no_trace: bool,
    },
    /// Enter a case's jail and print the isolation that held (used by `grade`).
    #[command(hide = true)]
    SandboxProbe,
    /// Every step with its state (not started, failing, done), the next
    /// one to do and its lab sheet.
    List {
        /// Print it as JSON, for tools.
        #[arg(long)]
        json: bool,
        /// Grade again the steps edited since they were last graded.
        #[arg(long)]
        refresh: bool,
    },
    /// Work on a step: it is graded each time you save one of its files,
    /// and the next one comes when it passes. Keys: h hint, l list, n next
    /// step, r re-grade, x reset the screen, q quit.
    Watch {
        /// The step to start with [default: the first not done].
        step: Option<String>,
    },
    /// Put a step's skeleton back, as released; your files are kept as a
    /// numbered backup (`backups/STEP/N/`).
    Reset {
        /// The step: its full name or a unique prefix, such as `ex3`.
        step: String,
        /// Do not ask first.
        #[arg(long, short)]
        yes: bool,
    },
    /// Where a step's reference solution is, and how it differs from
    /// yours: once your step passes.
    Solution {
        /// The step: its full name or a unique prefix, such as `ex3`.
        step: String,
        /// Show it before your step passes (it gives the step away).
        #[arg(long)]
        force: bool,
    },
    /// Run a step's program in the grader's sandbox and tracer, and draw
    /// what its processes did: forks, signals, pipes, stops, exits.
    Trace(trace::Options),
    /// Print the hints for a lab step, gentlest first.
    Hint {
        /// The step: its full name or a unique prefix, such as `ex3`.
        step: String,
        /// How many hints to show.
        #[arg(default_value_t = 1)]
        level: usize,
        /// Show every hint.
        #[arg(long)]
        all: bool,
    },
    /// The workbook's maintainers' tasks (not for learners: they check the
    /// workbook as shipped, and fail on a learner's progress).
    Dev {
        #[command(subcommand)]
        task: DevTask,
    },
    /// The same as `dev check`, under its old name (scripts use it).
    #[command(hide = true)]
    Check {
        #[arg(long)]
        bless: bool,
    },
    /// Measure the steps with speed goals against same-run baselines.
    Bench {
        /// Only this benchmark: `ex3`, `ex5`, `ex7`, `ex8`, `ex9`, `grade` or `class`.
        only: Option<String>,
        /// Fewer repetitions, for a quick look.
        #[arg(long)]
        quick: bool,
    },
}

/// Maintainers' tasks.
#[derive(Subcommand)]
enum DevTask {
    /// Check the workbook as shipped (for maintainers): skeletons mirror
    /// solutions, every place to write is marked, lab sheets are complete
    /// and document every line the cases expect, and every untouched
    /// skeleton grades as "not started". Needs untouched skeletons: once
    /// you have started the exercises, it reports your progress as problems.
    Check {
        /// Record the skeletons as released (`xtask/released-skeletons.txt`,
        /// what a step left out of a submission is graded as), once they
        /// pass the other checks: after changing a skeleton on purpose.
        #[arg(long)]
        bless: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Grade(options) => {
            let graded = match &options.submissions {
                Some(class) => grade::class::run(&options, class),
                None => grade::run(&options),
            };
            match graded {
                Ok(true) => Ok(()),
                Ok(false) => return ExitCode::from(1),
                Err(e) => Err(e),
            }
        }
        Command::GradeCase {
            case,
            bins,
            probe,
            suffix,
            step,
            no_trace,
        } => match (case, bins, probe) {
            (Some(case), Some(bins), Some(probe)) => {
                let request = grade::facts::CaseRequest {
                    case,
                    bins,
                    probe,
                    suffix,
                    step,
                    trace: !no_trace,
                    jail: grade::facts::JailRequest::Whole,
                };
                grade::keeper::run_case_command(&request)
            }
            (None, None, None) => grade::facts::CaseRequest::from_stdin()
                .and_then(|request| grade::keeper::run_case_command(&request)),
            _ => Err("grade-case: give a case file, --bins and --probe, or none of them (request on stdin)".into()),
        },
        Command::SandboxProbe => grade::jail::probe_command(),
        Command::List { json, refresh } => learn::list::run(json, refresh),
        Command::Watch { step } => learn::watch::run(step.as_deref()),
        Command::Reset { step, yes } => learn::reset::run(&step, yes),
        Command::Solution { step, force } => learn::solution::run(&step, force),
        Command::Trace(options) => trace::run(&options),
        Command::Hint { step, level, all } => {
            hint::run(&step, if all { usize::MAX } else { level })
        }
        Command::Dev {
            task: DevTask::Check { bless },
        }
        | Command::Check { bless } => conventions::run(bless).and_then(|()| grade::check_skeletons()),
        Command::Bench { only, quick } => bench::run(only.as_deref(), quick),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {}", grade::printable(&message));
            ExitCode::from(1)
        }
    }
}
