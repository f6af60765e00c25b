//! Lab step 5: a round-robin time slicer, in the style of ARINC 653.
//!
//! ```text
//! ex5_round_robin SCHEDULE.toml
//! ex5_round_robin --copies N --slice DURATION -- COMMAND [ARGS...]
//! ex5_round_robin                  (the demo: 3 x print_time 0.25 3, 500ms slices)
//! ```
//!
//! Every program starts stopped, in a process group of its own. From then
//! on exactly one runs at a time: the coordinator continues it with SIGCONT,
//! and at the end of its slice stops it with SIGSTOP and waits until the
//! kernel confirms the stop before continuing the next one. When every
//! program has exited, it prints a report: slices and run time per program,
//! how far real slice lengths strayed from the schedule, and a timeline.
//!
//! ```text
//! coordinator 4242: started 3 programs, all stopped: print_time#1 4243, print_time#2 4244, print_time#3 4245
//! worker 4243: 1764000000.100000
//! ...
//! coordinator 4242: print_time#1 (4243) exited with status 0
//! ...
//! coordinator 4242: report after 3.512 s
//!   program        pid  slices      run time  ended
//!   ...
//! ```
//!
//! Timing: each slice ends at an absolute deadline on CLOCK_MONOTONIC (a
//! timerfd with TFD_TIMER_ABSTIME), and the next deadline is computed from
//! the previous *deadline*, not from when we woke up, so lateness never
//! accumulates. A program that exits mid-slice hands over at once: the
//! coordinator learns of it through SIGCHLD, which wakes the same `poll`.
//!
//! Shutdown: on Ctrl-C, SIGTERM or SIGHUP every program gets SIGTERM and
//! then SIGCONT (a stopped process only acts on SIGTERM once continued),
//! a short grace period, then SIGKILL. Nothing is left stopped or orphaned,
//! also when the coordinator itself fails.

mod report;
mod schedule;
// The worker is compiled into this binary too: see `WORKER`.
#[path = "bin/print_time.rs"]
mod print_time;

use std::ffi::{CString, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{killpg, raise, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::time::{clock_gettime, ClockId};
use nix::unistd::{execv, fork, getpid, setpgid, ForkResult, Pid};
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::backend::SignalDelivery;
use signal_hook::iterator::exfiltrator::SignalOnly;

use report::{ProgramSummary, Slice, SliceEnd, SliceReport};
use schedule::{parse_duration, show, Plan, Schedule};

const PROGRAM: &str = "ex5_round_robin";
const USAGE: &str = "usage: ex5_round_robin SCHEDULE.toml | ex5_round_robin --copies N --slice DURATION -- COMMAND [ARGS...]";
/// How long programs get to act on SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_millis(500);
/// Signals the coordinator hooks; children put them back to default.
const HOOKED: [i32; 4] = [SIGCHLD, SIGINT, SIGTERM, SIGHUP];
/// The lab's worker is built into this binary, which runs it when started
/// under this name (like busybox). A schedule's `print_time` is therefore
/// always the worker built together with this coordinator, found without a
/// search: `cargo run` builds only the coordinator, so a separate worker
/// binary may not exist yet, and one found beside us or in PATH may be
/// another package's (a student's, a stale one).
const WORKER: &str = "print_time";

fn main() -> ExitCode {
    let invoked_as = std::env::args_os().next().unwrap_or_default();
    if Path::new(&invoked_as).file_name() == Some(WORKER.as_ref()) {
        return print_time::main();
    }
    let schedule = match schedule_from_args(std::env::args_os().skip(1).collect()) {
        Ok(schedule) => schedule,
        Err(message) => {
            eprintln!("{PROGRAM}: {message}");
            return ExitCode::from(2);
        }
    };
    let commands = match resolve_commands(&schedule) {
        Ok(commands) => commands,
        Err(message) => {
            eprintln!("{PROGRAM}: {message}");
            return ExitCode::from(2);
        }
    };
    match run(&schedule, commands) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("{PROGRAM}: {message}");
            ExitCode::from(1)
        }
    }
}

