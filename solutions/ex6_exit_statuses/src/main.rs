//! Lab step 6: a tiny shell, and exactly how each command ended.
//!
//! `ex6_exit_statuses` (no arguments) reads one command per line on stdin.
//! Each command runs in a child made with `fork` and replaced with `execvp`;
//! the shell waits for it and says how it ended, as `waitpid` reported it:
//!
//! ```text
//! shell 4242: ready
//! shell 4242: started 4243: sleep 30
//! shell 4242: child 4243 was stopped by SIGSTOP
//! shell 4242: child 4243 was continued
//! shell 4242: child 4243 was killed by SIGTERM
//! shell 4242: started 4244: nosuch
//! ex6_exit_statuses: nosuch: command not found
//! shell 4242: child 4244 exited with status 127
//! ```
//!
//! `cd DIR` and `exit [N]` are built in: they must change the shell itself,
//! which a child cannot do for its parent.
//!
//! Signals. Like an interactive shell, this one ignores SIGINT and SIGQUIT,
//! so Ctrl-C ends the command, not the shell; the child puts them back to
//! their defaults before `exec`, because an *ignored* signal stays ignored
//! across `exec` (a caught one does not: exec resets handlers, since their
//! code is gone). SIGTERM ends the shell: a running command is killed with
//! SIGKILL and reaped first, then `shell PID: stopped by SIGTERM`, exit 143.
//!
//! The shell is one thread. It sleeps in `poll` on two descriptors: stdin,
//! and a socket signal-hook writes a byte into when SIGCHLD or SIGTERM
//! arrives (the self-pipe trick): no signal can slip in between "nothing
//! to do" and going to sleep.

mod status;

use std::ffi::{c_char, CString};
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;

use nix::errno::Errno;
use nix::libc;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, signal, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, getpid, isatty, ForkResult, Pid};
use signal_hook::consts::{SIGCHLD, SIGTERM};
use signal_hook::iterator::backend::SignalDelivery;
use signal_hook::iterator::exfiltrator::SignalOnly;

const PROGRAM: &str = "ex6_exit_statuses";
const USAGE: &str = "usage: ex6_exit_statuses, then one command per line on stdin";

/// The longest command line accepted: a runaway input must not fill memory.
const MAX_LINE: usize = 64 * 1024;

/// What one line of input asks for.
#[derive(Debug, PartialEq)]
enum Line {
    Nothing,
    Exit(u8),
    Cd(Option<String>),
    Run(Vec<String>),
}

/// How the shell's life ends.
enum End {
    Input,
    Exit(u8),
    Terminated,
}

fn main() -> ExitCode {
    if let Some(extra) = std::env::args().nth(1) {
        eprintln!("{PROGRAM}: unexpected argument {extra:?} ({USAGE})");
        return ExitCode::from(2);
    }
    match run() {
        Ok(End::Input) => ExitCode::SUCCESS,
        Ok(End::Exit(code)) => ExitCode::from(code),
        Ok(End::Terminated) => ExitCode::from(128 + Signal::SIGTERM as u8),
        Err(message) => {
            eprintln!("{PROGRAM}: {message}");
            ExitCode::from(1)
        }
    }
}

fn run() -> Result<End, String> {
    let me = getpid();
    // SAFETY: SIG_IGN installs no handler code, so nothing can run at the
    // wrong moment. Ignored, Ctrl-C at a terminal (SIGINT to the whole
    // foreground group) reaches the command and leaves the shell alone.
    unsafe {
        signal(Signal::SIGINT, SigHandler::SigIgn).map_err(|e| format!("SIGINT: {e}"))?;
        signal(Signal::SIGQUIT, SigHandler::SigIgn).map_err(|e| format!("SIGQUIT: {e}"))?;
    }
    let mut signals = ShellSignals::hook()?;
    let interactive = isatty(std::io::stdin()).unwrap_or(false);
    say(&format!("shell {me}: ready"));
    let mut input = LineReader::default();
    loop {
        if interactive {
            eprint!("ex6> ");
        }
        let bytes = match input.next_line(&mut signals)? {
            Input::Line(bytes) => bytes,
            Input::End => {
                say(&format!("shell {me}: end of input"));
                return Ok(End::Input);
            }
            Input::Terminated => {
                say(&format!("shell {me}: stopped by SIGTERM"));
                return Ok(End::Terminated);
            }
        };
        let text = String::from_utf8_lossy(&bytes);
        match parse_line(&text) {
            Ok(Line::Nothing) => {}
            Ok(Line::Exit(code)) => {
                say(&format!("shell {me}: exiting with status {code}"));
                return Ok(End::Exit(code));
            }
            Ok(Line::Cd(dir)) => change_directory(dir),
            Ok(Line::Run(words)) => match run_command(me, text.trim(), &words, &mut signals)? {
                Ran::Done => {}
                Ran::Terminated => {
                    say(&format!("shell {me}: stopped by SIGTERM"));
                    return Ok(End::Terminated);
                }
            },
            Err(message) => eprintln!("{PROGRAM}: {message}"),
        }
    }
}

