//! `cargo xtask grade`: build each step, run its cases, print a score.
//!
//! Each case runs in a helper process of its own (`xtask grade-case`, see
//! `runner`), several at once. A step that does not compile, or whose
//! program stops at a `todo!()` in every case, is reported as such without
//! stopping the other steps. The exit status is 0 only when every selected
//! case passed.

mod build;
pub mod case;
mod report;
mod requirements;
pub mod runner;
mod supervisor;
pub mod verdict;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::project;
use case::Case;
use report::{print_case, Graded, Style};
use runner::CaseRun;
use verdict::{judge, Problem, Verdict};

pub struct Options {
    pub step: Option<String>,
    pub solutions: bool,
    pub tests: Option<PathBuf>,
    pub jobs: Option<usize>,
    pub verbose: bool,
    /// Run the programs without ptrace (output checks only).
    pub no_trace: bool,
    /// Build and grade the steps of another checkout (a student's).
    pub workspace: Option<PathBuf>,
}

/// What happened to one step as a whole.
enum StepState {
    DoesNotCompile(String),
    BrokenCases(String),
    Graded(Vec<Graded>),
}

pub fn run(options: &Options) -> Result<bool, String> {
    let steps: Vec<&str> = match &options.step {
        Some(wanted) => vec![project::find_step(wanted)?],
        None => project::STEPS.to_vec(),
    };
    let suffix = if options.solutions { "_solution" } else { "" };
    let tests = options
        .tests
        .clone()
        .unwrap_or_else(|| project::root().join("tests"));
    let workspace = options.workspace.clone().unwrap_or_else(project::root);
    if !workspace.join("Cargo.toml").is_file() {
        return Err(format!("{} holds no Cargo.toml", workspace.display()));
    }
    let bins = workspace.join("target/debug");
    let style = Style::detect();
    let started = Instant::now();
    // Should a case helper die, the processes it was watching come back to
    // us, and are swept up at the end.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let _ = nix::sys::prctl::set_child_subreaper(true);

    let packages: Vec<String> = steps.iter().map(|s| format!("{s}{suffix}")).collect();
    let built = build::build(&workspace, &packages);
    // The grader's own probe worker (`{probe}` in cases), from this checkout.
    if let Err(error) = build::build(&project::root(), &["bench_probes".to_string()]).remove(0) {
        return Err(format!("cannot build the grader's probe worker: {error}"));
    }

    // Every case of every step that built, into one queue.
    let mut states: Vec<StepState> = Vec::new();
    let mut queue = VecDeque::new();
    for (index, (step, build)) in steps.iter().zip(built).enumerate() {
        match build {
            Err(error) => states.push(StepState::DoesNotCompile(error)),
            Ok(()) => match case::load_step(&tests.join(step)) {
                Err(error) => states.push(StepState::BrokenCases(error)),
                Ok(cases) => {
                    for case in cases {
                        queue.push_back((index, case));
                    }
                    states.push(StepState::Graded(Vec::new()));
                }
            },
        }
    }
    let jobs = options
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    let results = run_queue(queue, jobs, &bins, suffix, &steps, !options.no_trace);
    runner::sweep(&[]);
    for (index, graded) in results {
        if let StepState::Graded(list) = &mut states[index] {
            list.push(graded);
        }
    }

    let untraced = states.iter().find_map(|state| match state {
        StepState::Graded(list) => list.iter().find_map(|g| g.run.as_ref()?.untraced.clone()),
        _ => None,
    });
    if let Some(why) = untraced {
        println!("{} {why}\n", style.bad("note:"));
    }
    let mut all_passed = true;
    let (mut total, mut earned) = (0, 0);
    for (step, state) in steps.iter().zip(&mut states) {
        match state {
            StepState::DoesNotCompile(error) => {
                all_passed = false;
                println!("{}: {}", style.strong(step), style.bad("does not compile"));
                println!("  {error}");
            }
            StepState::BrokenCases(error) => {
                all_passed = false;
                println!(
                    "{}: {}",
                    style.strong(step),
                    style.bad("the cases cannot be used")
                );
                println!("  {error}");
            }
            StepState::Graded(list) => {
                list.sort_by(|a, b| a.case.file.cmp(&b.case.file));
                if let Some(todo) = not_started(list) {
                    all_passed = false;
                    total += list.iter().map(|g| g.case.points).sum::<u32>();
                    println!(
                        "{}: {} (stopped at {todo})",
                        style.strong(step),
                        style.bad("not started")
                    );
                    continue;
                }
                let points: u32 = list.iter().map(|g| g.case.points).sum();
                let got: u32 = list
                    .iter()
                    .filter(|g| g.verdict.passed())
                    .map(|g| g.case.points)
                    .sum();
                let passed = list.iter().filter(|g| g.verdict.passed()).count();
                total += points;
                earned += got;
                all_passed &= passed == list.len();
                let summary = if passed == list.len() {
                    style.good(&format!("{got}/{points} points, all {passed} cases passed"))
                } else {
                    style.bad(&format!(
                        "{got}/{points} points, {passed} of {} cases passed",
                        list.len()
                    ))
                };
                println!("{}: {summary}", style.strong(step));
                for graded in list.iter() {
                    print_case(&style, graded, options.verbose);
                }
            }
        }
    }
    println!(
        "\n{} {earned}/{total} points in {:.1} s",
        style.strong("total:"),
        started.elapsed().as_secs_f64()
    );
    Ok(all_passed)
}