fn schedule_from_args(argv: Vec<OsString>) -> Result<Schedule, String> {
    if argv.is_empty() {
        let demo = ["print_time", "0.25", "3"].map(String::from).to_vec();
        return Schedule::copies(3, Duration::from_millis(500), demo);
    }
    let mut copies = None;
    let mut slice = None;
    let mut file = None;
    let mut rest = argv.into_iter();
    while let Some(arg) = rest.next() {
        let text = arg.to_string_lossy().into_owned();
        let mut value = |flag: &str| -> Result<String, String> {
            rest.next()
                .map(|v| v.to_string_lossy().into_owned())
                .ok_or(format!("{flag} needs a value ({USAGE})"))
        };
        match text.as_str() {
            "--copies" => {
                let n = value("--copies")?;
                copies = Some(
                    n.parse::<usize>()
                        .map_err(|_| format!("--copies needs a whole number, got {n:?}"))?,
                );
            }
            "--slice" => {
                let d = value("--slice")?;
                slice = Some(parse_duration(&d).map_err(|e| format!("--slice {e}"))?);
            }
            "--" => {
                let command: Vec<String> = rest.map(|a| a.to_string_lossy().into_owned()).collect();
                let (Some(count), Some(slice)) = (copies, slice) else {
                    return Err(format!(
                        "a command after `--` needs --copies and --slice ({USAGE})"
                    ));
                };
                return Schedule::copies(count, slice, command);
            }
            flag if flag.starts_with('-') => {
                return Err(format!("unknown option {flag:?} ({USAGE})"));
            }
            _ if file.is_some() => return Err(format!("unexpected argument {text:?} ({USAGE})")),
            _ => file = Some(PathBuf::from(arg)),
        }
    }
    match (file, copies.is_some() || slice.is_some()) {
        (Some(path), false) => Schedule::from_file(&path),
        (Some(_), true) => Err(format!(
            "give a schedule file or --copies, not both ({USAGE})"
        )),
        (None, _) => Err(format!(
            "--copies and --slice need a command after `--` ({USAGE})"
        )),
    }
}

/// Everything `execv` needs, prepared before forking: the child must not
/// allocate (see the SAFETY note in `spawn_stopped`).
struct ExecArgs {
    path: CString,
    argv: Vec<CString>,
}

fn resolve_commands(schedule: &Schedule) -> Result<Vec<ExecArgs>, String> {
    schedule
        .programs
        .iter()
        .map(|spec| {
            let path = find_executable(&spec.command[0]).ok_or_else(|| {
                let place = if spec.line > 0 {
                    format!(" (line {})", spec.line)
                } else {
                    String::new()
                };
                format!(
                    "program {}{place}: command {:?} not found or not executable",
                    spec.name, spec.command[0]
                )
            })?;
            let to_c = |s: &[u8]| {
                CString::new(s)
                    .map_err(|_| format!("program {}: NUL byte in its command", spec.name))
            };
            Ok(ExecArgs {
                path: to_c(path.as_os_str().as_bytes())?,
                argv: spec
                    .command
                    .iter()
                    .map(|a| to_c(a.as_bytes()))
                    .collect::<Result<_, _>>()?,
            })
        })
        .collect()
}

/// `print_time` is this binary itself (see `WORKER`); `execv` then gives
/// it `print_time` as its argv[0]. Any other bare name is looked up in
/// PATH, like a shell would.
fn find_executable(command: &str) -> Option<PathBuf> {
    let runnable =
        |p: &Path| nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok() && p.is_file();
    if command == WORKER {
        return std::env::current_exe().ok().filter(|p| runnable(p));
    }
    if command.contains('/') {
        let path = PathBuf::from(command);
        return runnable(&path).then_some(path);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(command))
        .find(|p| runnable(p))
}

/// CLOCK_MONOTONIC as a Duration: the time base of every deadline.
fn now() -> Duration {
    clock_gettime(ClockId::CLOCK_MONOTONIC).map_or(Duration::ZERO, Duration::from)
}

/// What woke the coordinator up.
enum Wake {
    Deadline,
    ChildChanged,
    Shutdown(Signal),
}

/// A deadline timer and the hooked signals, both waitable with one `poll`.
struct Waiter {
    signals: SignalDelivery<UnixStream, SignalOnly>,
    #[cfg(target_os = "linux")]
    timer: nix::sys::timerfd::TimerFd,
}

