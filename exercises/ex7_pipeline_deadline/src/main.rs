//! Lab step 7: a pipeline with a deadline. Read README.md beside this file.
//!
//! `ex7_pipeline_deadline [--deadline SECS] [--grace SECS] -- A ARGS | B ARGS | ...`
//!
//! When finished, it runs the stages given after `--`, separated by `|`
//! arguments, as a shell runs `A | B | C`: each in a child of its own, stage k's stdout joined to
//! stage k+1's stdin by a pipe this program makes, the first reading this
//! program's stdin and the last writing its stdout. All of them form one
//! process group, not this program's. If they have not all ended when the
//! deadline (default 10 s) passes, the whole group is sent SIGTERM; whatever
//! is still alive after the grace period (default 1 s) gets SIGKILL. Every
//! stage is reaped, and reported, in order:
//!
//! ```text
//! pipeline 4242: stage 1 is 4243: sh -c echo tick; exec sleep 30
//! pipeline 4242: stage 2 is 4244: cat
//! pipeline 4242: 2 stages in process group 4243, deadline 1.0 s
//! tick
//! pipeline 4242: deadline of 1.0 s passed: sending SIGTERM to process group 4243
//! pipeline 4242: stage 1 (child 4243) was killed by SIGTERM
//! pipeline 4242: stage 2 (child 4244) was killed by SIGTERM
//! pipeline 4242: timed out, exit status 124
//! ```
//!
//! In time, it exits as the last stage did (a number, or 128 + the signal
//! that killed it), as a shell does. SIGINT or SIGTERM to this program ends
//! the pipeline the same way as the deadline, at once, then exits with
//! 128 + that signal: the stages are in a group of their own, so a Ctrl-C
//! at the terminal reaches this program alone, and it passes it on.
//!
//! The deadline is a timerfd, watched by `poll` with the descriptor
//! signal-hook writes to when SIGCHLD, SIGINT or SIGTERM arrives: one
//! sleep that ends for whichever comes first. A plain `sleep(deadline)`
//! could neither notice that the pipeline finished early nor be sure,
//! when it wakes, that the group it signals is still ours.
//!
//! Already written for you: the arguments, each stage's prepared words,
//! the signal descriptor, the main loop and the report. Yours:
//! `spawn_all`, `exec_stage`, `terminate`, `arm` and `reap`.
//!
//! Every line it prints, word for word: README.md, "Output, exactly".
//!
//! Check your work: `cargo xtask grade ex7`. Stuck? `cargo xtask hint ex7`.

// TODO: delete this line when you are done; the warnings it hides will help.
#![allow(unused)]

use std::ffi::{c_char, CString};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::libc;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{killpg, signal, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, getpid, setpgid, ForkResult, Pid};
use signal_hook::consts::{SIGCHLD, SIGINT, SIGTERM};
use signal_hook::iterator::backend::SignalDelivery;
use signal_hook::iterator::exfiltrator::SignalOnly;

const PROGRAM: &str = "ex7_pipeline_deadline";
const USAGE: &str =
    "usage: ex7_pipeline_deadline [--deadline SECS] [--grace SECS] -- A ARGS | B ARGS | ...";

/// More stages than this is a mistake, not a pipeline.
const MAX_STAGES: usize = 16;
/// The longest deadline or grace accepted: an hour.
const MAX_SECS: f64 = 3600.0;
/// What `timeout(1)` exits with when the time ran out.
const TIMED_OUT: u8 = 124;

