//! Demo: a one-way pipe from a child to its parent.
//!
//! `cargo run -p ex3_pipe_reverser --example one_way_pipe`
//!
//! The child writes five messages, a little slower each time, and exits;
//! the parent reads until end of file and prints each message it got. Note
//! the two `drop`s: the parent sees end of file only once *every* write end
//! is closed, its own copy included.
//!
//! ```text
//! parent 4242: got "child 4243: message 0"
//! ...
//! parent 4242: end of file; child 4243 reaped
//! ```

use std::io::{Read, Write};
use std::time::Duration;

use nix::sys::wait::waitpid;
use nix::unistd::{fork, getpid, ForkResult};

fn main() -> std::io::Result<()> {
    let (mut reader, mut writer) = os_pipe::pipe()?;
    // SAFETY: single-threaded, so the child may call anything; it leaves
    // with `_exit`.
    match unsafe { fork() }.map_err(std::io::Error::from)? {
        ForkResult::Child => {
            drop(reader); // the child only writes
            for n in 0..5 {
                std::thread::sleep(Duration::from_millis(100 * n));
                let _ = writeln!(writer, "child {}: message {n}", getpid());
            }
            unsafe { nix::libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            // Without this, `read_to_string` below would wait forever: our
            // own write end would keep the pipe open after the child exits.
            drop(writer);
            let mut received = String::new();
            reader.read_to_string(&mut received)?;
            let me = getpid();
            for line in received.lines() {
                println!("parent {me}: got {line:?}");
            }
            waitpid(child, None).map_err(std::io::Error::from)?;
            println!("parent {me}: end of file; child {child} reaped");
        }
    }
    Ok(())
}