impl Waiter {
    fn new() -> Result<Self, String> {
        let (read, write) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
        // signal-hook's handler only records the signal and writes a byte to
        // the socket: async-signal-safe. Everything else happens in `wait`.
        let signals = SignalDelivery::with_pipe(read, write, SignalOnly, HOOKED)
            .map_err(|e| format!("cannot hook signals: {e}"))?;
        children_report_only_ends();
        #[cfg(target_os = "linux")]
        let timer = {
            use nix::sys::timerfd::{ClockId as TimerClock, TimerFd, TimerFlags};
            TimerFd::new(TimerClock::CLOCK_MONOTONIC, TimerFlags::TFD_CLOEXEC)
                .map_err(|e| format!("timerfd_create: {e}"))?
        };
        Ok(Self {
            signals,
            #[cfg(target_os = "linux")]
            timer,
        })
    }

    /// Sleeps until `deadline` (CLOCK_MONOTONIC) or until a signal comes.
    fn wait(&mut self, deadline: Duration) -> Result<Wake, String> {
        #[cfg(target_os = "linux")]
        {
            use nix::sys::time::TimeSpec;
            use nix::sys::timerfd::{Expiration, TimerSetTimeFlags};
            // An absolute expiry: however late this call is made, the timer
            // fires at the deadline itself, so error cannot build up.
            let at = TimeSpec::from(deadline.max(Duration::from_nanos(1)));
            self.timer
                .set(
                    Expiration::OneShot(at),
                    TimerSetTimeFlags::TFD_TIMER_ABSTIME,
                )
                .map_err(|e| format!("timerfd_settime: {e}"))?;
        }
        loop {
            let signal_fd = self.signals.get_read().as_fd();
            #[cfg(target_os = "linux")]
            let (timer_fd, timeout) = (self.timer.as_fd(), PollTimeout::NONE);
            #[cfg(not(target_os = "linux"))]
            let (timer_fd, timeout) = {
                // Without timerfd: a relative timeout recomputed from the
                // absolute deadline on every wake, so error still does not
                // accumulate, at millisecond resolution.
                let left = deadline.saturating_sub(now());
                let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
                (
                    signal_fd,
                    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
                )
            };
            let mut fds = [
                PollFd::new(signal_fd, PollFlags::POLLIN),
                PollFd::new(timer_fd, PollFlags::POLLIN),
            ];
            match poll(&mut fds, timeout) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(format!("poll failed: {e}")),
            }
            let signalled = fds[0].any().unwrap_or(false);
            if signalled {
                let arrived: Vec<i32> = self.signals.pending().collect();
                for stop in [SIGTERM, SIGINT, SIGHUP] {
                    if arrived.contains(&stop) {
                        return Ok(Wake::Shutdown(
                            Signal::try_from(stop).unwrap_or(Signal::SIGTERM),
                        ));
                    }
                }
                if arrived.contains(&SIGCHLD) {
                    return Ok(Wake::ChildChanged);
                }
            }
            if now() >= deadline {
                #[cfg(target_os = "linux")]
                let _ = self.timer.unset();
                return Ok(Wake::Deadline);
            }
        }
    }
}

/// By default the kernel also sends SIGCHLD when a child stops or is
/// continued: two more wake-ups per switch, each run just when a program
/// is starting its slice (about 30 us of every slice, measured with
/// `cargo xtask bench ex5`). The coordinator already waits for each stop
/// itself (`wait_for_stop`), so it asks for SIGCHLD only when a child
/// ends: SA_NOCLDSTOP, added to the action signal-hook installed (its
/// handler and its other flags stay as they are).
fn children_report_only_ends() {
    use nix::libc;
    // SAFETY: sigaction reads the current action into `action`, then sets
    // it back with one more flag; the handler is signal-hook's, unchanged.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGCHLD, std::ptr::null(), &mut action) == 0 {
            action.sa_flags |= libc::SA_NOCLDSTOP;
            libc::sigaction(libc::SIGCHLD, &action, std::ptr::null_mut());
        }
    }
}

/// One scheduled program while it lives.
struct Program {
    name: String,
    pid: Pid,
    ended: Option<WaitStatus>,
}

