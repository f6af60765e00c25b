//! `cargo xtask grade`: build each step, run its cases, report a score.
//!
//! [`grade`] reads as the pipeline it is, each step a call into one room:
//! - **source**: where the tree comes from (this checkout, another one, or
//!   a student's submission laid out over the released skeletons:
//!   `submission`, `released`, `store`), or its refusal;
//! - **build**: building it, in its build jail (`build`, `jail`);
//! - **run**: each case in a keeper process of its own (`keeper`), several
//!   at once, jailed (`jail`) and traced (`observe`);
//! - **judge**: the case's expectations against what the keeper reported
//!   (`judge`);
//! - **report**: an [`outcome::Outcome`] (every case, its points and
//!   status), which the formats in `report` only print.
//!
//! The types that cross rooms are in `facts`; `case` is the cases as data.
//! A step that does not compile, or whose program stops at a `todo!()` in
//! every case, is reported as such without stopping the other steps. The
//! exit status is 0 only when every selected case passed.

pub mod build;
pub mod case;
pub mod class;
pub mod facts;
pub mod jail;
pub mod judge;
pub mod keeper;
mod observe;
pub mod outcome;
pub mod report;
pub mod source;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::project;
use case::Case;
pub use facts::SandboxMode;
use keeper::{run_queue, Places};
use outcome::{CaseOutcome, Isolation, Outcome, Status, StepOutcome, StepState};
pub use report::human::printable;
use report::Format;
use source::{Asked, Source};

