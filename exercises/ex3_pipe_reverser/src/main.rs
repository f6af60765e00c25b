//! Lab step 3: a two-way conversation over two pipes. Read README.md
//! beside this file.
//!
//! `ex3_pipe_reverser`
//!
//! When finished, the parent reads phrases (lines) from stdin and sends each
//! to its child over one pipe. The child reverses the phrase by
//! user-perceived characters (grapheme clusters: "noël 👍🏽" becomes
//! "👍🏽 lëon") and sends it back over a second pipe; the parent prints it.
//! The phrase `end`, or the end of input, stops the conversation: the child
//! sees end of file, reports and exits, and the parent reaps it.
//!
//! ```text
//! parent 4242: forked child 4243
//! parent 4242: olleh
//! parent 4242: dlrow
//! child 4243 (parent 4242): reversed 2 phrases, got EOF, exiting
//! parent 4242: child 4243 exited with status 0
//! ```
//!
//! The prompt `phrase> ` is printed only when stdin is a terminal. A line
//! that is not UTF-8 is reported on stderr (`ex3_pipe_reverser: line 2 is
//! not valid UTF-8; skipped`) and skipped; the exit status is then 1. A
//! 1 MiB phrase must come back without deadlock. SIGTERM to the parent, or
//! Ctrl-C (SIGINT to the parent and the child, which ignores it), ends the
//! conversation the same way, then prints `parent 4242: stopped by SIGTERM`
//! and exits with 128 + the signal number.
//!
//! Every line it prints, word for word: README.md, "Output, exactly".
//!
//! Check your work: `cargo xtask grade ex3`. Stuck? `cargo xtask hint ex3`.

// TODO: delete this line when you are done; the warnings it hides will help.
#![allow(unused)]

use std::io::{BufRead, BufReader, BufWriter, IsTerminal, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{signal, SigHandler, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, getpid, getppid, ForkResult, Pid};
use os_pipe::{PipeReader, PipeWriter};
use signal_hook::iterator::backend::SignalDelivery;
use signal_hook::iterator::exfiltrator::SignalOnly;
use unicode_segmentation::UnicodeSegmentation;

const PROGRAM: &str = "ex3_pipe_reverser";
const USAGE: &str = "usage: ex3_pipe_reverser (phrases on stdin, one per line; `end` stops)";
const STOP_PHRASE: &[u8] = b"end";

/// SIGINT and SIGTERM make the parent shut the conversation down cleanly
/// (close the pipe, reap the child) instead of dying and orphaning it.
const INTERRUPTS: [Signal; 2] = [Signal::SIGINT, Signal::SIGTERM];

fn main() -> ExitCode {
    if let Some(arg) = std::env::args().nth(1) {
        eprintln!("{PROGRAM}: unexpected argument {arg:?} ({USAGE})");
        return ExitCode::from(2);
    }
    match run() {
        Ok(code) => code,
        Err(message) => {
            eprintln!("{PROGRAM}: {message}");
            ExitCode::from(1)
        }
    }
}

/// Reverses a phrase by grapheme clusters, so accents and emoji survive.
fn reverse_phrase(phrase: &str) -> String {
    // TODO: reverse by grapheme clusters (unicode-segmentation), not by
    // `char`s: a flag or an accented letter may be several chars.
    todo!("reverse a phrase")
}

fn run() -> Result<ExitCode, String> {
    let interrupts = Interrupts::hook()?;

    // TODO: make two pipes with `os_pipe::pipe()`, one per direction.

    // TODO: flush stdout and fork, with a `// SAFETY:` comment.
    // - In the child: drop the ends it does not use (and `interrupts`),
    //   ignore SIGINT (Ctrl-C reaches the whole foreground process group:
    //   let the parent end the conversation, so that the child sees EOF),
    //   put SIGTERM back to its default action, call `run_child`, and leave
    //   with `_exit`.
    // - In the parent: drop the ends it does not use, call `run_parent`.
    // Each `drop` deserves a comment: which read would never see EOF
    // without it?
    todo!("two pipes and a fork")
}

fn run_child(from_parent: PipeReader, to_parent: PipeWriter) -> i32 {
    // TODO: read phrases line by line until EOF (0 bytes read), reverse
    // each, and write it back with its newline, flushed at once: the parent
    // is waiting for exactly that reply. Count the phrases; at EOF print
    // "child PID (parent PPID): reversed N phrases, got EOF, exiting" ("1
    // phrase" in the singular) and return 0 (1 if writing failed: the
    // parent is gone).
    todo!("the child's loop")
}

/// Why the parent stopped reading phrases.
enum Stop {
    EndOfInput,
    Interrupted(Signal),
}

fn run_parent(
    child: Pid,
    to_child: PipeWriter,
    from_child: PipeReader,
    mut interrupts: Interrupts,
) -> Result<ExitCode, String> {
    let me = getpid();
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    let mut input = PhraseInput {
        reader: BufReader::with_capacity(64 * 1024, stdin.lock()),
        interrupts: &mut interrupts,
        line_number: 0,
    };
    // Buffered: when input comes from a pipe, many replies share one write.
    // `PhraseInput` flushes it before it waits for more input, so nobody
    // waits for a reply that sits in our buffer.
    let mut out = BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    let mut to_child = BufWriter::with_capacity(64 * 1024, to_child);
    let mut from_child = BufReader::with_capacity(64 * 1024, from_child);
    let mut skipped = 0u64;
    let mut reply: Vec<u8> = Vec::new();

    writeln!(out, "parent {me}: forked child {child}").map_err(output_error)?;
    let stop = loop {
        if interactive {
            write!(out, "phrase> ").map_err(output_error)?;
        }
        let line = match input.next_line(&mut out)? {
            Ok(Some(line)) => line,
            Ok(None) => break Stop::EndOfInput,
            Err(signal) => break Stop::Interrupted(signal),
        };
        // TODO: strip a trailing '\r'; stop at STOP_PHRASE; report and skip
        // a line that is not UTF-8 (flush `out` first, so that stdout and
        // stderr stay in order). Send the phrase and its newline to the
        // child, flush, and read one reply line. If the child does not
        // answer, report it, reap it with `finish` and return exit status 1.
        // Otherwise print "parent PID: " and the reply.
        todo!("one round trip")
    };
    if interactive {
        writeln!(out).map_err(output_error)?;
    }
    // A signal that came together with the end of input still counts: poll
    // may report the EOF before the handler has run.
    let stop = match input.interrupts.take() {
        Some(signal) => Stop::Interrupted(signal),
        None => stop,
    };

    // TODO: tell the child there is nothing more. How does a reader learn
    // that? Then the code below reaps it.
    let child_ok = finish(me, child, &mut out)?;
    match stop {
        Stop::Interrupted(signal) => {
            writeln!(out, "parent {me}: stopped by {signal}").map_err(output_error)?;
            out.flush().map_err(output_error)?;
            Ok(ExitCode::from(128 + signal as u8))
        }
        Stop::EndOfInput if child_ok && skipped == 0 => Ok(ExitCode::SUCCESS),
        Stop::EndOfInput => Ok(ExitCode::from(1)),
    }
}

/// Reaps the child and reports how it ended. True if it exited with 0.
fn finish(me: Pid, child: Pid, out: &mut impl Write) -> Result<bool, String> {
    // Our output must precede the child's last line only if it was written
    // first; flushing here keeps the printed order equal to the real one.
    out.flush().map_err(output_error)?;
    let status = waitpid(child, None).map_err(|e| format!("waitpid failed: {e}"))?;
    let ok = matches!(status, WaitStatus::Exited(_, 0));
    let line = match status {
        WaitStatus::Exited(_, code) => format!("child {child} exited with status {code}"),
        WaitStatus::Signaled(_, signal, _) => format!("child {child} was killed by {signal}"),
        other => format!("child {child} ended oddly: {other:?}"),
    };
    writeln!(out, "parent {me}: {line}").map_err(output_error)?;
    out.flush().map_err(output_error)?;
    Ok(ok)
}

fn output_error(e: std::io::Error) -> String {
    format!("cannot write to stdout: {e}")
}

/// Lines from stdin, read so that SIGINT/SIGTERM can interrupt the wait.
struct PhraseInput<'a, R> {
    reader: BufReader<R>,
    interrupts: &'a mut Interrupts,
    line_number: u64,
}

