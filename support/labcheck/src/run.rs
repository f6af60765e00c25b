//! Running a lab binary as a real process, and looking at what it did.
//!
//! Each run gets a session of its own (`setsid` before exec), so everything
//! it starts can be found afterwards by session id, even processes that
//! changed process group. After the run, any process still in that session
//! is a leftover: reported, then killed so that one failing test does not
//! disturb the next.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

use crate::pattern::{match_in_order, Bindings, LinePattern};
use crate::procs::{session_members, ProcessInfo};

/// Generous on purpose: a test fails on a wrong result, never because a
/// loaded machine was slow. Speed is measured by benchmarks, not here.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A lab binary with its arguments, ready to run.
#[derive(Clone, Debug)]
pub struct LabCommand {
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    dir: Option<PathBuf>,
    timeout: Duration,
}

impl LabCommand {
    pub fn new(program: impl AsRef<Path>) -> Self {
        Self {
            program: program.as_ref().to_path_buf(),
            args: Vec::new(),
            env: Vec::new(),
            dir: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.dir = Some(dir.as_ref().to_path_buf());
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The command as a shell would show it.
    pub fn display(&self) -> String {
        let mut text = self.program.display().to_string();
        for arg in &self.args {
            let arg = arg.to_string_lossy();
            if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || c == '\'') {
                let _ = write!(text, " '{}'", arg.replace('\'', r"'\''"));
            } else {
                let _ = write!(text, " {arg}");
            }
        }
        text
    }

    /// Runs to completion with `input` on stdin (then EOF).
    pub fn run_with_stdin(&self, input: impl Into<Vec<u8>>) -> Outcome {
        let mut live = self.start();
        let input = input.into();
        let stdin = live.stdin.take();
        // A thread, so that a program that writes a lot before reading all
        // its input cannot deadlock against us.
        let writer = std::thread::spawn(move || {
            if let Some(mut stdin) = stdin {
                let _ = stdin.write_all(&input);
            }
        });
        let outcome = live.finish();
        let _ = writer.join();
        outcome
    }

    /// Runs to completion with stdin at EOF from the start.
    pub fn run(&self) -> Outcome {
        self.run_with_stdin(Vec::new())
    }

    /// Starts the program for a scripted conversation.
    pub fn start(&self) -> LiveRun {
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in &self.env {
            command.env(key, value);
        }
        if let Some(dir) = &self.dir {
            command.current_dir(dir);
        }
        // SAFETY: setsid is async-signal-safe, and is all that runs between
        // fork and exec here.
        unsafe {
            command.pre_exec(|| {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                Ok(())
            });
        }
        let started = Instant::now();
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.display()));
        let stdin = child.stdin.take();
        let (lines_tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout is piped");
        let stdout_reader = std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let text = String::from_utf8_lossy(&line);
                        let text = text.strip_suffix('\n').unwrap_or(&text).to_string();
                        if lines_tx.send(text).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let stderr_reader = std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = stderr.read_to_end(&mut text);
            String::from_utf8_lossy(&text).into_owned()
        });
        LiveRun {
            command: self.display(),
            child,
            stdin,
            lines,
            stdout_reader: Some(stdout_reader),
            stderr_reader: Some(stderr_reader),
            seen: Vec::new(),
            claimed: Vec::new(),
            started,
            deadline: started + self.timeout,
        }
    }
}

/// A running lab program that a test talks to.
pub struct LiveRun {
    command: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stdout_reader: Option<JoinHandle<()>>,
    stderr_reader: Option<JoinHandle<String>>,
    seen: Vec<String>,
    /// Parallel to `seen`: lines already returned by `wait_for_line`.
    claimed: Vec<bool>,
    started: Instant,
    deadline: Instant,
}

impl LiveRun {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is already closed");
        let sent = stdin
            .write_all(line.as_bytes())
            .and_then(|()| stdin.write_all(b"\n"))
            .and_then(|()| stdin.flush());
        if let Err(e) = sent {
            let message = format!("could not send {line:?} to the program: {e}");
            self.fail_now(&message);
        }
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Sends `signal` to the program's process only.
    pub fn signal(&self, signal: Signal) {
        let _ = kill(Pid::from_raw(self.pid()), signal);
    }

    /// Sends `signal` to the program's whole process group, as the terminal
    /// does for Ctrl-C (SIGINT).
    pub fn signal_group(&self, signal: Signal) {
        let _ = killpg(Pid::from_raw(self.pid()), signal);
    }