/// What `cargo xtask grade` is asked, as clap reads it from the command
/// line: the field docs are the command's help. `class` reads the same
/// options for a whole class (`submissions`).
#[derive(clap::Args)]
pub struct Options {
    /// Only this step: its full name or a unique prefix, such as `ex2`.
    pub step: Option<String>,
    /// Grade the reference solutions instead of `exercises/`.
    #[arg(long)]
    pub solutions: bool,
    /// Read the cases from DIR instead of this checkout's `tests/`.
    /// DIR holds one folder per step (`DIR/ex1_fibonacci_child/*.toml`):
    /// an instructor's private cases, for example.
    #[arg(long, value_name = "DIR")]
    pub tests: Option<PathBuf>,
    /// How many cases to run at once [default: one per CPU]. More than
    /// one per CPU makes timing-sensitive cases depend on the load.
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// List the cases that passed too.
    #[arg(long, short)]
    pub verbose: bool,
    /// Do not trace the programs (ptrace): check their output only.
    #[arg(long)]
    pub no_trace: bool,
    /// Build and grade the steps in another checkout of the workbook
    /// (a student's), with this checkout's cases.
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// `auto`: isolate the programs as far as this machine allows, and
    /// say what is missing; `require`: refuse to grade unless every
    /// piece of isolation is in force (for instructors).
    #[arg(long, value_name = "MODE", default_value = "auto")]
    pub sandbox: SandboxMode,
    /// How long a submission's build (`--workspace`) may take, in
    /// seconds, before it is stopped.
    #[arg(long, value_name = "SECONDS", default_value_t = jail::BUILD_TIME_LIMIT.as_secs())]
    pub build_time_limit: u64,
    /// Grade one student's submission: the steps' sources only
    /// (`ex1_fibonacci_child/src/main.rs`...), placed over a fresh copy
    /// of `exercises/` in a checkout of its own (in `target/xtask-grade`),
    /// built in the sandbox. Anything else in DIR refuses it whole, and
    /// every case scores 0. One at a time per workbook (a second waits).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["workspace", "solutions"])]
    pub submission: Option<PathBuf>,
    /// Grade a whole class: each subfolder of DIR is one student's
    /// submission (as for `--submission`). Writes `grades.csv` and one
    /// report per student (in `--format`) to `--output-dir`. `--jobs`
    /// then says how many submissions are graded at once [default: two
    /// per CPU, each running its cases one at a time].
    #[arg(long, value_name = "DIR", conflicts_with_all = ["workspace", "solutions", "submission", "output"])]
    pub submissions: Option<PathBuf>,
    /// With `--submissions`: where the gradebook and the reports go
    /// [default: DIR-grades beside DIR].
    #[arg(long, value_name = "DIR", requires = "submissions")]
    pub output_dir: Option<PathBuf>,
    /// With `--workspace`: start the build from the dependencies
    /// compiled once into the workbook's store
    /// (`target/xtask-grade/store`, shared read-only), instead of
    /// compiling them again. `--submission` and `--submissions` always
    /// do.
    #[arg(long, conflicts_with_all = ["submissions", "solutions"])]
    pub prebuilt_dependencies: bool,
    /// Where `--submission` lays out its checkout (used by `--submissions`).
    #[arg(long, value_name = "DIR", hide = true, requires = "submission")]
    pub checkout: Option<PathBuf>,
    /// Also write the json report to FILE (used by `--submissions`).
    #[arg(long, value_name = "FILE", hide = true)]
    pub outcome_json: Option<PathBuf>,
    /// The report's format: `human` (for people), `json` (this
    /// workbook's schema, versioned), `gradescope` (an autograder's
    /// results.json) or `junit` (JUnit XML, for CI).
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// Write the report to FILE (stdout then gets the human report).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

impl Default for Options {
    /// The command line's own defaults (no argument given), so that they
    /// are written once, in the field attributes above.
    fn default() -> Self {
        let command = <Self as clap::Args>::augment_args(clap::Command::new("grade"));
        let matches = command.get_matches_from(["grade"]);
        <Self as clap::FromArgMatches>::from_arg_matches(&matches).expect("the defaults parse")
    }
}

/// Grades, then reports. Ok(true) only at full marks.
pub fn run(options: &Options) -> Result<bool, String> {
    let outcome = grade(options)?;
    publish(&outcome, options)?;
    Ok(outcome.all_passed())
}

/// Writes the report where it was asked for. With `--output`, stdout gets
/// the human report as well, for whoever reads the log.
fn publish(outcome: &Outcome, options: &Options) -> Result<(), String> {
    if let Some(file) = &options.outcome_json {
        let text = report::render(outcome, Format::Json, false)?;
        std::fs::write(file, text).map_err(|e| format!("{}: {e}", file.display()))?;
    }
    // A learner grading their own checkout, unless a submission or
    // another checkout is graded (an instructor's work).
    let learner = options.submission.is_none()
        && options.submissions.is_none()
        && options.workspace.is_none();
    let style = report::human::Style::detect().for_learner(learner);
    let human = || report::human::render(outcome, &style, options.verbose);
    match &options.output {
        None if options.format == Format::Human => print!("{}", human()),
        None => print!(
            "{}",
            report::render(outcome, options.format, options.verbose)?
        ),
        Some(file) => {
            let text = report::render(outcome, options.format, options.verbose)?;
            if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            std::fs::write(file, text).map_err(|e| format!("{}: {e}", file.display()))?;
            print!("{}", human());
        }
    }
    Ok(())
}

/// Builds every selected step, runs its cases, and says what became of
/// each: the whole grade, as data.
pub fn grade(options: &Options) -> Result<Outcome, String> {
    let started = Instant::now();
    // What an earlier grading killed outright left behind.
    for dir in jail::case_temp_dir()
        .map(|t| t.dir.clone())
        .into_iter()
        .chain([std::env::temp_dir()])
    {
        jail::leftovers::sweep(&dir);
    }
    let plan = Plan::of(options)?;
    // Where the submission comes from: laid out, or refused (a refusal is
    // a grade: every case at 0, so that a report is still written).
    let laid_out = Source::lay_out(
        &Asked {
            submission: options.submission.as_deref(),
            workspace: options.workspace.as_deref(),
            solutions: options.solutions,
            checkout: options.checkout.as_deref(),
        },
        &plan.root,
        &plan.steps,
    )?;
    let source = match laid_out {
        Ok(source) => source,
        Err(refusal) => return Ok(refused(&plan.steps, &plan.tests, refusal, started)),
    };
    let (workspace, _held_while_building) = match open_workspace(options, &plan, &source)? {
        Ok(opened) => opened,
        Err(refusal) => return Ok(refused(&plan.steps, &plan.tests, refusal, started)),
    };
    let grader = build::Workspace::open(&plan.root)?;
    // Should a case's keeper die, the processes it was watching come back to
    // us, and are swept up at the end.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let mut notes = source.notes.clone();
    notes.extend(
        [&workspace.target_note, &grader.target_note]
            .into_iter()
            .flatten()
            .cloned(),
    );
    // One note when the grader's tree and the graded one are the same.
    notes.dedup();
    // No process of our uid may read our memory or descriptors.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let _ = nix::sys::prctl::set_dumpable(false);
    let (sandbox, build_jail) = jails_in_force(options, &workspace)?;

    let built = build_steps(&plan, &source, &workspace);
    let snapshot = build::BinarySnapshot::new()?;
    let probe = grader_probe(&grader, &snapshot)?;
    let (mut results, queue) = queue_cases(&plan, built, &snapshot)?;
    let places = Places {
        bins: &snapshot.dir,
        probe: &probe,
        suffix: plan.suffix,
        steps: &plan.steps,
        sandbox_off: options.sandbox == SandboxMode::Off,
        pid_namespace: sandbox.pid_ns,
    };
    let jobs = options.jobs.unwrap_or_else(default_jobs).max(1);
    let graded = run_queue(queue, jobs, &places, !options.no_trace);
    keeper::run::sweep(&[], true);
    for (index, graded) in graded {
        results[index].cases.push(graded);
    }
    for result in &mut results {
        result.cases.sort_by(|a, b| a.file.cmp(&b.file));
        mark_not_started(result);
    }

    let untraced = options
        .no_trace
        .then(|| "--no-trace was given".to_string())
        .or_else(|| {
            results
                .iter()
                .flat_map(|r| &r.cases)
                .find_map(|c| c.run.as_ref()?.untraced.clone())
        });
    if let Some(why) = &untraced {
        notes.push(why.clone());
    }
    Ok(Outcome {
        steps: results,
        duration: started.elapsed(),
        notes,
        isolation: Isolation {
            traced: untraced.is_none(),
            untraced_because: untraced,
            sandbox: Some(sandbox),
            build_jail,
        },
    })
}

/// What a grading is of: its steps, the cases' folder, the workbook.
struct Plan {
    steps: Vec<&'static str>,
    /// `_solution` for the reference solutions' packages, else nothing.
    suffix: &'static str,
    root: PathBuf,
    tests: PathBuf,
}

impl Plan {
    fn of(options: &Options) -> Result<Self, String> {
        let steps: Vec<&'static str> = match &options.step {
            Some(wanted) => vec![project::find_step(wanted)?],
            None => project::STEPS.to_vec(),
        };
        let root = project::root();
        let tests = options.tests.clone().unwrap_or_else(|| root.join("tests"));
        if !tests.is_dir() {
            return Err(format!("--tests {}: no such directory", tests.display()));
        }
        Ok(Self {
            steps,
            suffix: if options.solutions { "_solution" } else { "" },
            root,
            tests,
        })
    }
}

