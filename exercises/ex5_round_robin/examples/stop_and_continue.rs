//! Demo: pausing and resuming one process with SIGSTOP and SIGCONT.
//!
//! `cargo run -p ex5_round_robin --example stop_and_continue`
//!
//! Starts `sh`, printing the time every half second for three seconds,
//! stops it after one second, continues it one second later. The gap in
//! its output is the time it was stopped. SIGSTOP cannot be caught or
//! ignored: the kernel simply stops scheduling the process.

use std::process::Command;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn main() -> std::io::Result<()> {
    let script = "for i in 1 2 3 4 5 6; do date +%T.%N | cut -c1-12; sleep 0.5; done";
    let mut child = Command::new("sh").args(["-c", script]).spawn()?;
    let pid = Pid::from_raw(child.id() as i32);
    std::thread::sleep(Duration::from_secs(1));
    println!("-- SIGSTOP to {pid}");
    kill(pid, Signal::SIGSTOP)?;
    std::thread::sleep(Duration::from_secs(1));
    println!("-- SIGCONT to {pid}");
    kill(pid, Signal::SIGCONT)?;
    let status = child.wait()?;
    println!("-- {pid} ended: {status}");
    Ok(())
}