impl Program {
    fn alive(&self) -> bool {
        self.ended.is_none()
    }

    /// The program and everything it started share its process group, so
    /// one `killpg` reaches all of them.
    fn signal_group(&self, signal: Signal) {
        let _ = killpg(self.pid, signal);
    }
}

/// How a slot of the plan ended.
enum SlotEnd {
    Deadline,
    Exited { at: Duration },
    Shutdown(Signal),
}

struct Coordinator {
    me: Pid,
    programs: Vec<Program>,
    waiter: Waiter,
    slices: Vec<Slice>,
    /// CLOCK_MONOTONIC when the first slice started.
    t0: Duration,
}

fn run(schedule: &Schedule, commands: Vec<ExecArgs>) -> Result<ExitCode, String> {
    let waiter = Waiter::new()?;
    let mut coordinator = Coordinator {
        me: getpid(),
        programs: Vec::new(),
        waiter,
        slices: Vec::new(),
        t0: Duration::ZERO,
    };
    // Become a child subreaper: a process a program leaves behind (a
    // background child, a double fork) is reparented to us rather than to
    // init, so we can reap it and make sure none is left running or stopped.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let dev_null = std::fs::File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;
    for (spec, exec) in schedule.programs.iter().zip(&commands) {
        let pid = spawn_stopped(exec, dev_null.as_fd())?;
        coordinator.programs.push(Program {
            name: spec.name.clone(),
            pid,
            ended: None,
        });
    }
    drop(dev_null);
    let started: Vec<String> = coordinator
        .programs
        .iter()
        .map(|p| format!("{} {}", p.name, p.pid))
        .collect();
    println!(
        "coordinator {}: started {} programs, all stopped: {}",
        coordinator.me,
        started.len(),
        started.join(", ")
    );
    // Set after forking, so that the programs keep the kernel's defaults.
    #[cfg(target_os = "linux")]
    wake_on_time();

    coordinator.t0 = now();
    let stopped_by = match &schedule.plan {
        Plan::RoundRobin { slices } => coordinator.round_robin(slices)?,
        Plan::Frame {
            major_frame,
            windows,
        } => coordinator.frame(*major_frame, windows)?,
    };
    if let Some(signal) = stopped_by {
        println!(
            "coordinator {}: {signal}: stopping every program",
            coordinator.me
        );
        coordinator.terminate_all()?;
    }
    let wall_time = now().saturating_sub(coordinator.t0);
    let strays = coordinator.sweep_descendants();
    if strays > 0 {
        println!(
            "coordinator {}: killed {strays} process(es) the programs left behind",
            coordinator.me
        );
    }
    coordinator.print_report(wall_time);
    let all_ok = coordinator
        .programs
        .iter()
        .all(|p| matches!(p.ended, Some(WaitStatus::Exited(_, 0))));
    Ok(match stopped_by {
        Some(signal) => ExitCode::from(128 + signal as u8),
        None if all_ok => ExitCode::SUCCESS,
        None => ExitCode::from(1),
    })
}

/// Asks the kernel to wake the coordinator as close to each deadline as it
/// can (the lab sheet's "How precise can this be" has the measurements):
/// - 1 ns of timer slack: the default lets a timer fire up to 50 us late,
///   so that wake-ups can be batched;
/// - the lowest real-time priority, SCHED_FIFO 1: when the timer fires,
///   the coordinator takes a CPU at once, even the one a program is
///   running on. A normal task may wait there until the program's turn on
///   that CPU ends, up to a scheduler tick (4 ms), which is the slice
///   error that remains without it. This needs a privilege
///   (CAP_SYS_NICE, or an RLIMIT_RTPRIO above 0); without one the call
///   fails and nothing changes. SCHED_RESET_ON_FORK gives anything the
///   coordinator forks the normal policy back.
///
/// The coordinator sleeps in `poll` between switches, so a real-time
/// priority costs the programs almost nothing.
#[cfg(target_os = "linux")]
fn wake_on_time() {
    let _ = nix::sys::prctl::set_timerslack(1);
    let param = nix::libc::sched_param { sched_priority: 1 };
    // SAFETY: a plain system call on this process, with a valid parameter.
    unsafe {
        nix::libc::sched_setscheduler(
            0,
            nix::libc::SCHED_FIFO | nix::libc::SCHED_RESET_ON_FORK,
            &param,
        )
    };
}