/// What must stay held while a jailed build reads it: a private slot to
/// build in, and the dependency store (shared).
struct BuildHolds {
    _private_slot: Option<source::store::Slot>,
    _store: Option<source::store::Store>,
}

/// The workspace to build, jailed for a submission or another checkout;
/// or a refusal, when its own code could run while it is built.
fn open_workspace(
    options: &Options,
    plan: &Plan,
    source: &Source,
) -> Result<Result<(build::Workspace, BuildHolds), String>, String> {
    let jailed = options.workspace.is_some() || options.submission.is_some();
    if options.prebuilt_dependencies && !jailed {
        return Err("--prebuilt-dependencies is for --workspace and --submission".into());
    }
    let mut holds = BuildHolds {
        _private_slot: None,
        _store: None,
    };
    if !jailed {
        return Ok(Ok((build::Workspace::open(&source.dir)?, holds)));
    }
    // Refused before cargo reads anything of it (see `jail`).
    if let Err(refusal) = jail::check_submission(&source.dir) {
        return Ok(Err(refusal));
    }
    // Registry packages: only those the workbook itself uses.
    let workbook_lock = plan.root.join("Cargo.lock");
    let allowed = jail::locked_registry_packages(&workbook_lock);
    // A checkout without a lock file would be resolved against whatever
    // this machine's cargo cache holds (the newest version of each crate
    // it has downloaded, for any project): its grade would depend on the
    // machine. It gets the workbook's, which cargo would otherwise have
    // written there on its own.
    let own_lock = source.dir.join("Cargo.lock");
    if std::fs::symlink_metadata(&own_lock).is_err() && workbook_lock.is_file() {
        std::fs::copy(&workbook_lock, &own_lock)
            .map_err(|e| format!("{}: {e}", own_lock.display()))?;
    }
    // A checkout the grader laid out itself (`--submission`) is built on
    // the compiled dependencies of the store (see `store`), and so is a
    // `--workspace` with --prebuilt-dependencies, in a private slot; any
    // other into a private target directory, from nothing. A class's
    // graders never rebuild the store their class uses.
    let private_slot = (source.slot.is_none() && options.prebuilt_dependencies)
        .then(source::store::Slot::private)
        .transpose()?;
    let building_in = source.slot.as_ref().or(private_slot.as_ref());
    let dependency_store = building_in
        .map(|_| source::store::Store::ready(&plan.root, options.checkout.is_none()))
        .transpose()?;
    let target = match (building_in, &dependency_store) {
        (Some(slot), Some(store)) => store.seed(slot)?,
        _ => jail::BuildTarget::Private,
    };
    let workspace = build::Workspace::open_submission(
        &source.dir,
        Duration::from_secs(options.build_time_limit),
        &allowed,
        target,
    )?;
    holds._private_slot = private_slot;
    holds._store = dependency_store;
    Ok(Ok((workspace, holds)))
}

