//! Demo: two programs joined by one pipe, and the write end left open.
//!
//! `cargo run -p ex7_pipeline_deadline --example two_stage_pipe`
//!
//! Two rounds. In each, the parent makes one pipe and forks two children:
//! the first execs `printf` with its stdout moved onto the pipe's write
//! end, the second execs `wc -l` with its stdin moved onto the read end.
//! This is `printf ... | wc -l`, done by hand. The parent never reads or
//! writes the pipe: the bytes go from one program to the other.
//!
//! What to watch for:
//! - round 1: the parent drops both of its ends as soon as both children
//!   exist. `printf` writes three lines and exits, `wc` prints `3` and
//!   exits right after it.
//! - round 2: the parent forgets its write end. `printf` has exited, yet a
//!   second later `wc` is still waiting: a reader sees end of file only
//!   when *every* write end is closed, and the parent still holds one.
//!   Then the parent drops it, and `wc` prints `3` at once. (Should it
//!   still hang, the demo kills it after 2 s: it always ends.)
//! - `ls -l /proc/PID/fd` on the waiting `wc` (be quick) shows its stdin
//!   is a pipe: `pipe:[...]`, the same number as in `printf`'s stdout.

use std::error::Error;
use std::ffi::{c_char, CString};
use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::libc;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, getpid, ForkResult, Pid};

/// A program ready for `execvp`: everything the child needs, made before
/// the fork, so that the child never allocates.
struct Program {
    /// Owns the strings `argv` points into.
    _words: Vec<CString>,
    /// One pointer per word, then a null pointer.
    argv: Vec<*const c_char>,
    /// What the child writes to stderr if `execvp` fails.
    failed: Vec<u8>,
}

impl Program {
    fn new(words: &[&str]) -> Result<Self, Box<dyn Error>> {
        let words = words
            .iter()
            .map(|w| CString::new(*w))
            .collect::<Result<Vec<_>, _>>()?;
        let mut argv: Vec<*const c_char> = words.iter().map(|w| w.as_ptr()).collect();
        argv.push(std::ptr::null());
        let failed = format!("child: cannot run {:?}\n", words[0]).into_bytes();
        Ok(Self {
            _words: words,
            argv,
            failed,
        })
    }
}

/// Forks a child that moves `end` onto `onto` (0 for stdin, 1 for stdout),
/// closes both of the pipe's original descriptors, and execs `program`.
fn spawn(
    program: &Program,
    end: RawFd,
    onto: RawFd,
    ends: [RawFd; 2],
) -> Result<Pid, Box<dyn Error>> {
    // Anything still in our stdout buffer would be copied into the child.
    std::io::stdout().flush()?;
    // SAFETY: this program has one thread. The child makes only
    // async-signal-safe calls (dup2, close, sigaction, execvp, write,
    // _exit) on memory prepared before the fork.
    match unsafe { fork() }? {
        ForkResult::Child => unsafe {
            libc::dup2(end, onto);
            // The copies made by `dup2` stay open across exec; the
            // originals are close-on-exec (os_pipe sets it), but closing
            // them here says so plainly, and holds even if exec fails.
            for fd in ends {
                if fd != onto {
                    libc::close(fd);
                }
            }
            // Rust's runtime ignores SIGPIPE, and an ignored signal stays
            // ignored across exec: put the default back, as a shell does.
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            libc::execvp(program.argv[0], program.argv.as_ptr());
            libc::write(
                libc::STDERR_FILENO,
                program.failed.as_ptr().cast(),
                program.failed.len(),
            );
            libc::_exit(127)
        },
        ForkResult::Parent { child } => Ok(child),
    }
}

/// Waits at most `limit` for `child` to end: its status, or `None` if it
/// is still running. (A demo may poll like this; your step must not.)
fn wait_at_most(child: Pid, limit: Duration) -> Result<Option<WaitStatus>, Box<dyn Error>> {
    let until = Instant::now() + limit;
    loop {
        match waitpid(child, Some(WaitPidFlag::WNOHANG))? {
            WaitStatus::StillAlive if Instant::now() < until => sleep(Duration::from_millis(10)),
            WaitStatus::StillAlive => return Ok(None),
            status => return Ok(Some(status)),
        }
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let me = getpid();
    // `printf` turns each `\n` in its format into a newline: three lines.
    let printf = Program::new(&["printf", "one\\ntwo\\nthree\\n"])?;
    let wc = Program::new(&["wc", "-l"])?;

    println!("parent {me}: round 1: both of our ends dropped at once");
    let (reader, writer) = os_pipe::pipe()?;
    let ends = [reader.as_raw_fd(), writer.as_raw_fd()];
    let first = spawn(&printf, writer.as_raw_fd(), libc::STDOUT_FILENO, ends)?;
    let second = spawn(&wc, reader.as_raw_fd(), libc::STDIN_FILENO, ends)?;
    println!("parent {me}: {first} is printf, {second} is wc -l");
    // Both users of the pipe exist: our copies must go now.
    drop(reader);
    // Without this drop, wc would never see end of file:
    drop(writer);
    // No write end is left open, so wc must finish: a blocking wait is safe.
    println!("parent {me}: printf {:?}", waitpid(first, None)?);
    println!("parent {me}: wc {:?}", waitpid(second, None)?);

    println!("\nparent {me}: round 2: our write end kept open");
    let (reader, writer) = os_pipe::pipe()?;
    let ends = [reader.as_raw_fd(), writer.as_raw_fd()];
    let first = spawn(&printf, writer.as_raw_fd(), libc::STDOUT_FILENO, ends)?;
    let second = spawn(&wc, reader.as_raw_fd(), libc::STDIN_FILENO, ends)?;
    println!("parent {me}: {first} is printf, {second} is wc -l");
    drop(reader);
    // The mistake: `writer` stays open in this process.
    println!("parent {me}: printf {:?}", waitpid(first, None)?);
    if let Some(status) = wait_at_most(second, Duration::from_secs(1))? {
        println!("parent {me}: wc {status:?} (unexpected: who closed our end?)");
        return Ok(());
    }
    println!("parent {me}: 1 s later wc is still waiting for end of file: our write end holds the pipe open");
    // Late, but now every write end is closed:
    drop(writer);
    println!("parent {me}: write end dropped");
    match wait_at_most(second, Duration::from_secs(2))? {
        Some(status) => println!("parent {me}: wc {status:?}"),
        None => {
            // Not expected; but a demo must never hang or leave a process.
            let _ = kill(second, Signal::SIGKILL);
            println!("parent {me}: wc killed: {:?}", waitpid(second, None)?);
        }
    }
    Ok(())
}