/// A step is "not started" when every case that exercises its real work
/// stopped at a `todo!()`. Cases where the program must only refuse bad
/// input (no output expected) do not count: a skeleton's ready-made
/// argument parsing may pass them. Returns the first `todo!()` message.
fn not_started(list: &[Graded]) -> Option<String> {
    let works = |g: &&Graded| {
        !g.case.step.is_empty()
            || g.case.process.iter().any(|p| {
                p.stdout.as_ref().is_some_and(|s| !s.is_empty()) || !p.stdout_contains.is_empty()
            })
    };
    let mut work = list.iter().filter(works).peekable();
    work.peek()?;
    let mut first = None;
    for graded in work {
        let todo = graded.verdict.not_started.as_ref()?;
        first.get_or_insert_with(|| todo.clone());
    }
    first
}

/// Runs the queued cases, `jobs` at a time, each in its own helper.
fn run_queue(
    queue: VecDeque<(usize, Case)>,
    jobs: usize,
    bins: &Path,
    suffix: &str,
    steps: &[&str],
    trace: bool,
) -> Vec<(usize, Graded)> {
    let queue = Arc::new(Mutex::new(queue));
    let results = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            let queue = Arc::clone(&queue);
            let results = Arc::clone(&results);
            scope.spawn(move || loop {
                let Some((index, case)) = queue.lock().unwrap().pop_front() else {
                    return;
                };
                let graded = grade_one(case, bins, suffix, steps[index], trace);
                results.lock().unwrap().push((index, graded));
            });
        }
    });
    Arc::try_unwrap(results)
        .map(|m| m.into_inner().unwrap())
        .unwrap_or_default()
}

fn grade_one(case: Case, bins: &Path, suffix: &str, step: &str, trace: bool) -> Graded {
    match run_in_helper(&case, bins, suffix, step, trace) {
        Ok(run) => {
            let verdict = judge(&case, &run);
            Graded {
                case,
                run: Some(run),
                verdict,
            }
        }
        Err(error) => Graded {
            case,
            run: None,
            verdict: Verdict {
                problems: vec![Problem {
                    headline: error,
                    details: Vec::new(),
                }],
                not_started: None,
            },
        },
    }
}

/// Starts `xtask grade-case` for one case and reads its report. The helper
/// enforces the case's time limit itself; this is only a backstop.
fn run_in_helper(
    case: &Case,
    bins: &Path,
    suffix: &str,
    step: &str,
    trace: bool,
) -> Result<CaseRun, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let child = Command::new(me)
        .arg("grade-case")
        .args((!trace).then_some("--no-trace"))
        .arg(&case.file)
        .arg("--bins")
        .arg(bins)
        .arg("--suffix")
        .arg(suffix)
        .arg("--step")
        .arg(step)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the case helper: {e}"))?;
    let child_id = child.id();
    let pid = nix::unistd::Pid::from_raw(child_id as i32);
    let limit = case.timeout() + Duration::from_secs(15);
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let backstop = std::thread::spawn(move || {
        if finished.recv_timeout(limit).is_err() {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    });
    let output = child.wait_with_output().map_err(|e| e.to_string());
    let _ = done.send(());
    let _ = backstop.join();
    // The helper removes its scratch directory itself, unless it was killed
    // or died first: then this is the last chance.
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!("xtask-grade-{child_id}")));
    let output = output?;
    let text = String::from_utf8_lossy(&output.stdout);
    // For debugging the grader: keep every helper's report.
    if let Some(dir) = std::env::var_os("XTASK_GRADE_KEEP") {
        let name = format!("{}-{}-{}.toml", step, case.name(), child_id);
        let _ = std::fs::write(Path::new(&dir).join(name), text.as_bytes());
    }
    toml::from_str(&text).map_err(|e| {
        let stderr = String::from_utf8_lossy(&output.stderr);
        format!(
            "the case helper failed ({}): {e} {}",
            output.status,
            stderr.trim()
        )
    })
}

/// The helper's side: run one case and print the facts as TOML.
pub fn run_case_command(
    file: &Path,
    bins: &Path,
    suffix: &str,
    step: &str,
    trace: bool,
) -> Result<(), String> {
    let case = case::load(file)?;
    let bins = std::fs::canonicalize(bins).map_err(|e| format!("{}: {e}", bins.display()))?;
    let run = runner::run_case(&case, &bins, suffix, step, trace);
    let text = toml::to_string(&run).map_err(|e| format!("cannot encode the report: {e}"))?;
    print!("{text}");
    Ok(())
}