/// The case jail this machine gives, and the build's jail line, or an
/// error when `--sandbox=require` cannot be met.
fn jails_in_force(
    options: &Options,
    workspace: &build::Workspace,
) -> Result<(facts::JailFeatures, Option<String>), String> {
    let sandbox = match options.sandbox {
        SandboxMode::Off => facts::JailFeatures::off(),
        _ => jail::probe(),
    };
    if options.sandbox == SandboxMode::Require
        && (!sandbox.supported || !sandbox.missing.is_empty())
    {
        return Err(format!(
            "--sandbox=require: this machine cannot give every case the full sandbox ({})",
            sandbox.line()
        ));
    }
    let build_jail = workspace.jail_line().map(str::to_string);
    if options.sandbox == SandboxMode::Require && !workspace.jail_missing().is_empty() {
        return Err(format!(
            "--sandbox=require: this machine cannot give the build its full sandbox ({})",
            build_jail.as_deref().unwrap_or_default()
        ));
    }
    Ok((sandbox, build_jail))
}

/// Builds the steps the source holds; the others are missing.
fn build_steps(
    plan: &Plan,
    source: &Source,
    workspace: &build::Workspace,
) -> Vec<Result<build::Binaries, build::BuildError>> {
    let packages: Vec<String> = plan
        .steps
        .iter()
        .filter(|s| source.holds(s))
        .map(|s| format!("{s}{}", plan.suffix))
        .collect();
    let mut built_held = workspace.build(&packages, false).into_iter();
    plan.steps
        .iter()
        .map(|step| match source.holds(step) {
            true => built_held.next().expect("one build result per package"),
            false => Err(build::BuildError::Missing(
                "not in the submission: it scores 0, as the skeleton would".into(),
            )),
        })
        .collect()
}

/// The grader's own probe worker (`{probe}` in cases), from the grader's
/// tree, never from the one being graded, into the snapshot.
fn grader_probe(
    grader: &build::Workspace,
    snapshot: &build::BinarySnapshot,
) -> Result<PathBuf, String> {
    let probe_built = grader
        .build(&["bench_probes".to_string()], false)
        .remove(0)
        .map_err(|e| format!("cannot build the grader's probe worker: {e}"))?;
    snapshot.add(
        // Apart from the graded binaries, so that none can take its name.
        // (A cargo target's name cannot begin with a dot.)
        ".grader/spin_probe",
        probe_built
            .get("spin_probe")
            .ok_or("the grader's probe worker was not built")?,
    )
}

/// Cases to run, each with the index of its step.
type CaseQueue = VecDeque<(usize, Case)>;

/// Every case of every step that built, into one queue (its binaries into
/// the snapshot); the others' cases are recorded at once, with 0 points
/// and the step's status.
fn queue_cases(
    plan: &Plan,
    built: Vec<Result<build::Binaries, build::BuildError>>,
    snapshot: &build::BinarySnapshot,
) -> Result<(Vec<StepOutcome>, CaseQueue), String> {
    let mut results: Vec<StepOutcome> = Vec::new();
    let mut queue = VecDeque::new();
    for (index, (step, build)) in plan.steps.iter().zip(built).enumerate() {
        let (state, cases) = match (build, case::load_step(&plan.tests.join(step))) {
            (_, Err(error)) => (
                StepState::CasesBroken(error.clone()),
                unusable_cases(&plan.tests.join(step), &error),
            ),
            (Err(build::BuildError::Missing(why)), Ok(cases)) => {
                let cases = not_run(cases, Status::Missing, &why);
                (StepState::Missing(why), cases)
            }
            (Err(build::BuildError::DoesNotCompile(error)), Ok(cases)) => {
                let cases = not_run(cases, Status::DoesNotCompile, &error);
                (StepState::DoesNotCompile(error), cases)
            }
            (Err(build::BuildError::TooLong(why)), Ok(cases)) => {
                let cases = not_run(cases, Status::DoesNotCompile, &why);
                (StepState::TooLong(why), cases)
            }
            (Ok(binaries), Ok(cases)) => {
                for (name, path) in &binaries {
                    snapshot.add(name, path)?;
                }
                for case in cases {
                    queue.push_back((index, case));
                }
                (StepState::Graded, Vec::new())
            }
        };
        results.push(StepOutcome { step, state, cases });
    }
    Ok((results, queue))
}