/// Forks a program that stops itself before `exec`, and returns once the
/// kernel reports it stopped. Its first SIGCONT lets it exec.
fn spawn_stopped(exec: &ExecArgs, stdin: BorrowedFd<'_>) -> Result<Pid, String> {
    // SAFETY: between fork and exec the child calls only async-signal-safe
    // functions (setpgid, sigaction, sigprocmask, dup2, raise, execv, write,
    // _exit) and touches only memory prepared before the fork. That holds
    // even if a library had started a thread in this process.
    match unsafe { fork() } {
        Err(e) => Err(format!("fork failed: {e}")),
        Ok(ForkResult::Child) => {
            // Our own process group: Ctrl-C at the terminal reaches only the
            // coordinator, which then shuts programs down in order, and
            // killpg reaches the program's own children too.
            let _ = setpgid(Pid::from_raw(0), Pid::from_raw(0));
            for signal in HOOKED {
                if let Ok(signal) = Signal::try_from(signal) {
                    // SAFETY: SIG_DFL runs no code of ours in a handler.
                    let _ = unsafe { nix::sys::signal::signal(signal, SigHandler::SigDfl) };
                }
            }
            let _ = SigSet::empty().thread_set_mask();
            // Programs must not read the terminal: from a background process
            // group that would stop them with SIGTTIN behind our back.
            unsafe { nix::libc::dup2(stdin.as_raw_fd(), 0) };
            let _ = raise(Signal::SIGSTOP);
            let _ = execv(&exec.path, &exec.argv);
            let message = b"ex5_round_robin: exec failed\n";
            unsafe {
                nix::libc::write(2, message.as_ptr().cast(), message.len());
                nix::libc::_exit(127)
            }
        }
        Ok(ForkResult::Parent { child }) => {
            // Also set it from this side, so it holds whichever runs first.
            let _ = setpgid(child, child);
            match wait_for_stop(child)? {
                None => Ok(child),
                Some(status) => Err(format!(
                    "program {child} ended before it started: {status:?}"
                )),
            }
        }
    }
}

/// Waits until `pid` is stopped: `None`, or it ended: `Some(status)`.
fn wait_for_stop(pid: Pid) -> Result<Option<WaitStatus>, String> {
    loop {
        match waitpid(pid, Some(WaitPidFlag::WUNTRACED)) {
            Ok(WaitStatus::Stopped(..)) => return Ok(None),
            Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => {
                return Ok(Some(status))
            }
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(e) => return Err(format!("waitpid({pid}) failed: {e}")),
        }
    }
}

impl Coordinator {
    fn live(&self) -> usize {
        self.programs.iter().filter(|p| p.alive()).count()
    }

    /// The first live program at or after `index`, cyclically.
    fn next_live(&self, index: usize) -> Option<usize> {
        let n = self.programs.len();
        (0..n)
            .map(|k| (index + k) % n)
            .find(|&i| self.programs[i].alive())
    }

    fn round_robin(&mut self, slices: &[Duration]) -> Result<Option<Signal>, String> {
        let mut next = 0;
        let mut base = now();
        while let Some(index) = self.next_live(next) {
            let slice = slices[index];
            // Fell behind by a whole slice (a stalled machine)? Start afresh
            // rather than hand out a burst of empty slices.
            if base + slice <= now() {
                base = now();
            }
            let deadline = base + slice;
            let alone = self.live() == 1;
            match self.run_slot(index, deadline, slice, !alone)? {
                // The next deadline builds on this one, not on "now".
                SlotEnd::Deadline => base = deadline,
                // Hand over at once: the next program gets a full slice now.
                SlotEnd::Exited { at } => base = at,
                SlotEnd::Shutdown(signal) => return Ok(Some(signal)),
            }
            next = index + 1;
        }
        Ok(None)
    }