    /// Waits for a stdout line that matches `pattern` and that no earlier
    /// call claimed. Lines from two processes arrive in any order, so a
    /// line that came before the one awaited so far still counts.
    pub fn wait_for_line(&mut self, pattern: &str) -> String {
        let pattern = LinePattern::new(pattern).unwrap_or_else(|e| panic!("{e}"));
        let already = self.seen.len();
        for (line, claimed) in self.seen.iter().zip(self.claimed.iter_mut()) {
            if !*claimed && pattern.matches(line, &mut Bindings::new()) {
                *claimed = true;
                return line.clone();
            }
        }
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let matched = pattern.matches(&line, &mut Bindings::new());
                    self.seen.push(line.clone());
                    self.claimed.push(matched);
                    if matched {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    let message = format!(
                        "timed out waiting for a line matching {pattern} (lines since: {})",
                        self.seen.len() - already
                    );
                    self.fail_now(&message);
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let message = format!("stdout closed before a line matched {pattern}");
                    self.fail_now(&message);
                }
            }
        }
    }

    fn fail_now(&mut self, message: &str) -> ! {
        let _ = killpg(Pid::from_raw(self.pid()), Signal::SIGKILL);
        let outcome = self.collect(true);
        outcome.fail(message)
    }

    /// Waits for the program to exit (killing it at the deadline), then
    /// looks for leftovers and collects everything it printed.
    pub fn finish(mut self) -> Outcome {
        self.close_stdin();
        self.collect(false)
    }

    fn collect(&mut self, killed_already: bool) -> Outcome {
        let pid = self.pid();
        let mut timed_out = false;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= self.deadline || killed_already => {
                    timed_out = !killed_already;
                    kill_session(pid, &[]);
                    break self.child.wait().expect("wait for the killed program");
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
                Err(e) => panic!("waiting for {}: {e}", self.command),
            }
        };
        let elapsed = self.started.elapsed();
        let leftovers = session_members(pid);
        kill_session(pid, &leftovers);
        // Leftovers may have held stdout open; they are gone now.
        if let Some(reader) = self.stdout_reader.take() {
            let _ = reader.join();
        }
        self.seen.extend(self.lines.try_iter());
        let stderr = self
            .stderr_reader
            .take()
            .and_then(|r| r.join().ok())
            .unwrap_or_default();
        Outcome {
            command: self.command.clone(),
            pid,
            status,
            timed_out,
            elapsed,
            stdout_lines: std::mem::take(&mut self.seen),
            stderr,
            leftovers,
        }
    }
}