impl<R: Read + AsFd> PhraseInput<'_, R> {
    /// The next line without its `\n`: `Ok(None)` at the end of input,
    /// `Err(signal)` when a signal asked us to stop.
    fn next_line(
        &mut self,
        out: &mut impl Write,
    ) -> Result<Result<Option<Vec<u8>>, Signal>, String> {
        let mut line = Vec::new();
        loop {
            if self.reader.buffer().is_empty() {
                // About to block: first show the user everything so far.
                out.flush().map_err(output_error)?;
                if let Some(signal) = self.wait_for_input()? {
                    return Ok(Err(signal));
                }
            }
            let buffered = self
                .reader
                .fill_buf()
                .map_err(|e| format!("cannot read stdin: {e}"))?;
            if buffered.is_empty() {
                self.line_number += u64::from(!line.is_empty());
                return Ok(Ok((!line.is_empty()).then_some(line)));
            }
            if let Some(end) = buffered.iter().position(|&b| b == b'\n') {
                line.extend_from_slice(&buffered[..end]);
                self.reader.consume(end + 1);
                self.line_number += 1;
                return Ok(Ok(Some(line)));
            }
            line.extend_from_slice(buffered);
            let taken = buffered.len();
            self.reader.consume(taken);
        }
    }

    /// Blocks until stdin is readable or a signal arrived.
    fn wait_for_input(&mut self) -> Result<Option<Signal>, String> {
        loop {
            let mut fds = [
                PollFd::new(self.reader.get_ref().as_fd(), PollFlags::POLLIN),
                PollFd::new(self.interrupts.fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(format!("poll failed: {e}")),
            }
            let stdin_ready = fds[0].any().unwrap_or(false);
            let signalled = fds[1].any().unwrap_or(false);
            if signalled {
                if let Some(signal) = self.interrupts.take() {
                    return Ok(Some(signal));
                }
            }
            if stdin_ready {
                // Readable, at EOF, or hung up: the read will not block.
                return Ok(None);
            }
        }
    }
}

/// SIGINT and SIGTERM as something `poll` can wait for.
///
/// signal-hook's handler only records the signal and writes a byte to a
/// socket (the self-pipe trick): both are async-signal-safe. All the real
/// work happens here, outside the handler.
struct Interrupts {
    delivery: SignalDelivery<UnixStream, SignalOnly>,
}

impl Interrupts {
    fn hook() -> Result<Self, String> {
        let (read, write) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
        let hooked = INTERRUPTS.map(|s| s as i32);
        let delivery = SignalDelivery::with_pipe(read, write, SignalOnly, hooked)
            .map_err(|e| format!("cannot hook SIGINT/SIGTERM: {e}"))?;
        Ok(Self { delivery })
    }

    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.delivery.get_read().as_fd()
    }

    /// The signal that arrived, if any. SIGTERM wins over SIGINT.
    fn take(&mut self) -> Option<Signal> {
        let arrived: Vec<i32> = self.delivery.pending().collect();
        INTERRUPTS
            .into_iter()
            .rev()
            .find(|s| arrived.contains(&(*s as i32)))
    }
}