    fn frame(
        &mut self,
        major: Duration,
        windows: &[schedule::Window],
    ) -> Result<Option<Signal>, String> {
        let mut frame_start = now();
        while self.live() > 0 {
            for window in windows {
                let start = frame_start + window.start;
                let end = start + window.duration;
                if let Some(signal) = self.idle_until(start)? {
                    return Ok(Some(signal));
                }
                // A window whose program has exited, or what remains of one
                // after its program exited, goes to the next live program.
                let mut candidate = window.program;
                while let Some(index) = self.next_live(candidate) {
                    let left = end.saturating_sub(now());
                    if left < schedule::MIN_SLICE {
                        break;
                    }
                    // Frame windows always stop at their end: the time
                    // between windows belongs to nobody.
                    match self.run_slot(index, end, left.min(window.duration), true)? {
                        SlotEnd::Deadline => break,
                        SlotEnd::Exited { .. } => candidate = index + 1,
                        SlotEnd::Shutdown(signal) => return Ok(Some(signal)),
                    }
                }
                if self.live() == 0 {
                    return Ok(None);
                }
            }
            frame_start += major;
            if frame_start + major <= now() {
                frame_start = now(); // a whole frame behind: start afresh
            }
        }
        Ok(None)
    }

    /// Lets nobody run until `until`, while still noticing exits and signals.
    fn idle_until(&mut self, until: Duration) -> Result<Option<Signal>, String> {
        while now() < until {
            match self.waiter.wait(until)? {
                Wake::Deadline => break,
                Wake::ChildChanged => self.reap_ended(),
                Wake::Shutdown(signal) => return Ok(Some(signal)),
            }
        }
        Ok(None)
    }

    /// Runs program `index` until `deadline`, its exit, or a shutdown. With
    /// `stop_at_deadline` false (it is the only program left in a round
    /// robin), it keeps running: stopping and continuing it would only
    /// waste time.
    fn run_slot(
        &mut self,
        index: usize,
        deadline: Duration,
        configured: Duration,
        stop_at_deadline: bool,
    ) -> Result<SlotEnd, String> {
        let start = now();
        self.programs[index].signal_group(Signal::SIGCONT);
        loop {
            match self.waiter.wait(deadline)? {
                Wake::Deadline => {
                    let end = now();
                    if !stop_at_deadline {
                        self.record(index, start, end, configured, SliceEnd::Deadline);
                        return Ok(SlotEnd::Deadline);
                    }
                    self.programs[index].signal_group(Signal::SIGSTOP);
                    // Do not continue anyone before the kernel confirms the
                    // stop: until then two programs could run at once.
                    let ended = wait_for_stop(self.programs[index].pid)?;
                    self.record(index, start, end, configured, SliceEnd::Deadline);
                    if let Some(status) = ended {
                        self.program_ended(index, status);
                    }
                    return Ok(SlotEnd::Deadline);
                }
                Wake::ChildChanged => {
                    self.reap_ended();
                    if !self.programs[index].alive() {
                        let at = now();
                        self.record(index, start, at, configured, SliceEnd::Exited);
                        return Ok(SlotEnd::Exited { at });
                    }
                }
                Wake::Shutdown(signal) => {
                    self.record(index, start, now(), configured, SliceEnd::Shutdown);
                    return Ok(SlotEnd::Shutdown(signal));
                }
            }
        }
    }

    fn record(
        &mut self,
        program: usize,
        start: Duration,
        end: Duration,
        configured: Duration,
        ended_by: SliceEnd,
    ) {
        self.slices.push(Slice {
            program,
            start: start.saturating_sub(self.t0),
            end: end.saturating_sub(self.t0),
            configured,
            ended_by,
        });
    }

    /// Reaps everything that has ended, without blocking: programs, and
    /// orphans of theirs that came to us as subreaper. Stops are not
    /// collected here (no WUNTRACED): `wait_for_stop` owns those.
    fn reap_ended(&mut self) {
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(status @ (WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, _, _))) => {
                    if let Some(index) = self.programs.iter().position(|p| p.pid == pid) {
                        self.program_ended(index, status);
                    }
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    }

    fn program_ended(&mut self, index: usize, status: WaitStatus) {
        let program = &mut self.programs[index];
        program.ended = Some(status);
        // Anything the program left behind in its group may be stopped by
        // our last SIGSTOP: continue it so that nothing stays frozen.
        program.signal_group(Signal::SIGCONT);
        println!(
            "coordinator {}: {} ({}) {}",
            self.me,
            program.name,
            program.pid,
            describe(status)
        );
    }

