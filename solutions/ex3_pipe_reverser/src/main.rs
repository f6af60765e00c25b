//! Lab step 3: a two-way conversation over two ordinary pipes.
//!
//! `ex3_pipe_reverser`
//!
//! The parent reads phrases (lines) from stdin and sends each to its child
//! over one pipe. The child reverses the phrase by user-perceived characters
//! (grapheme clusters, so "noël 👍🏽" becomes "👍🏽 lëon") and sends it back over
//! a second pipe; the parent prints it. The phrase `end`, or the end of
//! input, stops the conversation.
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
//! that is not UTF-8 is reported on stderr and skipped; the exit status is
//! then 1.
//!
//! Deadlock rules, the ones os_pipe's README states:
//! - a reader sees EOF only when *every* write end is closed, in every
//!   process, so each process drops the ends it does not use right after
//!   the fork;
//! - a pipe holds a limited amount (64 KiB on Linux). The child reads a whole
//!   phrase before it writes any of the reply, and the parent writes a whole
//!   phrase before it reads, so they never both wait on a full pipe.

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
    if phrase.is_ascii() {
        // Every ASCII character is a grapheme of its own (the one exception,
        // "\r\n", cannot occur inside a line), so reversing bytes is exact
        // and much cheaper than segmenting.
        let mut bytes = phrase.as_bytes().to_vec();
        bytes.reverse();
        return String::from_utf8(bytes).unwrap_or_default();
    }
    phrase.graphemes(true).rev().collect()
}

fn run() -> Result<ExitCode, String> {
    let interrupts = Interrupts::hook()?;

    // Two pipes, one per direction: a pipe is one-way.
    let (from_parent, to_child) = os_pipe::pipe().map_err(|e| format!("pipe: {e}"))?;
    let (from_child, to_parent) = os_pipe::pipe().map_err(|e| format!("pipe: {e}"))?;

    std::io::stdout().flush().ok();
    // SAFETY: no thread has been started, so the child is a copy of a
    // single-threaded process and may call any function, allocation and
    // `println!` included. It ends with `_exit`, never by returning.
    match unsafe { fork() } {
        Err(e) => Err(format!("fork failed: {e}")),
        Ok(ForkResult::Child) => {
            // The child uses only `from_parent` and `to_parent`. Closing the
            // parent's ends here matters: while the child holds a copy of
            // `to_child`, its own reads from `from_parent` never see EOF.
            drop(to_child);
            drop(from_child);
            drop(interrupts);
            // Ctrl-C sends SIGINT to the whole foreground process group, so
            // to the child too. The child ignores it and lets the parent end
            // the conversation: the parent closes the pipe, and the child
            // sees EOF, reports and exits 0, as at the end of input. SIGTERM,
            // which is sent to one process, keeps its default action.
            // SAFETY: SIG_IGN and SIG_DFL run no code of ours in a handler.
            let _ = unsafe { signal(Signal::SIGINT, SigHandler::SigIgn) };
            let _ = unsafe { signal(Signal::SIGTERM, SigHandler::SigDfl) };
            let status = run_child(from_parent, to_parent);
            unsafe { nix::libc::_exit(status) }
        }
        Ok(ForkResult::Parent { child }) => {
            // Mirror image: the parent must drop `to_parent`, or it would
            // wait forever for a reply from a child that has died.
            drop(from_parent);
            drop(to_parent);
            run_parent(child, to_child, from_child, interrupts)
        }
    }
}

fn run_child(from_parent: PipeReader, to_parent: PipeWriter) -> i32 {
    let me = getpid();
    let mut phrases = BufReader::new(from_parent);
    let mut replies = BufWriter::new(to_parent);
    let mut line = Vec::new();
    let mut count = 0u64;
    loop {
        line.clear();
        match phrases.read_until(b'\n', &mut line) {
            Ok(0) => break, // EOF: the parent closed its write end.
            Ok(_) => {}
            Err(_) => return 1,
        }
        let phrase = line.strip_suffix(b"\n").unwrap_or(&line);
        // The parent only sends UTF-8, but never trust a pipe blindly.
        let reply = reverse_phrase(&String::from_utf8_lossy(phrase));
        // One flush per phrase: the parent is waiting for exactly this reply.
        let sent = replies
            .write_all(reply.as_bytes())
            .and_then(|()| replies.write_all(b"\n"))
            .and_then(|()| replies.flush());
        if sent.is_err() {
            return 1; // EPIPE: the parent is gone.
        }
        count += 1;
    }
    let parent = getppid();
    let plural = if count == 1 { "" } else { "s" };
    println!("child {me} (parent {parent}): reversed {count} phrase{plural}, got EOF, exiting");
    0
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
    let mut reply = Vec::new();
    let prefix = format!("parent {me}: ");

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
        let phrase = line.strip_suffix(b"\r").unwrap_or(&line);
        if phrase == STOP_PHRASE {
            break Stop::EndOfInput;
        }
        if std::str::from_utf8(phrase).is_err() {
            out.flush().map_err(output_error)?; // keep stdout and stderr in order
            eprintln!(
                "{PROGRAM}: line {} is not valid UTF-8; skipped",
                input.line_number
            );
            skipped += 1;
            continue;
        }
        let sent = to_child
            .write_all(phrase)
            .and_then(|()| to_child.write_all(b"\n"))
            .and_then(|()| to_child.flush());
        reply.clear();
        let received = sent.and_then(|()| from_child.read_until(b'\n', &mut reply));
        match received {
            Ok(n) if n > 0 && reply.ends_with(b"\n") => {}
            _ => {
                // The child died or closed its pipe: reap it and say how.
                out.flush().ok();
                eprintln!("{PROGRAM}: child {child} stopped answering");
                finish(me, child, &mut out)?;
                return Ok(ExitCode::from(1));
            }
        }
        out.write_all(prefix.as_bytes())
            .and_then(|()| out.write_all(&reply))
            .map_err(output_error)?;
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

    // Closing our write end is what tells the child there is nothing more:
    // its read returns EOF (0 bytes) only when no write end is left open.
    drop(to_child);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverses_by_grapheme() {
        assert_eq!(reverse_phrase("hello"), "olleh");
        assert_eq!(reverse_phrase("noe\u{308}l"), "le\u{308}on");
        assert_eq!(reverse_phrase("ab👍🏽"), "👍🏽ba");
        assert_eq!(reverse_phrase("🇫🇷🇩🇪"), "🇩🇪🇫🇷");
        assert_eq!(reverse_phrase(""), "");
    }
}