/// One line of the shell's own output, flushed at once: a command started
/// next writes to the same pipe, and must find nothing of ours buffered.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// A line's words, and what they ask for.
fn parse_line(text: &str) -> Result<Line, String> {
    let words = split_words(text)?;
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match words.as_slice() {
        [] => Ok(Line::Nothing),
        [first, ..] if first.starts_with('#') => Ok(Line::Nothing),
        ["exit"] => Ok(Line::Exit(0)),
        ["exit", code] => code
            .parse::<u8>()
            .map(Line::Exit)
            .map_err(|_| format!("exit: {code:?} is not a status from 0 to 255")),
        ["exit", ..] => Err("exit: too many arguments (exit [N])".into()),
        ["cd"] => Ok(Line::Cd(None)),
        ["cd", dir] => Ok(Line::Cd(Some(dir.to_string()))),
        ["cd", ..] => Err("cd: too many arguments (cd [DIR])".into()),
        _ => Ok(Line::Run(words.iter().map(|w| w.to_string()).collect())),
    }
}

/// Words are split at whitespace, except inside single or double quotes,
/// which are removed (`sh -c 'exit 3'` is three words). Nothing else is
/// special: no `$`, no `|`, no backslash.
fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.get_or_insert_with(String::new).push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (None, c) if c.is_whitespace() => words.extend(word.take()),
            (None, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    if let Some(q) = quote {
        return Err(format!("unterminated {q} quote"));
    }
    words.extend(word);
    Ok(words)
}

/// `cd` must be a built-in: a child's working directory is its own, and it
/// dies with the child.
fn change_directory(dir: Option<String>) {
    let Some(dir) = dir.or_else(|| std::env::var("HOME").ok()) else {
        eprintln!("{PROGRAM}: cd: HOME is not set");
        return;
    };
    if let Err(e) = nix::unistd::chdir(dir.as_str()) {
        eprintln!("{PROGRAM}: cd: {dir}: {}", e.desc());
    }
}

/// How a command's run ended for the shell.
enum Ran {
    Done,
    /// SIGTERM came while it ran: it was killed and reaped.
    Terminated,
}

/// Everything the child needs, made before `fork`: after it, the child
/// makes no allocation and takes no lock.
struct Prepared {
    /// Owns the strings `argv` points into.
    _words: Vec<CString>,
    /// NULL-terminated, as `execvp` wants it.
    argv: Vec<*const c_char>,
    not_found: Vec<u8>,
    cannot_run: Vec<u8>,
}