#[derive(Debug, PartialEq)]
struct Args {
    deadline: Duration,
    grace: Duration,
    /// Each stage's words: the program, then its arguments.
    stages: Vec<Vec<String>>,
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{PROGRAM}: {message} ({USAGE})");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("{PROGRAM}: {message}");
            ExitCode::from(1)
        }
    }
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut deadline = Duration::from_secs(10);
    let mut grace = Duration::from_secs(1);
    loop {
        let Some(arg) = argv.next() else {
            return Err("no pipeline: give its stages after `--`".into());
        };
        match arg.as_str() {
            "--" => break,
            "--deadline" | "--grace" => {
                let value = argv
                    .next()
                    .ok_or(format!("{arg} needs a number of seconds"))?;
                let secs = parse_seconds(&arg, &value)?;
                if arg == "--deadline" {
                    deadline = secs;
                } else {
                    grace = secs;
                }
            }
            other => return Err(format!("unexpected argument {other:?} before `--`")),
        }
    }
    let mut stages: Vec<Vec<String>> = vec![Vec::new()];
    for word in argv {
        if word == "|" {
            stages.push(Vec::new());
        } else if let Some(stage) = stages.last_mut() {
            stage.push(word);
        }
    }
    if let Some(empty) = stages.iter().position(Vec::is_empty) {
        return Err(if stages.len() == 1 {
            "no pipeline: give its stages after `--`".into()
        } else {
            format!("stage {} is empty", empty + 1)
        });
    }
    if stages.len() > MAX_STAGES {
        return Err(format!(
            "{} stages: at most {MAX_STAGES} are run",
            stages.len()
        ));
    }
    Ok(Args {
        deadline,
        grace,
        stages,
    })
}

fn parse_seconds(option: &str, text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs <= MAX_SECS => Ok(Duration::from_secs_f64(secs)),
        _ => Err(format!(
            "{option} needs a number of seconds above 0 and at most {MAX_SECS}, got {text:?}"
        )),
    }
}

/// One line of our own on stdout, flushed at once: the last stage writes to
/// the same pipe, and a line buffered here could be copied into a child.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// A stage, ready to run: everything its child needs, made before `fork`.
struct Stage {
    /// Owns the strings `argv` points into.
    _words: Vec<CString>,
    argv: Vec<*const c_char>,
    shown: String,
    cannot_run: Vec<u8>,
}

