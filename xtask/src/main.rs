//! `cargo xtask`: the workbook's own tasks, in Rust, run through Cargo.
//!
//! - `cargo xtask hint STEP [LEVEL]` prints a step's hints, gentlest first.
//! - `cargo xtask grade [STEP]` builds the students' steps (or, with
//!   `--solutions`, the reference ones), runs the cases in `tests/` and
//!   reports a score (`--format human|json|gradescope|junit`).
//! - `cargo xtask bench` builds the reference solutions in release mode and
//!   measures them beside baselines taken in the same run.
//! - `cargo xtask check` checks the workbook's own conventions (skeletons
//!   mirror solutions, lab sheets are complete, forks are justified).
//!
//! The alias lives in `.cargo/config.toml`; each subcommand has a module.

mod bench;
mod conventions;
pub mod grade;
mod hint;
mod project;

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
    Grade {
        /// Only this step: its full name or a unique prefix, such as `ex2`.
        step: Option<String>,
        /// Grade the reference solutions instead of `exercises/`.
        #[arg(long)]
        solutions: bool,
        /// Read the cases from DIR instead of this checkout's `tests/`.
        /// DIR holds one folder per step (`DIR/ex1_fibonacci_child/*.toml`):
        /// an instructor's private cases, for example.
        #[arg(long, value_name = "DIR")]
        tests: Option<PathBuf>,
        /// How many cases to run at once [default: one per CPU]. More than
        /// one per CPU makes timing-sensitive cases depend on the load.
        #[arg(long, short)]
        jobs: Option<usize>,
        /// List the cases that passed too.
        #[arg(long, short)]
        verbose: bool,
        /// Do not trace the programs (ptrace): check their output only.
        #[arg(long)]
        no_trace: bool,
        /// Build and grade the steps in another checkout of the workbook
        /// (a student's), with this checkout's cases.
        #[arg(long, value_name = "DIR")]
        workspace: Option<PathBuf>,
        /// `auto`: isolate the programs as far as this machine allows, and
        /// say what is missing; `require`: refuse to grade unless every
        /// piece of isolation is in force (for instructors).
        #[arg(long, value_name = "MODE", default_value = "auto")]
        sandbox: grade::SandboxMode,
        /// How long a submission's build (`--workspace`) may take, in
        /// seconds, before it is stopped.
        #[arg(long, value_name = "SECONDS", default_value_t = grade::sandbox::BUILD_TIME_LIMIT.as_secs())]
        build_time_limit: u64,
        /// Grade one student's submission: the steps' sources only
        /// (`ex1_fibonacci_child/src/main.rs`...), placed over a fresh copy
        /// of `exercises/` in a checkout of its own (in `target/xtask-grade`),
        /// built in the sandbox. Anything else in DIR refuses it whole, and
        /// every case scores 0. One at a time per workbook (a second waits).
        #[arg(long, value_name = "DIR", conflicts_with_all = ["workspace", "solutions"])]
        submission: Option<PathBuf>,
        /// Grade a whole class: each subfolder of DIR is one student's
        /// submission (as for `--submission`). Writes `grades.csv` and one
        /// report per student (in `--format`) to `--output-dir`. `--jobs`
        /// then says how many submissions are graded at once [default: two
        /// per CPU, each running its cases one at a time].
        #[arg(long, value_name = "DIR", conflicts_with_all = ["workspace", "solutions", "submission", "output"])]
        submissions: Option<PathBuf>,
        /// With `--submissions`: where the gradebook and the reports go
        /// [default: DIR-grades beside DIR].
        #[arg(long, value_name = "DIR", requires = "submissions")]
        output_dir: Option<PathBuf>,
        /// With `--workspace`: start the build from the dependencies
        /// compiled once into the workbook's store
        /// (`target/xtask-grade/store`, shared read-only), instead of
        /// compiling them again. `--submission` and `--submissions` always
        /// do.
        #[arg(long, conflicts_with_all = ["submissions", "solutions"])]
        prebuilt_dependencies: bool,
        /// Where `--submission` lays out its checkout (used by `--submissions`).
        #[arg(long, value_name = "DIR", hide = true, requires = "submission")]
        checkout: Option<PathBuf>,
        /// Also write the json report to FILE (used by `--submissions`).
        #[arg(long, value_name = "FILE", hide = true)]
        outcome_json: Option<PathBuf>,
        /// The report's format: `human` (for people), `json` (this
        /// workbook's schema, versioned), `gradescope` (an autograder's
        /// results.json) or `junit` (JUnit XML, for CI).
        #[arg(long, value_enum, default_value = "human")]
        format: grade::report::Format,
        /// Write the report to FILE (stdout then gets the human report).
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
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
    /// Measure the steps with speed goals against same-run baselines.
    Bench {
        /// Only this benchmark: `ex3`, `ex5`, `grade` or `class`.
        only: Option<String>,
        /// Fewer repetitions, for a quick look.
        #[arg(long)]
        quick: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Grade {
            step,
            solutions,
            tests,
            jobs,
            verbose,
            no_trace,
            workspace,
            sandbox,
            build_time_limit,
            submission,
            submissions,
            output_dir,
            checkout,
            outcome_json,
            prebuilt_dependencies,
            format,
            output,
        } => {
            if let Some(submissions) = submissions {
                let options = grade::class::Options {
                    submissions,
                    output_dir,
                    jobs,
                    step,
                    tests,
                    no_trace,
                    sandbox,
                    format,
                };
                return match grade::class::run(&options) {
                    Ok(true) => ExitCode::SUCCESS,
                    Ok(false) => ExitCode::from(1),
                    Err(e) => {
                        eprintln!("xtask: {e}");
                        ExitCode::from(1)
                    }
                };
            }
            let options = grade::Options {
                step,
                solutions,
                tests,
                jobs,
                verbose,
                no_trace,
                workspace,
                sandbox,
                build_time_limit: std::time::Duration::from_secs(build_time_limit),
                submission,
                format,
                output,
                checkout,
                outcome_json,
                prebuilt_dependencies,
            };
            match grade::run(&options) {
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
                };
                grade::run_case_command(&request)
            }
            (None, None, None) => grade::facts::CaseRequest::from_stdin()
                .and_then(|request| grade::run_case_command(&request)),
            _ => Err("grade-case: give a case file, --bins and --probe, or none of them (request on stdin)".into()),
        },
        Command::SandboxProbe => grade::sandbox::probe_command(),
        Command::Hint { step, level, all } => {
            hint::run(&step, if all { usize::MAX } else { level })
        }
        Command::Check { bless } => conventions::run(bless).and_then(|()| grade::check_skeletons()),
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