impl Drop for LiveRun {
    fn drop(&mut self) {
        // A test that panicked mid-conversation must not leave it running.
        if self.stdout_reader.is_some() {
            let pid = self.pid();
            kill_session(pid, &session_members(pid));
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// SIGKILL, then SIGCONT for the stopped ones, to every process given and
/// to the session leader's process group.
fn kill_session(leader: i32, members: &[ProcessInfo]) {
    let _ = killpg(Pid::from_raw(leader), Signal::SIGKILL);
    for member in members {
        let _ = kill(Pid::from_raw(member.pid), Signal::SIGKILL);
        let _ = kill(Pid::from_raw(member.pid), Signal::SIGCONT);
    }
}

/// What a finished run did.
#[derive(Debug)]
pub struct Outcome {
    pub command: String,
    pub pid: i32,
    pub status: ExitStatus,
    pub timed_out: bool,
    pub elapsed: Duration,
    pub stdout_lines: Vec<String>,
    pub stderr: String,
    /// Processes of the run's session still there after it ended.
    pub leftovers: Vec<ProcessInfo>,
}

impl Outcome {
    /// Panics with the whole picture: command, status, output, leftovers.
    pub fn fail(&self, message: &str) -> ! {
        panic!("\n{message}\n\n{}", self.describe());
    }

    pub fn describe(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(text, "command: {}", self.command);
        let _ = writeln!(
            text,
            "status:  {}{}",
            show_status(self.status),
            if self.timed_out {
                " (timed out, killed)"
            } else {
                ""
            }
        );
        let _ = writeln!(text, "elapsed: {:.3} s", self.elapsed.as_secs_f64());
        let _ = writeln!(text, "stdout:");
        for line in &self.stdout_lines {
            let _ = writeln!(text, "    {line}");
        }
        let _ = writeln!(text, "stderr:");
        for line in self.stderr.lines() {
            let _ = writeln!(text, "    {line}");
        }
        if !self.leftovers.is_empty() {
            let _ = writeln!(text, "left behind:");
            for process in &self.leftovers {
                let _ = writeln!(text, "    {process}");
            }
        }
        text
    }

    pub fn assert_exit_code(&self, code: i32) -> &Self {
        if self.timed_out || self.status.code() != Some(code) {
            self.fail(&format!(
                "expected: exit status {code}\ngot:      {}",
                show_status(self.status)
            ));
        }
        self
    }

    pub fn assert_killed_by(&self, signal: Signal) -> &Self {
        if self.timed_out || self.status.signal() != Some(signal as i32) {
            self.fail(&format!(
                "expected: killed by {signal}\ngot:      {}",
                show_status(self.status)
            ));
        }
        self
    }

    /// Nothing the program started is still alive, stopped or a zombie.
    pub fn assert_nothing_left(&self) -> &Self {
        if !self.leftovers.is_empty() {
            self.fail("expected: no process left behind");
        }
        self
    }

    /// Stdout lines that start with `role ` (for example "parent ").
    pub fn role_lines(&self, role: &str) -> Vec<&str> {
        let prefix = format!("{role} ");
        self.stdout_lines
            .iter()
            .map(String::as_str)
            .filter(|line| line.starts_with(&prefix))
            .collect()
    }

    /// The lines of one role must match `patterns`, in order, one for one.
    pub fn expect_role(&self, role: &str, patterns: &[&str], bindings: &mut Bindings) -> &Self {
        let compiled: Vec<LinePattern> = patterns
            .iter()
            .map(|p| LinePattern::new(p).unwrap_or_else(|e| panic!("{e}")))
            .collect();
        let lines = self.role_lines(role);
        if let Err(mismatch) = match_in_order(&lines, &compiled, bindings) {
            let mut text = format!(
                "the {role:?} lines differ: {} at line {}\n",
                mismatch.reason,
                mismatch.index + 1
            );
            let _ = writeln!(text, "expected:");
            for (i, p) in compiled.iter().enumerate() {
                let mark = if i == mismatch.index { ">" } else { " " };
                let _ = writeln!(text, "  {mark} {p}");
            }
            let _ = writeln!(text, "got:");
            for (i, line) in lines.iter().enumerate() {
                let mark = if i == mismatch.index { ">" } else { " " };
                let _ = writeln!(text, "  {mark} {line}");
            }
            self.fail(&text);
        }
        self
    }

    /// Stdout, as one block, must equal `expected` line for line.
    pub fn expect_stdout_lines(&self, patterns: &[&str], bindings: &mut Bindings) -> &Self {
        let compiled: Vec<LinePattern> = patterns
            .iter()
            .map(|p| LinePattern::new(p).unwrap_or_else(|e| panic!("{e}")))
            .collect();
        let lines: Vec<&str> = self.stdout_lines.iter().map(String::as_str).collect();
        if let Err(mismatch) = match_in_order(&lines, &compiled, bindings) {
            self.fail(&format!(
                "stdout differs at line {}: {}\nexpected: {}\ngot:      {}",
                mismatch.index + 1,
                mismatch.reason,
                compiled
                    .get(mismatch.index)
                    .map_or("(nothing more)", LinePattern::source),
                lines
                    .get(mismatch.index)
                    .copied()
                    .unwrap_or("(nothing more)")
            ));
        }
        self
    }

    /// Index of the first stdout line matching `pattern`; fails if none.
    pub fn line_index(&self, pattern: &str) -> usize {
        let pattern = LinePattern::new(pattern).unwrap_or_else(|e| panic!("{e}"));
        self.stdout_lines
            .iter()
            .position(|line| pattern.matches(line, &mut Bindings::new()))
            .unwrap_or_else(|| {
                self.fail(&format!(
                    "expected: a stdout line matching {pattern}\ngot:      none"
                ))
            })
    }

    /// Stderr must be exactly one line matching `pattern`.
    pub fn expect_one_line_error(&self, pattern: &str) -> &Self {
        let compiled = LinePattern::new(pattern).unwrap_or_else(|e| panic!("{e}"));
        let lines: Vec<&str> = self.stderr.lines().collect();
        if lines.len() != 1 || !compiled.matches(lines[0], &mut Bindings::new()) {
            self.fail(&format!(
                "expected: one stderr line matching {compiled}\ngot:      {} lines",
                lines.len()
            ));
        }
        if self.stderr.contains("panicked") || self.stderr.contains("RUST_BACKTRACE") {
            self.fail("expected: a clear error, not a panic");
        }
        self
    }
}

pub fn show_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with {code}"),
        (None, Some(signal)) => {
            let name = Signal::try_from(signal).map_or("?", Signal::as_str);
            format!("killed by {name} ({signal})")
        }
        _ => format!("{status:?}"),
    }
}