impl Stage {
    fn new(words: &[String]) -> Result<Self, String> {
        let owned: Vec<CString> = words
            .iter()
            .map(|w| CString::new(w.as_bytes()))
            .collect::<Result<_, _>>()
            .map_err(|_| "an argument cannot contain a NUL byte".to_string())?;
        let argv = owned
            .iter()
            .map(|w| w.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        Ok(Self {
            cannot_run: format!("{PROGRAM}: cannot run {}: ", words[0]).into_bytes(),
            shown: words.join(" "),
            argv,
            _words: owned,
        })
    }
}

/// What ended the pipeline's run, if anything did before it finished.
#[derive(Clone, Copy, PartialEq)]
enum Ending {
    InTime,
    Deadline,
    Stopped(Signal),
}

fn run(args: &Args) -> Result<u8, String> {
    let me = getpid();
    standard_streams_open()?;
    let stages: Vec<Stage> = args
        .stages
        .iter()
        .map(|w| Stage::new(w))
        .collect::<Result<_, _>>()?;
    let mut signals = PipelineSignals::hook()?;
    let timer = TimerFd::new(ClockId::CLOCK_MONOTONIC, TimerFlags::TFD_CLOEXEC)
        .map_err(|e| format!("timerfd: {e}"))?;
    let started = Instant::now();
    let children = spawn_all(me, &stages)?;
    let group = children[0];
    let plural = if children.len() == 1 { "" } else { "s" };
    say(&format!(
        "pipeline {me}: {} stage{plural} in process group {group}, deadline {:.1} s",
        children.len(),
        args.deadline.as_secs_f64()
    ));
    // The deadline counts from before the first fork.
    let left = args.deadline.saturating_sub(started.elapsed());
    arm(&timer, left.max(Duration::from_nanos(1)))?;

    let mut ended: Vec<Option<WaitStatus>> = vec![None; children.len()];
    let mut ending = Ending::InTime;
    let mut killed = false;
    while ended.iter().any(Option::is_none) {
        let (signalled, timer_fired) = wait_for_news(&signals, &timer)?;
        // The signals first, then the reaping: a SIGCHLD drained here is
        // answered by the reap below, and one that comes later leaves its
        // byte for the next poll. (The other way round, a stage that ends
        // between the two has its byte drained and is never reaped.)
        let arrived = if signalled {
            signals.pending()
        } else {
            Vec::new()
        };
        // Who ended comes next: a pipeline whose last stage ended in the
        // same instant as the timer fired finished in time.
        reap(&children, &mut ended)?;
        if ended.iter().all(Option::is_some) {
            break;
        }
        if timer_fired {
            let _ = timer.wait();
            if ending == Ending::InTime {
                ending = Ending::Deadline;
                say(&format!(
                    "pipeline {me}: deadline of {:.1} s passed: sending SIGTERM to process group {group}",
                    args.deadline.as_secs_f64()
                ));
                terminate(group, &timer, args.grace)?;
            } else if !killed {
                killed = true;
                say(&format!(
                    "pipeline {me}: grace of {:.1} s passed: sending SIGKILL to process group {group}",
                    args.grace.as_secs_f64()
                ));
                // Still ours: a stage not yet reaped keeps the group's ID
                // from being used again.
                let _ = killpg(group, Signal::SIGKILL);
            }
        }
        for arrived in arrived {
            let Ok(stop) = Signal::try_from(arrived) else {
                continue;
            };
            if stop != Signal::SIGCHLD && ending == Ending::InTime {
                ending = Ending::Stopped(stop);
                say(&format!(
                    "pipeline {me}: stopped by {}: sending SIGTERM to process group {group}",
                    stop.as_str()
                ));
                terminate(group, &timer, args.grace)?;
            }
        }
    }

    for (n, (child, status)) in children.iter().zip(&ended).enumerate() {
        if let Some(words) = status.and_then(describe) {
            say(&format!(
                "pipeline {me}: stage {} (child {child}) {words}",
                n + 1
            ));
        }
    }
    let code = match ending {
        Ending::InTime => {
            let code = match ended.last().copied().flatten() {
                Some(WaitStatus::Exited(_, code)) => code as u8,
                Some(WaitStatus::Signaled(_, signal, _)) => 128 + signal as u8,
                _ => 1,
            };
            say(&format!(
                "pipeline {me}: finished in time, exit status {code}"
            ));
            code
        }
        Ending::Deadline => {
            say(&format!(
                "pipeline {me}: timed out, exit status {TIMED_OUT}"
            ));
            TIMED_OUT
        }
        Ending::Stopped(signal) => {
            let code = 128 + signal as u8;
            say(&format!(
                "pipeline {me}: stopped by {}, exit status {code}",
                signal.as_str()
            ));
            code
        }
    };
    // The stages are gone, and so are their pipes: nothing to clean up.
    drop(stages);
    Ok(code)
}

/// Opens /dev/null on any of fds 0, 1 and 2 that is closed: else the first
/// pipe made would take that number, and a stage would find a pipe end
/// where its stdin or stdout should be.
fn standard_streams_open() -> Result<(), String> {
    for fd in 0..3 {
        // SAFETY: the number is only looked at, never closed; if it is not
        // open, F_GETFD fails with EBADF and nothing else happens.
        let standard = unsafe { BorrowedFd::borrow_raw(fd) };
        if nix::fcntl::fcntl(standard, nix::fcntl::F_GETFD).is_err() {
            let null = std::fs::OpenOptions::new()
                .read(fd == 0)
                .write(fd != 0)
                .open("/dev/null")
                .map_err(|e| format!("/dev/null: {e}"))?;
            // Opened on the lowest free number, which is `fd`: kept open.
            std::mem::forget(null);
        }
    }
    Ok(())
}

/// How a stage ended, in the sheet's words.
fn describe(status: WaitStatus) -> Option<String> {
    match status {
        WaitStatus::Exited(_, code) => Some(format!("exited with status {code}")),
        WaitStatus::Signaled(_, signal, _) => Some(format!("was killed by {}", signal.as_str())),
        _ => None,
    }
}

/// SIGTERM to the whole group, then SIGCONT (a stopped stage acts on
/// SIGTERM only once it runs, as `timeout(1)` knows), and the grace
/// period on the timer.
fn terminate(group: Pid, timer: &TimerFd, grace: Duration) -> Result<(), String> {
    // TODO: SIGTERM to the whole group (`killpg`), then SIGCONT to it (a
    // stopped stage only acts on SIGTERM once it runs again), then the
    // grace period on the timer (`arm`).
    todo!("end the pipeline's process group")
}

fn arm(timer: &TimerFd, after: Duration) -> Result<(), String> {
    // TODO: a one-shot expiry `after` from now: `timer.set` with
    // `Expiration::OneShot(TimeSpec::from_duration(after))`. Once it
    // fires, `poll` says the timer's descriptor is readable.
    todo!("set the timer")
}

/// Sleeps until a signal arrives or the timer fires: which of them did.
fn wait_for_news(signals: &PipelineSignals, timer: &TimerFd) -> Result<(bool, bool), String> {
    loop {
        let mut fds = [
            PollFd::new(signals.fd(), PollFlags::POLLIN),
            PollFd::new(timer.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => return Ok((fds[0].any().unwrap_or(false), fds[1].any().unwrap_or(false))),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(format!("poll failed: {e}")),
        }
    }
}

/// Every stage that has ended since the last look, without waiting.
fn reap(children: &[Pid], ended: &mut [Option<WaitStatus>]) -> Result<(), String> {
    // TODO: `waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG))` until it
    // says `StillAlive` (or ECHILD: no child left), putting each status at
    // its stage's place in `ended`. SIGCHLDs merge: one may stand for
    // several stages.
    todo!("reap every stage that has ended")
}

/// Forks every stage, joined by pipes, into one new process group (the
/// first stage's). No stage is reaped before the last is forked, so the
/// group exists while each joins it: a stage that ended is a zombie, still
/// a member.
fn spawn_all(me: Pid, stages: &[Stage]) -> Result<Vec<Pid>, String> {
    // TODO: one pipe per junction (`os_pipe::pipe()`: both ends are
    // close-on-exec), and the raw number of every end, for the children.
    //
    // TODO: block SIGCHLD, SIGINT and SIGTERM around the forks.
    //
    // TODO: for each stage: flush stdout, fork (with a `// SAFETY:`
    // comment). Child: `exec_stage`. Parent: `setpgid(child, group)` (the
    // first stage's PID is the group), print "pipeline ME: stage K is
    // CHILD: WORDS", and drop the junction before stage K, which now has
    // both its users (why does it matter?).
    //
    // TODO: restore the signal mask; return the children in order.
    todo!("fork every stage, joined by pipes, into one process group")
}

/// The child's side: its own process group, the pipe ends as stdin and
/// stdout, every other end closed, default signals, then the program.
fn exec_stage(
    stage: &Stage,
    group: Pid,
    stdin: Option<RawFd>,
    stdout: Option<RawFd>,
    all_ends: &[RawFd],
) -> ! {
    // TODO: only async-signal-safe calls (`// SAFETY:`), through `libc`:
    // `setpgid(0, group)` (0: a group of its own), `dup2` the given ends
    // onto stdin and stdout, `close` every end in `all_ends`, default
    // dispositions for SIGCHLD, SIGINT, SIGTERM and SIGPIPE (Rust's
    // runtime ignores SIGPIPE, and ignored stays ignored across exec), an
    // empty signal mask, then `execvp`. If it returns: write
    // `stage.cannot_run`, the errno's `desc()` and a newline with
    // `write_all`, then `_exit(127)` (ENOENT, ENOTDIR) or `_exit(126)`.
    todo!("become the stage's program")
}

/// `write` to stderr until done or failed: async-signal-safe.
fn write_all(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: write(2) on a valid buffer.
        let n = unsafe { libc::write(libc::STDERR_FILENO, bytes.as_ptr().cast(), bytes.len()) };
        if n <= 0 {
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

/// SIGCHLD, SIGINT and SIGTERM as a descriptor `poll` can watch: signal-
/// hook's handler only notes the signal and writes a byte (async-signal-
/// safe); the work happens in the loop.
struct PipelineSignals {
    delivery: SignalDelivery<UnixStream, SignalOnly>,
}

impl PipelineSignals {
    fn hook() -> Result<Self, String> {
        let (read, write) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
        let delivery =
            SignalDelivery::with_pipe(read, write, SignalOnly, [SIGCHLD, SIGINT, SIGTERM])
                .map_err(|e| format!("cannot hook signals: {e}"))?;
        Ok(Self { delivery })
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.delivery.get_read().as_fd()
    }

    fn pending(&mut self) -> Vec<i32> {
        self.delivery.pending().collect()
    }
}
