//! `pingpong ROUNDS`: the least a two-pipe conversation can cost.
//!
//! The parent sends a short fixed message over one pipe, the child sends
//! it straight back over another, ROUNDS times. No stdin, no stdout, no
//! parsing: the reverser's round trips are measured against this floor.

use std::io::{Read, Write};
use std::process::ExitCode;

use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult};

const MESSAGE: &[u8] = b"phrase 12345\n";

fn main() -> ExitCode {
    let Some(rounds) = std::env::args().nth(1).and_then(|n| n.parse::<u64>().ok()) else {
        eprintln!("usage: pingpong ROUNDS");
        return ExitCode::from(2);
    };
    let (mut from_parent, mut to_child) = os_pipe::pipe().expect("pipe");
    let (mut from_child, mut to_parent) = os_pipe::pipe().expect("pipe");
    let mut buffer = [0u8; MESSAGE.len()];
    // SAFETY: single-threaded; the child touches only its pipe ends and
    // leaves with `_exit`.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            drop(to_child); // or the read below would never see EOF
            drop(from_child);
            while from_parent.read_exact(&mut buffer).is_ok() {
                if to_parent.write_all(&buffer).is_err() {
                    break;
                }
            }
            unsafe { nix::libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop(from_parent);
            drop(to_parent); // so that a dead child reads as EOF, not a hang
            for _ in 0..rounds {
                to_child.write_all(MESSAGE).expect("write");
                from_child.read_exact(&mut buffer).expect("read");
            }
            drop(to_child); // EOF: the child's loop ends
            waitpid(child, None).expect("waitpid");
        }
    }
    ExitCode::SUCCESS
}