    /// SIGTERM then SIGCONT to every live program, a grace period, then
    /// SIGKILL for whoever is left. Returns once every program is reaped.
    fn terminate_all(&mut self) -> Result<(), String> {
        for program in self.programs.iter().filter(|p| p.alive()) {
            program.signal_group(Signal::SIGTERM);
            program.signal_group(Signal::SIGCONT);
        }
        let deadline = now() + GRACE;
        while self.live() > 0 {
            match self.waiter.wait(deadline)? {
                Wake::ChildChanged => self.reap_ended(),
                Wake::Deadline | Wake::Shutdown(_) => break,
            }
        }
        self.kill_all();
        Ok(())
    }

    /// SIGKILL and reap every live program. Blocking, but SIGKILL cannot be
    /// caught or ignored, so the wait is short.
    fn kill_all(&mut self) {
        for index in 0..self.programs.len() {
            if self.programs[index].alive() {
                self.programs[index].signal_group(Signal::SIGKILL);
                self.programs[index].signal_group(Signal::SIGCONT);
                loop {
                    match waitpid(self.programs[index].pid, None) {
                        Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => {
                            self.program_ended(index, status);
                            break;
                        }
                        Ok(_) | Err(Errno::EINTR) => continue,
                        Err(_) => {
                            // ECHILD: reaped already, somehow. Stop trying.
                            self.programs[index].ended = Some(WaitStatus::StillAlive);
                            break;
                        }
                    }
                }
            }
        }
    }

    /// Kills and reaps every process still our child: what the programs left
    /// behind and was reparented to us. Returns how many were still alive.
    fn sweep_descendants(&mut self) -> usize {
        let mut killed = std::collections::BTreeSet::new();
        loop {
            let strays = children_of(self.me);
            if strays.is_empty() {
                return killed.len();
            }
            for (pid, zombie) in &strays {
                if !zombie {
                    let _ = nix::sys::signal::kill(*pid, Signal::SIGKILL);
                    let _ = nix::sys::signal::kill(*pid, Signal::SIGCONT);
                    killed.insert(*pid);
                }
            }
            // Each of them is our child, so this returns once one is dead.
            match waitpid(None, None) {
                Ok(status @ (WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, _, _))) => {
                    if let Some(index) =
                        self.programs.iter().position(|p| p.pid == pid && p.alive())
                    {
                        self.program_ended(index, status);
                    }
                }
                Ok(_) | Err(Errno::EINTR) => {}
                Err(_) => return killed.len(), // ECHILD: nothing left to reap
            }
        }
    }

    fn print_report(&self, wall_time: Duration) {
        let summaries: Vec<ProgramSummary> = self
            .programs
            .iter()
            .map(|p| ProgramSummary {
                name: p.name.clone(),
                pid: p.pid.as_raw(),
                outcome: p.ended.map_or("still running".to_string(), describe),
            })
            .collect();
        let report = SliceReport {
            programs: &summaries,
            slices: &self.slices,
            wall_time,
        };
        println!("coordinator {}: report after {}", self.me, show(wall_time));
        print!("{}", report.render());
    }
}

/// Whatever happens, no program outlives the coordinator or stays stopped.
impl Drop for Coordinator {
    fn drop(&mut self) {
        self.kill_all();
        self.sweep_descendants();
    }
}

/// Our children, from /proc, as (pid, is a zombie). Where there is no
/// /proc, only the programs themselves are tracked.
fn children_of(parent: Pid) -> Vec<(Pid, bool)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let pid: i32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // The name is in parentheses and may hold spaces: count fields
            // from the last `)`. Then come the state and the parent's PID.
            let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
            let state = fields.next()?;
            let ppid: i32 = fields.next()?.parse().ok()?;
            (ppid == parent.as_raw()).then_some((Pid::from_raw(pid), state == "Z"))
        })
        .collect()
}

fn describe(status: WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("exited with status {code}"),
        WaitStatus::Signaled(_, signal, _) => format!("was killed by {signal}"),
        other => format!("ended oddly ({other:?})"),
    }
}
