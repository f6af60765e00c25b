//! Running one case, in a keeper process of its own (`xtask grade-case`).
//!
//! The keeper is PID 1 of the case's PID namespace (see `jail`), and a
//! child subreaper (`PR_SET_CHILD_SUBREAPER`) for when no namespace can be
//! had: whatever the case's programs start, even after `setsid` or a
//! double fork, stays its descendant or comes back to it as an orphan. So
//! "everything this case started" is simply "every descendant of the
//! keeper" (inside the namespace: every other process in `/proc`), which
//! it can list, kill (SIGKILL, then SIGCONT for the stopped ones) and
//! reap. Every PID here, in the trace and in the report is the
//! namespace's. Running each case in its own keeper also keeps parallel
//! cases apart.
//!
//! The keeper enters the case's jail before anything else (see `jail`);
//! starting, tracing and reaping are the supervisor thread's job (see
//! `observe`); this module runs the script and watches the limits.
//! The keeper reports facts only (what ran, what it printed and when, how
//! it ended, what it did, what was left behind) as TOML on stdout; the
//! grader judges.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use labcheck::procs::{all_processes, ProcessInfo};
use labcheck::{Bindings, LinePattern};
use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

use crate::grade::case::{parse_duration, signal_by_name, Case, ProcessSpec};
use crate::grade::facts::{CaseRun, Event, EventKind, Limit, Line, ProcessRun, SCRATCH_LIMIT};
use crate::grade::jail::{Jail, Keeper, MAX_PROCESSES};
use crate::grade::observe::{Launch, Shared as Traced, Supervisor};

mod script;

use script::do_step;

/// Per stream: a print loop fails fast, in bounded memory.
pub const OUTPUT_CAP: usize = 1 << 20;
/// Per stream, in lines: no lab step prints a hundredth of this. Counting
/// lines as well as bytes makes a flood of short traced writes (slow on a
/// loaded machine) hit a limit long before the time limit.
pub const LINE_CAP: usize = 10_000;
/// A program still printing when its time runs out, past this many lines on
/// one stream, was flooding it, however slow the machine made it.
pub const FLOOD_LINES: usize = 1_000;

/// Output of one stream, shared with the thread that reads it.
#[derive(Default)]
struct Stream {
    lines: Vec<Line>,
    claimed: Vec<bool>,
    bytes: usize,
    /// Lines seen, kept or not.
    count: usize,
    capped: bool,
    closed: bool,
}

type Shared = Arc<(Mutex<Stream>, Condvar)>;

struct Running {
    spec: ProcessSpec,
    command: String,
    confinement: std::sync::Arc<super::jail::Confinement>,
    pid: Option<i32>,
    stdin: Option<File>,
    stdout: Shared,
    stderr: Shared,
    started_ms: f64,
    /// (exit code, signal number), once ended.
    status: Option<(Option<i32>, Option<i32>)>,
}

/// Runs `case` with binaries from `bins`, and reports what happened.
pub fn run_case(
    case: &Case,
    bins: &Path,
    probe: &Path,
    suffix: &str,
    step: &str,
    trace: bool,
    keeper: &Keeper,
) -> CaseRun {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let start = Instant::now();
    // First of all, while single-threaded: a user namespace needs that.
    let readable: Vec<PathBuf> = std::iter::once(bins.to_path_buf())
        .chain(probe.parent().map(Path::to_path_buf))
        .collect();
    let jail = Jail::enter(&readable, keeper);
    // Then, before any other thread: it blocks SIGCHLD for all of them.
    let supervisor = Supervisor::start(trace, start, case.perturbation());
    let deadline = start + case.timeout();
    let scratch = Scratch {
        path: jail.scratch.clone(),
    };
    let mut run = CaseRun {
        isolation: jail.isolation.clone(),
        ..CaseRun::default()
    };
    // The grader's own CPU-bound worker, so that a schedule's checks need
    // not trust a worker the student wrote.
    let probe = probe.display().to_string();
    for (path, content) in &case.files {
        jail.write_file(path, &content.replace("{scratch}", &scratch.display()));
    }

    let mut running = programs(case, bins, suffix, step, &scratch, &probe, &jail);
    for r in running.iter_mut().filter(|r| r.spec.start == "now") {
        if let Err(e) = spawn(r, &supervisor, &scratch, case, start) {
            run.script_error = Some(e);
        }
    }

    let mut bindings = Bindings::new();
    if run.script_error.is_none() {
        for (n, step) in case.step.iter().enumerate() {
            if let Err(e) = do_step(
                step,
                &mut running,
                &mut bindings,
                deadline,
                &supervisor,
                &jail,
                &scratch,
                case,
                start,
            ) {
                run.script_error = Some(format!("step {}: {e}", n + 1));
                break;
            }
            if let Some(why) = over_limits(&running, &jail, &supervisor) {
                run.killed_because = Some(why);
                break;
            }
        }
    }
    for r in &mut running {
        r.stdin = None; // end of input for everyone still reading
    }
    if run.script_error.is_some() && run.killed_because.is_none() {
        // A script step that waited in vain for a flooding program must not
        // hide the flood: that is the verdict, not the wait.
        run.killed_because = Some(
            over_limits(&running, &jail, &supervisor)
                .or_else(|| flooding(&running))
                .unwrap_or_else(|| "the script could not go on".to_string()),
        );
    }

    wait_for_all(&mut running, &supervisor, &jail, deadline, case, &mut run);
    run.elapsed_ms = ms_since(start);
    note_limits(&mut run, &jail, supervisor.finish());
    run.grader_pid = std::process::id() as i32;

    run.processes = running.into_iter().map(process_run).collect();
    run.scratch_leftovers = scratch.leftovers(case);
    drop(jail);
    run
}