impl Prepared {
    fn new(words: &[String]) -> Result<Self, String> {
        let words: Vec<CString> = words
            .iter()
            .map(|w| CString::new(w.as_bytes()))
            .collect::<Result<_, _>>()
            .map_err(|_| "a command cannot contain a NUL byte".to_string())?;
        let argv = words
            .iter()
            .map(|w| w.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        let name = words[0].to_string_lossy();
        Ok(Self {
            not_found: format!("{PROGRAM}: {name}: command not found\n").into_bytes(),
            cannot_run: format!("{PROGRAM}: {name}: cannot run it: ").into_bytes(),
            argv,
            _words: words,
        })
    }
}

/// Runs one command (`line` as typed, split into `words`) and reports it.
fn run_command(
    me: Pid,
    line: &str,
    words: &[String],
    signals: &mut ShellSignals,
) -> Result<Ran, String> {
    let prepared = match Prepared::new(words) {
        Ok(prepared) => prepared,
        Err(message) => {
            eprintln!("{PROGRAM}: {message}");
            return Ok(Ran::Done);
        }
    };
    // Anything still buffered would be copied into the child and written
    // twice.
    let _ = std::io::stdout().flush();
    // Hold back the signals the shell handles until the child has put
    // their defaults back: a SIGTERM meant for the new command must not
    // run signal-hook's handler in it (which would wake the *shell's* loop
    // with it). Blocked, it waits; once the child unblocks, it acts as the
    // default (ends the command), exec or no exec.
    let handled = SigSet::from_iter([Signal::SIGTERM, Signal::SIGCHLD]);
    let before = handled
        .thread_swap_mask(SigmaskHow::SIG_BLOCK)
        .map_err(|e| format!("cannot block signals: {e}"))?;
    // SAFETY: this shell runs a single thread (signal-hook's delivery
    // starts none), so the child is a complete copy and no lock can be held
    // by a thread missing in it. Even so, the child keeps to
    // async-signal-safe calls (sigaction, sigprocmask, execvp on memory
    // prepared before the fork, write, _exit): that is the rule once a
    // program has threads, and the habit costs nothing here.
    match unsafe { fork() } {
        Err(e) => {
            let _ = before.thread_set_mask();
            eprintln!("{PROGRAM}: fork failed: {e}");
            Ok(Ran::Done)
        }
        Ok(ForkResult::Child) => exec_child(&prepared),
        Ok(ForkResult::Parent { child }) => {
            // Pending ones run their handler now, in the shell.
            let _ = before.thread_set_mask();
            say(&format!("shell {me}: started {child}: {line}"));
            wait_for(me, child, signals)
        }
    }
}

/// The child's side: become the command, or say why not and exit with the
/// status shells use (127: not found, 126: found but not runnable).
fn exec_child(prepared: &Prepared) -> ! {
    // SAFETY (whole block): only async-signal-safe calls, on memory made
    // before the fork.
    unsafe {
        // Ignored signals stay ignored across exec: give the command back
        // the defaults, or Ctrl-C could never stop it. Handled ones are
        // reset by exec itself, but one could arrive before: SIGTERM and
        // SIGCHLD are blocked since before the fork, and go back to their
        // defaults before they are unblocked.
        // SIGPIPE too: Rust's runtime ignores it, for this program's own
        // sake, and the command must not inherit that.
        for sig in [
            Signal::SIGINT,
            Signal::SIGQUIT,
            Signal::SIGTERM,
            Signal::SIGCHLD,
            Signal::SIGPIPE,
        ] {
            let _ = signal(sig, SigHandler::SigDfl);
        }
        // The signal mask is inherited across exec as well: the command
        // starts with nothing blocked, as it would from a terminal.
        let _ = SigSet::empty().thread_set_mask();
        // The socket signal-hook writes to is close-on-exec: the command
        // will not hold it.
        libc::execvp(prepared.argv[0], prepared.argv.as_ptr());
        // Only reached if execvp failed.
        let (message, code) = match Errno::last() {
            Errno::ENOENT | Errno::ENOTDIR => (&prepared.not_found[..], 127),
            other => {
                write_all(&prepared.cannot_run);
                write_all(other.desc().as_bytes());
                (&b"\n"[..], 126)
            }
        };
        write_all(message);
        libc::_exit(code)
    }
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

/// Waits until the command ends, reporting every change the kernel reports:
/// stops and continues (`WUNTRACED`, `WCONTINUED`), then its end.
fn wait_for(me: Pid, child: Pid, signals: &mut ShellSignals) -> Result<Ran, String> {
    let mut terminated = false;
    let flags = WaitPidFlag::WNOHANG | WaitPidFlag::WUNTRACED | WaitPidFlag::WCONTINUED;
    loop {
        // Everything the kernel has to say now: SIGCHLDs merge, so one
        // signal may stand for several changes.
        loop {
            match waitpid(child, Some(flags)) {
                Ok(WaitStatus::StillAlive) => break,
                Ok(status) => {
                    if let Some(words) = status::describe(status) {
                        say(&format!("shell {me}: child {child} {words}"));
                    }
                    if status::is_final(status) {
                        return Ok(if terminated {
                            Ran::Terminated
                        } else {
                            Ran::Done
                        });
                    }
                }
                Err(Errno::EINTR) => {}
                Err(e) => return Err(format!("waitpid({child}) failed: {e}")),
            }
        }
        // Nothing new: sleep until a signal says there is.
        for arrived in signals.wait()? {
            if arrived == SIGTERM && !terminated {
                terminated = true;
                // SIGKILL even stops a stopped command: it needs no SIGCONT.
                let _ = kill(child, Signal::SIGKILL);
            }
        }
    }
}

/// What the shell's loop waits for.
enum Input {
    Line(Vec<u8>),
    End,
    Terminated,
}

/// Reads stdin one byte at a time. A command inherits the shell's stdin,
/// and on a pipe whatever the shell read ahead would be lost to it: like
/// `sh`, this shell never takes a byte past the line it is about to run.
#[derive(Default)]
struct LineReader {
    line: Vec<u8>,
}

impl LineReader {
    fn next_line(&mut self, signals: &mut ShellSignals) -> Result<Input, String> {
        let stdin = std::io::stdin();
        loop {
            let mut fds = [
                PollFd::new(stdin.as_fd(), PollFlags::POLLIN),
                PollFd::new(signals.fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(format!("poll failed: {e}")),
            }
            let signalled = fds[1].any().unwrap_or(false);
            let readable = fds[0].any().unwrap_or(false);
            // A SIGCHLD here is from no command of ours (none is running).
            if signalled && signals.pending().contains(&SIGTERM) {
                return Ok(Input::Terminated);
            }
            if !readable {
                continue;
            }
            let mut byte = [0u8; 1];
            match nix::unistd::read(stdin.as_fd(), &mut byte) {
                Ok(0) if self.line.is_empty() => return Ok(Input::End),
                // A last line without its newline still counts.
                Ok(0) => return Ok(Input::Line(std::mem::take(&mut self.line))),
                Ok(_) if byte[0] == b'\n' => {
                    return Ok(Input::Line(std::mem::take(&mut self.line)));
                }
                Ok(_) if self.line.len() >= MAX_LINE => {
                    return Err(format!("a command line is longer than {MAX_LINE} bytes"));
                }
                Ok(_) => self.line.push(byte[0]),
                Err(Errno::EINTR | Errno::EAGAIN) => {}
                Err(e) => return Err(format!("cannot read stdin: {e}")),
            }
        }
    }
}

/// SIGCHLD and SIGTERM as a descriptor `poll` can watch. signal-hook's
/// handler only records the signal and writes a byte to a socket, which
/// is async-signal-safe; the work happens in the loop.
struct ShellSignals {
    delivery: SignalDelivery<UnixStream, SignalOnly>,
}

impl ShellSignals {
    fn hook() -> Result<Self, String> {
        // Both ends are close-on-exec: no command inherits them.
        let (read, write) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
        let delivery = SignalDelivery::with_pipe(read, write, SignalOnly, [SIGCHLD, SIGTERM])
            .map_err(|e| format!("cannot hook signals: {e}"))?;
        Ok(Self { delivery })
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.delivery.get_read().as_fd()
    }

    /// The signals that arrived since the last look, without waiting.
    fn pending(&mut self) -> Vec<i32> {
        self.delivery.pending().collect()
    }

    /// The signals that arrived, waiting for at least one.
    fn wait(&mut self) -> Result<Vec<i32>, String> {
        loop {
            let mut fds = [PollFd::new(self.fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(format!("poll failed: {e}")),
            }
            let arrived = self.pending();
            if !arrived.is_empty() {
                return Ok(arrived);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_built_ins_or_commands() {
        assert_eq!(parse_line("   "), Ok(Line::Nothing));
        assert_eq!(parse_line("# a comment"), Ok(Line::Nothing));
        assert_eq!(parse_line("exit"), Ok(Line::Exit(0)));
        assert_eq!(parse_line("exit 3"), Ok(Line::Exit(3)));
        assert_eq!(parse_line("cd"), Ok(Line::Cd(None)));
        assert_eq!(parse_line("cd /tmp"), Ok(Line::Cd(Some("/tmp".into()))));
        assert_eq!(
            parse_line("  sleep\t30 "),
            Ok(Line::Run(vec!["sleep".into(), "30".into()]))
        );
        assert!(parse_line("exit 256").unwrap_err().contains("0 to 255"));
        assert!(parse_line("exit 1 2").unwrap_err().contains("too many"));
        assert!(parse_line("cd a b").unwrap_err().contains("too many"));
        assert_eq!(
            parse_line("sh -c 'exit 3'"),
            Ok(Line::Run(vec!["sh".into(), "-c".into(), "exit 3".into()]))
        );
        assert_eq!(
            parse_line(r#"echo "" a"b c"d"#),
            Ok(Line::Run(vec!["echo".into(), "".into(), "ab cd".into()]))
        );
        assert!(parse_line("echo 'oops")
            .unwrap_err()
            .contains("unterminated"));
    }

    #[test]
    fn the_child_gets_a_null_terminated_argv() {
        let prepared = Prepared::new(&["echo".into(), "hi".into()]).unwrap();
        assert_eq!(prepared.argv.len(), 3);
        assert!(prepared.argv[2].is_null());
        assert!(Prepared::new(&["a\0b".into()]).is_err());
    }
}
