//! Demo: creating a process, and who is whose parent.
//!
//! `cargo run -p ex1_fibonacci_child --example process_ids`
//!
//! `fork` returns twice: once in the parent, with the child's PID, and once
//! in the new child, with nothing. Each process then asks the kernel who it
//! is (`getpid`) and who its parent is (`getppid`).

use nix::sys::wait::waitpid;
use nix::unistd::{fork, getpid, getppid, ForkResult};

fn main() {
    println!(
        "parent {}: before fork; my own parent (the shell or cargo) is {}",
        getpid(),
        getppid()
    );
    // SAFETY: this program has a single thread, so the child may call any
    // function; it leaves with `_exit`.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            println!("child {}: my parent is {}", getpid(), getppid());
            unsafe { nix::libc::_exit(0) }
        }
        Ok(ForkResult::Parent { child }) => {
            println!("parent {}: I created child {child}", getpid());
            // Without this wait the child would stay a zombie until we exit.
            let status = waitpid(child, None).expect("waitpid");
            println!("parent {}: child ended: {status:?}", getpid());
        }
        Err(e) => eprintln!("fork failed: {e}"),
    }
}
