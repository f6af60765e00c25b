//! Demo: running a command the `system` way, and the fork + exec way.
//!
//! `cargo run -p ex6_exit_statuses --example system_vs_fork_exec`
//!
//! C's `system(3)` (and Python's `os.system`) hands the whole line to a
//! shell: it forks a child that runs `/bin/sh -c LINE`, waits for it, and
//! returns the raw wait status. The shell reads the line, so `$HOME` is
//! expanded, `;` separates two commands and `exit 3` sets the status.
//! Forking and calling `execvp` yourself leaves the shell out: the program
//! named by the first word (found through `PATH`) becomes the child, and
//! every word reaches it exactly as written.
//!
//! What to watch for:
//! - the same `echo` words, expanded by `sh` in one run and printed
//!   literally in the other;
//! - the raw status: an exit code N is stored as `N << 8` (`0x0300` for 3),
//!   which nix decodes into `WaitStatus::Exited(pid, 3)`;
//! - a program that does not exist: `sh` says so and exits with 127, and
//!   our own child, whose `execvp` fails with ENOENT, exits with 127 too,
//!   because that is the status every shell uses for "command not found".
//!
//! `std::process::Command` does this job for you, but it may start the
//! child with `posix_spawn` instead of `fork`, and it hides the raw number
//! (`ExitStatusExt::into_raw` gives it back). In this step you fork.

use std::error::Error;
use std::ffi::{c_char, CString};
use std::io::Write;

use nix::errno::Errno;
use nix::libc;
use nix::sys::wait::WaitStatus;
use nix::unistd::{fork, getpid, ForkResult, Pid};

/// A command ready for `execvp`, built *before* the fork: after it, the
/// child must not allocate (another thread might have held the allocator's
/// lock at the moment of the fork, and nobody would ever release it).
struct Prepared {
    /// The words themselves; `argv` points into them.
    _words: Vec<CString>,
    /// One pointer per word, then a null pointer, as `execvp` expects.
    argv: Vec<*const c_char>,
    /// What the child writes if `execvp` fails, also made in advance.
    failed: Vec<u8>,
}

impl Prepared {
    fn new(words: &[&str]) -> Result<Self, Box<dyn Error>> {
        let words = words
            .iter()
            .map(|w| CString::new(*w))
            .collect::<Result<Vec<_>, _>>()?;
        let mut argv: Vec<*const c_char> = words.iter().map(|w| w.as_ptr()).collect();
        argv.push(std::ptr::null());
        let failed = format!("child: cannot exec {:?}\n", words[0]).into_bytes();
        Ok(Self {
            _words: words,
            argv,
            failed,
        })
    }
}

/// Forks, makes the child run `command`, and waits for it. Returns the
/// child's PID and the wait status exactly as the kernel gave it.
fn run(command: &Prepared) -> Result<(Pid, i32), Box<dyn Error>> {
    // Whatever sits in our buffer would be copied into the child.
    std::io::stdout().flush()?;
    // SAFETY: this program has one thread. Even so, the child only makes
    // async-signal-safe calls on memory prepared before the fork: `execvp`
    // (glibc's searches PATH with buffers on the stack, no allocation),
    // `write` and `_exit`.
    match unsafe { fork() }? {
        ForkResult::Child => unsafe {
            libc::execvp(command.argv[0], command.argv.as_ptr());
            // Still here: the exec failed, and errno says why.
            let code = match Errno::last() {
                Errno::ENOENT | Errno::ENOTDIR => 127, // no such program
                _ => 126,                              // found, but cannot run it
            };
            libc::write(
                libc::STDERR_FILENO,
                command.failed.as_ptr().cast(),
                command.failed.len(),
            );
            libc::_exit(code)
        },
        ForkResult::Parent { child } => {
            // nix's `waitpid` decodes the status and drops the integer;
            // libc's hands it over as it is.
            let mut raw = 0;
            loop {
                // SAFETY: waits for our own child, writing into `raw`.
                let got = unsafe { libc::waitpid(child.as_raw(), &mut raw, 0) };
                if got == child.as_raw() {
                    return Ok((child, raw));
                }
                let error = Errno::last();
                if error != Errno::EINTR {
                    return Err(error.into());
                }
            }
        }
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let me = getpid();
    let commands: [(&str, &[&str]); 4] = [
        ("through sh -c", &["sh", "-c", "echo home is $HOME; exit 3"]),
        ("fork + execvp", &["echo", "home is $HOME;", "exit", "3"]),
        ("through sh -c", &["sh", "-c", "no-such-program-ex6"]),
        ("fork + execvp", &["no-such-program-ex6"]),
    ];
    for (how, words) in commands {
        let command = Prepared::new(words)?;
        println!("parent {me}: {how}: {words:?}");
        let (child, raw) = run(&command)?;
        let status = WaitStatus::from_raw(child, raw)?;
        println!("parent {me}: child {child}: raw status {raw:#06x}, that is {status:?}\n");
    }
    Ok(())
}