/// A graded step whose program stops at a `todo!()` in every case of its
/// real work is not started: every case scores 0, even one a skeleton's
/// ready-made argument parsing passes.
fn mark_not_started(result: &mut StepOutcome) {
    if result.state != StepState::Graded {
        return;
    }
    let Some(todo) = not_started(&result.cases) else {
        return;
    };
    for case in &mut result.cases {
        case.status = Status::NotStarted;
        case.earned = 0;
        if case
            .verdict
            .as_ref()
            .is_some_and(|v| v.not_started.is_none())
        {
            case.not_run_because = Some(format!(
                "the step stops at {todo} in every case of its real work"
            ));
        }
    }
    result.state = StepState::NotStarted(todo);
}

/// A refused submission: nothing was built or run, and every case of every
/// selected step scores 0.
fn refused(steps: &[&'static str], tests: &Path, why: String, started: Instant) -> Outcome {
    let steps = steps
        .iter()
        .map(|step| {
            let (state, cases) = match case::load_step(&tests.join(step)) {
                Ok(cases) => (
                    StepState::Refused(why.clone()),
                    not_run(cases, Status::Refused, &why),
                ),
                Err(error) => (
                    StepState::CasesBroken(error.clone()),
                    unusable_cases(&tests.join(step), &error),
                ),
            };
            StepOutcome { step, state, cases }
        })
        .collect();
    Outcome {
        steps,
        duration: started.elapsed(),
        notes: Vec::new(),
        isolation: Isolation {
            traced: false,
            untraced_because: Some("nothing ran: the submission was refused".into()),
            sandbox: None,
            build_jail: None,
        },
    }
}

fn not_run(cases: Vec<Case>, status: Status, why: &str) -> Vec<CaseOutcome> {
    cases
        .into_iter()
        .map(|case| CaseOutcome::not_run(case, status, why))
        .collect()
}

/// A step whose cases cannot all be used: each case file that loads still
/// counts its points (all 0 earned), one that does not counts none.
fn unusable_cases(dir: &Path, error: &str) -> Vec<CaseOutcome> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|file| match case::load(&file) {
            Ok(case) => CaseOutcome::not_run(
                case,
                Status::CaseError,
                &format!("not run: a case of this step cannot be used: {error}"),
            ),
            Err(own) => CaseOutcome::unusable(file, own),
        })
        .collect()
}

/// For `cargo xtask dev check`: every untouched skeleton must grade as "not
/// started" (its program stops at a `todo!()` in every real-work case),
/// never as passing or failing cases, and never as not compiling.
pub fn check_skeletons() -> Result<(), String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let output = Command::new(me)
        .arg("grade")
        .current_dir(project::root())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run the grader: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut problems = Vec::new();
    for step in project::STEPS {
        let line = stdout.lines().find(|l| l.starts_with(&format!("{step}:")));
        match line {
            Some(line) if line.contains(": not started (") => {}
            Some(line) => problems.push(format!("the untouched skeleton grades as {line:?}")),
            None => problems.push(format!("{step}: the grader printed no line for it")),
        }
    }
    if problems.is_empty() {
        println!(
            "all {} skeletons grade as \"not started\"",
            project::STEPS.len()
        );
        return Ok(());
    }
    for problem in &problems {
        println!("{problem}");
    }
    Err(format!(
        "{} problem(s); the grader said:\n{stdout}{}",
        problems.len(),
        String::from_utf8_lossy(&output.stderr)
    ))
}

/// One case per CPU: more would only make the cases' timing depend on how
/// busy the machine is.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// A step is "not started" when every case that exercises its real work
/// stopped at a `todo!()`. Cases where the program must only refuse bad
/// input (no output expected) do not count: a skeleton's ready-made
/// argument parsing may pass them. Returns the first `todo!()` message.
fn not_started(list: &[CaseOutcome]) -> Option<String> {
    let mut work = list.iter().filter(|c| c.real_work).peekable();
    work.peek()?;
    let mut first = None;
    for graded in work {
        let todo = graded.verdict.as_ref()?.not_started.as_ref()?;
        first.get_or_insert_with(|| todo.clone());
    }
    first
}

#[cfg(test)]
mod options_tests {
    use super::*;

    #[test]
    fn default_options_are_the_command_lines() {
        let options = Options::default();
        assert_eq!(options.build_time_limit, jail::BUILD_TIME_LIMIT.as_secs());
        assert_eq!(options.sandbox, SandboxMode::Auto);
        assert_eq!(options.format, Format::Human);
        assert!(!options.solutions && options.submissions.is_none() && options.jobs.is_none());
    }
}