/// Each process of the case as it will run: its command, its arguments
/// with the case's placeholders filled in, its binary, its confinement.
fn programs(
    case: &Case,
    bins: &Path,
    suffix: &str,
    step: &str,
    scratch: &Scratch,
    probe: &str,
    jail: &Jail,
) -> Vec<Running> {
    case.process
        .iter()
        .map(|spec| {
            let bin = format!("{}{suffix}", spec.bin.as_deref().unwrap_or(step));
            let mut spec = spec.clone();
            spec.args = spec
                .args
                .iter()
                .map(|a| {
                    a.replace("{scratch}", &scratch.display())
                        .replace("{probe}", probe)
                })
                .collect();
            let command = std::iter::once(bin.clone())
                .chain(spec.args.iter().map(|a| shell_quote(a)))
                .collect::<Vec<_>>()
                .join(" ");
            spec.bin = Some(bins.join(&bin).display().to_string());
            Running {
                spec,
                command,
                confinement: jail.confinement(),
                pid: None,
                stdin: None,
                stdout: Shared::default(),
                stderr: Shared::default(),
                started_ms: 0.0,
                status: None,
            }
        })
        .collect()
}

/// Waits for every process to end, watching the limits meanwhile; then
/// sweeps whatever is left (and says what the programs left behind).
fn wait_for_all(
    running: &mut [Running],
    supervisor: &Supervisor,
    jail: &Jail,
    deadline: Instant,
    case: &Case,
    run: &mut CaseRun,
) {
    // Wait for every process to end, watching the limits meanwhile.
    let mut ticks = 0u32;
    loop {
        let mut all_done = true;
        for r in running.iter_mut() {
            if let (Some(pid), None) = (r.pid, r.status) {
                r.status = supervisor.ended(pid);
                all_done &= r.status.is_some();
            }
        }
        if all_done || run.killed_because.is_some() {
            break;
        }
        if Instant::now() >= deadline {
            run.killed_because = Some(flooding(running).unwrap_or_else(|| {
                format!("timed out after {:.1} s", case.timeout().as_secs_f64())
            }));
            break;
        }
        ticks += 1;
        if ticks % 10 == 0 {
            if let Some(why) = over_limits(running, jail, supervisor) {
                run.killed_because = Some(why);
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    if run.killed_because.is_some() {
        sweep(&started_pids(running), untraced(supervisor));
        let until = Instant::now() + Duration::from_secs(2);
        for r in running.iter_mut() {
            while let (Some(pid), None) = (r.pid, r.status) {
                r.status = supervisor.ended(pid);
                if Instant::now() > until {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    } else {
        // The case's own processes ended by themselves: anything else still
        // around was left behind by them.
        run.leftovers = descendants().iter().map(describe_leftover).collect();
        sweep(&started_pids(running), untraced(supervisor));
    }
}

/// The limits the jail counted, and those the tracer saw the kernel
/// enforce, with the trace itself.
fn note_limits(run: &mut CaseRun, jail: &Jail, trace: Traced) {
    run.limits_hit = jail.limits_hit();
    if jail.scratch_full() {
        run.limits_hit.push(format!(
            "filled its {} MiB scratch directory",
            SCRATCH_LIMIT >> 20
        ));
    }
    run.events = trace.events;
    run.trace_cut = trace.cut;
    run.untraced = trace.untraced;
    // Limits the tracer saw the kernel enforce (a fork RLIMIT_NPROC
    // refused, which the pids cgroup never counts; memory RLIMIT_DATA or
    // RLIMIT_AS refused...), even when the program ended before the limits
    // were next looked at.
    for hit in &run.events {
        let Some(sentence) = limit_sentence(hit, &jail.scratch) else {
            continue;
        };
        let named = run
            .killed_because
            .as_deref()
            .is_some_and(|why| why.starts_with(&sentence))
            || run.limits_hit.contains(&sentence);
        if !named {
            run.limits_hit.push(sentence);
        }
    }
}

/// A process's run as the report gives it.
fn process_run(r: Running) -> ProcessRun {
    // Let the readers see end of file (leftovers are gone now).
    let started = r.pid.is_some();
    let (stdout, stdout_capped) = take_stream(&r.stdout, started);
    let (stderr, stderr_capped) = take_stream(&r.stderr, started);
    let pid = r.pid.unwrap_or(0);
    ProcessRun {
        name: r.spec.name.clone(),
        command: r.command.clone(),
        pid,
        started,
        started_ms: r.started_ms,
        exit_code: r.status.and_then(|s| s.0),
        signal: r.status.and_then(|s| s.1).map(signal_name),
        capped: stdout_capped || stderr_capped,
        stdout,
        stderr,
    }
}

fn spawn(
    r: &mut Running,
    supervisor: &Supervisor,
    scratch: &Scratch,
    case: &Case,
    start: Instant,
) -> Result<(), String> {
    let program = r.spec.bin.clone().unwrap_or_default();
    let c = |text: &str| CString::new(text).map_err(|_| format!("a NUL byte in {text:?}"));
    // A fixed, minimal environment: nothing of the grader's leaks.
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    env.insert("PATH".into(), crate::grade::facts::CASE_PATH.into());
    env.insert("HOME".into(), scratch.display());
    env.insert("LANG".into(), "C.UTF-8".into());
    env.insert("TERM".into(), "dumb".into());
    env.insert("TMPDIR".into(), scratch.display());
    env.insert(
        "XDG_RUNTIME_DIR".into(),
        scratch.path.join("run").display().to_string(),
    );
    env.insert("RUST_BACKTRACE".into(), "0".into());
    for (key, value) in &r.spec.env {
        env.insert(key.clone(), value.replace("{scratch}", &scratch.display()));
    }
    let argv0 = Path::new(&program)
        .file_name()
        .map_or(program.clone(), |n| n.to_string_lossy().into_owned());
    let launch = Launch {
        program: c(&program)?,
        argv: std::iter::once(argv0)
            .chain(r.spec.args.iter().cloned())
            .map(|a| c(&a))
            .collect::<Result<_, _>>()?,
        envp: env
            .iter()
            .map(|(k, v)| c(&format!("{k}={v}")))
            .collect::<Result<_, _>>()?,
        cwd: CString::new(scratch.path.as_os_str().as_bytes()).map_err(|e| e.to_string())?,
        cpu_seconds: case.timeout().as_secs() + 2,
        one_cpu: r.spec.one_cpu.then(lowest_allowed_cpu).flatten(),
        confinement: std::sync::Arc::clone(&r.confinement),
    };
    // The start is taken before the fork: a program's own clock can only
    // start later, so a line "not before N s" is never judged early.
    r.started_ms = ms_since(start);
    let started = supervisor
        .launch(launch)
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    r.pid = Some(started.pid);
    r.stdout = read_stream(Some(File::from(started.stdout)), start);
    r.stderr = read_stream(Some(File::from(started.stderr)), start);
    let mut stdin = Some(File::from(started.stdin));
    if let Some(text) = r.spec.stdin.clone() {
        // Fed from a thread, so that a program that writes before it reads
        // everything cannot deadlock against us; then closed.
        if let Some(mut pipe) = stdin.take() {
            std::thread::spawn(move || {
                let _ = pipe.write_all(text.as_bytes());
            });
        }
    }
    r.stdin = stdin;
    Ok(())
}

/// A CPU set holding the lowest CPU the keeper may use, made before the
/// fork (the child only hands it to the kernel).
fn lowest_allowed_cpu() -> Option<nix::libc::cpu_set_t> {
    use nix::libc;
    // SAFETY: a zeroed cpu_set_t is an empty set; sched_getaffinity fills
    // it, CPU_ISSET and CPU_SET read and write inside it.
    unsafe {
        let mut allowed: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut allowed) != 0 {
            return None;
        }
        let cpu = (0..libc::CPU_SETSIZE as usize).find(|&c| libc::CPU_ISSET(c, &allowed))?;
        let mut one: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut one);
        Some(one)
    }
}

fn read_stream(pipe: Option<impl Read + Send + 'static>, start: Instant) -> Shared {
    let shared: Shared = Shared::default();
    let Some(pipe) = pipe else {
        shared.0.lock().unwrap().closed = true;
        return shared;
    };
    let writer = Arc::clone(&shared);
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut raw = Vec::new();
        loop {
            raw.clear();
            let n = reader.read_until(b'\n', &mut raw).unwrap_or(0);
            let (lock, ready) = &*writer;
            let mut stream = lock.lock().unwrap();
            if n == 0 {
                stream.closed = true;
                ready.notify_all();
                return;
            }
            stream.bytes += n;
            stream.count += 1;
            if stream.bytes > OUTPUT_CAP || stream.count > LINE_CAP {
                // Keep draining, so the writer never blocks, but keep nothing.
                stream.capped = true;
                ready.notify_all();
                continue;
            }
            let text = String::from_utf8_lossy(&raw);
            let text = text.strip_suffix('\n').unwrap_or(&text).to_string();
            stream.lines.push(Line {
                at_ms: ms_since(start),
                text,
            });
            stream.claimed.push(false);
            ready.notify_all();
        }
    });
    shared
}

fn take_stream(shared: &Shared, started: bool) -> (Vec<Line>, bool) {
    let (lock, ready) = &**shared;
    let mut stream = lock.lock().unwrap();
    if !started {
        return (Vec::new(), false);
    }
    // The processes are gone; give the reader a moment to reach EOF.
    let until = Instant::now() + Duration::from_millis(500);
    while !stream.closed && Instant::now() < until {
        stream = ready
            .wait_timeout(stream, Duration::from_millis(20))
            .unwrap()
            .0;
    }
    (std::mem::take(&mut stream.lines), stream.capped)
}

/// Idle windows numbered so far (one case per keeper process).
static IDLE_WINDOWS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A reason to stop the case now: too much output, or a kernel limit hit.
fn over_limits(running: &[Running], jail: &Jail, supervisor: &Supervisor) -> Option<String> {
    for r in running {
        for (name, shared) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
            if shared.0.lock().unwrap().capped {
                return Some(format!(
                    "{} flooded {name}: more than {} MiB or {LINE_CAP} lines",
                    r.spec.name,
                    OUTPUT_CAP >> 20
                ));
            }
        }
    }
    if let Some(hit) = jail.limits_hit().into_iter().next() {
        return Some(hit);
    }
    {
        let shared = supervisor.shared.lock().unwrap();
        // Without a pids cgroup, RLIMIT_NPROC refuses the fork: the tracer
        // sees the refusal. Untraced, reaching the limit is taken for it.
        let refused = shared
            .events
            .iter()
            .any(|e| e.kind == EventKind::Limit && Limit::of(e) == Some(Limit::Processes));
        if refused {
            return Some(format!("started more than {MAX_PROCESSES} processes"));
        }
        // The trace is bounded: once full, what the programs do is no
        // longer seen, and nothing more can be judged.
        if let Some(full) = &shared.cut.full {
            return Some(format!("flooded the trace: {full}"));
        }
    }
    let count = descendants().len() as u64;
    (count >= MAX_PROCESSES)
        .then(|| format!("started more than {MAX_PROCESSES} processes ({count} at once)"))
}

/// The verdict's words for a limit the tracer saw the kernel enforce (a
/// `limit` event), with the value that was in force.
fn limit_sentence(event: &Event, scratch: &Path) -> Option<String> {
    if event.kind != EventKind::Limit {
        return None;
    }
    let value = event.bytes;
    let mib = |what: &str| match value {
        Some(bytes) => format!("{} MiB {what}", bytes >> 20),
        None => format!("its limit {what}"),
    };
    Some(match Limit::of(event)? {
        Limit::Processes => format!("started more than {MAX_PROCESSES} processes"),
        Limit::Memory => format!("used more than {}", mib("of memory")),
        Limit::AddressSpace => format!("mapped more than {}", mib("of memory (address space)")),
        Limit::OpenFiles => match value {
            Some(count) => format!("had {count} files open at once (the limit)"),
            None => "had as many files open as it may".to_string(),
        },
        Limit::FileSize => match value {
            Some(bytes) => format!("wrote past the {} MiB file size limit", bytes >> 20),
            None => "wrote past the file size limit".to_string(),
        },
        Limit::Disk => match event.target.as_deref() {
            Some(file) if Path::new(file).starts_with(scratch) => {
                format!("filled its {} MiB scratch directory", SCRATCH_LIMIT >> 20)
            }
            Some(file) => format!("filled the file system of {file}"),
            None => "filled a file system".to_string(),
        },
        Limit::Cpu => match value {
            Some(seconds) => format!("used more than {seconds} s of CPU time"),
            None => "used more than its CPU time limit".to_string(),
        },
    })
}

/// At the time limit: a process that printed more than [`FLOOD_LINES`]
/// lines on a stream was flooding it, and that is the verdict, whether or
/// not the machine was fast enough for it to reach [`LINE_CAP`].
fn flooding(running: &[Running]) -> Option<String> {
    running.iter().find_map(|r| {
        [("stdout", &r.stdout), ("stderr", &r.stderr)]
            .into_iter()
            .find_map(|(name, shared)| {
                let count = shared.0.lock().unwrap().count;
                (count > FLOOD_LINES).then(|| {
                    format!(
                        "{} flooded {name}: {count} lines, still printing at the time limit",
                        r.spec.name
                    )
                })
            })
    })
}

/// Every descendant of this process, from /proc.
pub fn descendants() -> Vec<ProcessInfo> {
    let me = std::process::id() as i32;
    let all = all_processes();
    let parent_of: BTreeMap<i32, i32> = all.iter().map(|p| (p.pid, p.ppid)).collect();
    let steps = all.len();
    all.into_iter()
        .filter(|p| {
            // However deep: a chain is never longer than the process list.
            let mut pid = p.ppid;
            for _ in 0..=steps {
                if pid == me {
                    return true;
                }
                match parent_of.get(&pid) {
                    Some(&parent) if parent != pid => pid = parent,
                    _ => return false,
                }
            }
            false
        })
        .collect()
}

fn describe_leftover(p: &ProcessInfo) -> String {
    let me = std::process::id() as i32;
    let what = match p.state {
        'Z' if p.ppid == me => "a zombie its parent never reaped",
        'Z' => "a zombie",
        'T' | 't' => "stopped",
        _ if p.ppid == me => "an orphan, still running",
        _ => "still running",
    };
    format!("{} (pid {}): {what}", p.name, p.pid)
}

/// Whether the supervisor runs untraced (asked for, or ptrace refused):
/// then orphans are not its to reap.
fn untraced(supervisor: &Supervisor) -> bool {
    supervisor.shared.lock().unwrap().untraced.is_some()
}

/// The PIDs of the processes the case started: the supervisor reaps
/// those, so `sweep` must leave them.
fn started_pids(running: &[Running]) -> Vec<i32> {
    running.iter().filter_map(|r| r.pid).collect()
}

/// SIGKILL (and SIGCONT, for the stopped) to every descendant, until none
/// is left. With `reap`, orphans that came to us are reaped here, except
/// those in `keep`, whose statuses someone else collects. A tracer reaps
/// everything itself: reaping a tracee here would leave it waiting for an
/// exit it never sees.
pub fn sweep(keep: &[i32], reap: bool) {
    for _ in 0..2000 {
        let left = descendants();
        if left.is_empty() {
            return;
        }
        for p in &left {
            if p.state != 'Z' {
                let _ = kill(Pid::from_raw(p.pid), Signal::SIGKILL);
                let _ = kill(Pid::from_raw(p.pid), Signal::SIGCONT);
            } else if reap && p.ppid == std::process::id() as i32 && !keep.contains(&p.pid) {
                let _ = waitpid(Pid::from_raw(p.pid), Some(WaitPidFlag::WNOHANG));
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn signal_name(number: i32) -> String {
    Signal::try_from(number).map_or(format!("signal {number}"), |s| s.as_str().to_string())
}

fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

fn shell_quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:{}#".contains(c))
    {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// The case's private working directory (the jail makes and removes it).
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn display(&self) -> String {
        self.path.display().to_string()
    }

    /// Every file left behind, relative to the scratch directory, except
    /// the ones the case provided and the empty `run` directory.
    fn leftovers(&self, case: &Case) -> Vec<String> {
        let mut found = Vec::new();
        let mut stack = vec![self.path.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let relative = path
                    .strip_prefix(&self.path)
                    .unwrap_or(&path)
                    .display()
                    .to_string();
                let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                if is_dir {
                    stack.push(path);
                } else if !case.files.contains_key(&relative) {
                    found.push(relative);
                }
            }
        }
        found.sort();
        found
    }
}
