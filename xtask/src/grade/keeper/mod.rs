//! The keeper: the process that runs one case (`xtask grade-case`), and
//! the grader's side of it. The grader starts a keeper per case, several
//! at once, sends it the case request on its stdin, and reads the case's
//! run back as TOML on its stdout, its one trusted channel: nothing a
//! program under test can write reaches it (see `run` and `jail`). The
//! grader's own deadline for a keeper depends on nothing a program holds.

pub mod run;

use std::collections::VecDeque;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::grade::case::{self, Case};
use crate::grade::facts::{CaseRequest, CaseRun, JailRequest};
use crate::grade::jail;
use crate::grade::judge::{judge, Problem, Verdict};
use crate::grade::outcome::CaseOutcome;

/// How long past a case's own time limit its keeper may take (jail set-up,
/// killing and sweeping) before the grader gives up on it.
const KEEPER_MARGIN: Duration = Duration::from_secs(4);

/// Where a case's binaries are.
pub(super) struct Places<'a> {
    /// This run's snapshot of the graded binaries.
    pub(super) bins: &'a Path,
    /// The grader's own CPU-bound worker.
    pub(super) probe: &'a Path,
    pub(super) suffix: &'a str,
    pub(super) steps: &'a [&'static str],
    /// `--sandbox=off`: the keepers run the programs unconfined.
    pub(super) sandbox_off: bool,
    /// The probe's keeper could become PID 1 of a PID namespace: the
    /// keepers try it too.
    pub(super) pid_namespace: bool,
}

/// Runs the queued cases, `jobs` at a time, each in its own keeper.
pub(super) fn run_queue(
    queue: VecDeque<(usize, Case)>,
    jobs: usize,
    places: &Places,
    trace: bool,
) -> Vec<(usize, CaseOutcome)> {
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
                let graded = grade_one(case, places, places.steps[index], trace);
                results.lock().unwrap().push((index, graded));
            });
        }
    });
    Arc::try_unwrap(results)
        .map(|m| m.into_inner().unwrap())
        .unwrap_or_default()
}

fn grade_one(case: Case, places: &Places, step: &str, trace: bool) -> CaseOutcome {
    match run_in_keeper(&case, places, step, trace) {
        Ok(run) => {
            let verdict = judge(&case, &run);
            CaseOutcome::ran(case, Some(run), verdict)
        }
        Err(error) => CaseOutcome::ran(
            case,
            None,
            Verdict {
                problems: vec![Problem {
                    headline: error,
                    details: Vec::new(),
                }],
                not_started: None,
                judged: Vec::new(),
            },
        ),
    }
}

/// Starts `xtask grade-case` for one case and reads its report. The keeper
/// enforces the case's time limit itself; the grader's own deadline (the
/// limit plus [`KEEPER_MARGIN`]) depends on nothing a program can hold:
/// past it the keeper is killed and the case fails.
fn run_in_keeper(case: &Case, places: &Places, step: &str, trace: bool) -> Result<CaseRun, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let request = CaseRequest {
        case: case.file.clone(),
        bins: places.bins.to_path_buf(),
        probe: places.probe.to_path_buf(),
        suffix: places.suffix.to_string(),
        step: step.to_string(),
        trace,
        jail: if places.sandbox_off {
            JailRequest::Off
        } else if !places.pid_namespace {
            JailRequest::NoPidNamespace
        } else {
            JailRequest::Whole
        },
    };
    let request = toml::to_string(&request).map_err(|e| format!("cannot encode a case: {e}"))?;
    let mut child = Command::new(me)
        .arg("grade-case")
        // The keeper makes its scratch directory where the grader chose.
        .env("TMPDIR", &jail::case_temp_dir()?.dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the case's keeper: {e}"))?;
    // The request is small (far below a pipe's capacity): written at once,
    // then our end closed so that the keeper reads to its end.
    if let Some(mut stdin) = child.stdin.take() {
        let _ = std::io::Write::write_all(&mut stdin, request.as_bytes());
    }
    let child_id = child.id();
    let stdout = read_all(child.stdout.take());
    let stderr = read_all(child.stderr.take());
    let limit = case.timeout() + KEEPER_MARGIN;
    let until = Instant::now() + limit;
    let mut overdue = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                overdue = true;
                let _ = child.kill();
                break child.wait().ok();
            }
            Err(_) => break None,
        }
    };
    // The keeper is gone: its pipes close now, unless something it left
    // holds them. Either way, wait no longer than a moment.
    let stdout = stdout.finish(Duration::from_millis(500));
    let stderr = stderr.finish(Duration::from_millis(100));
    // The keeper removes its scratch directory itself, unless it was killed
    // or died first: then this is the last chance.
    let _ = std::fs::remove_dir_all(jail::scratch_dir(child_id));
    let text = String::from_utf8_lossy(&stdout);
    // For debugging the grader: keep every keeper's report.
    if let Some(dir) = std::env::var_os("XTASK_GRADE_KEEP") {
        let name = format!("{}-{}-{}.toml", step, case.name(), child_id);
        let _ = std::fs::write(Path::new(&dir).join(name), text.as_bytes());
    }
    let interfered = "the case's programs interfered with the grader";
    if overdue {
        return Err(format!(
            "{interfered}: its keeper did not finish within {:.1} s",
            limit.as_secs_f64()
        ));
    }
    let status = status.ok_or(format!("{interfered}: its keeper vanished"))?;
    if !status.success() {
        let stderr = String::from_utf8_lossy(&stderr);
        return Err(format!(
            "{interfered}: its keeper ended with {status} {}",
            stderr.trim()
        ));
    }
    toml::from_str(&text).map_err(|e| format!("{interfered}: its report is unreadable: {e}"))
}

/// A pipe read to its end in a thread; what came so far can be taken at
/// any time, so that nobody holding the pipe can hold up the grader.
struct Drained {
    bytes: Arc<Mutex<Vec<u8>>>,
    done: std::sync::mpsc::Receiver<()>,
}

fn read_all(pipe: Option<impl std::io::Read + Send + 'static>) -> Drained {
    let bytes = Arc::new(Mutex::new(Vec::new()));
    let (finished, done) = std::sync::mpsc::channel();
    if let Some(mut pipe) = pipe {
        let bytes = Arc::clone(&bytes);
        std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                bytes.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
            let _ = finished.send(());
        });
    }
    Drained { bytes, done }
}

impl Drained {
    fn finish(self, grace: Duration) -> Vec<u8> {
        let _ = self.done.recv_timeout(grace);
        std::mem::take(&mut *self.bytes.lock().unwrap())
    }
}

/// The keeper's side: run one case and print the facts as TOML.
pub fn run_case_command(request: &CaseRequest) -> Result<(), String> {
    // First, while single-threaded: PID 1 of the case's PID namespace.
    // The process started stays outside, and never returns from here.
    let keeper = jail::Keeper::begin(request.jail);
    keeper.usable()?;
    let case = case::load(&request.case)?;
    let bins = std::fs::canonicalize(&request.bins)
        .map_err(|e| format!("{}: {e}", request.bins.display()))?;
    let run = run::run_case(
        &case,
        &bins,
        &request.probe,
        &request.suffix,
        &request.step,
        request.trace,
        &keeper,
    );
    let text = toml::to_string(&run).map_err(|e| format!("cannot encode the report: {e}"))?;
    print!("{text}");
    Ok(())
}
