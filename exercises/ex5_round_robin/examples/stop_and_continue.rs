//! Demo: pausing and resuming one process with SIGSTOP and SIGCONT.
//!
//! `cargo run -p ex5_round_robin --example stop_and_continue`
//!
//! Starts `sh`, printing the time every half second for three seconds,
//! stops it after one second, continues it one second later. The gap in
//! its output is the time it was stopped. SIGSTOP cannot be caught or
//! ignored: the kernel simply stops scheduling the process.
//!
//! ```text
//! child 4243: 12:00:00.002
//! child 4243: 12:00:00.508
//! parent 4242: SIGSTOP to child 4243
//! parent 4242: SIGCONT to child 4243
//! child 4243: 12:00:02.005
//! ...
//! parent 4242: child 4243 ended: exit status: 0
//! ```

use std::process::Command;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::{getpid, Pid};

fn main() -> std::io::Result<()> {
    // `$$` is the shell's own PID: the child's, as every line says who wrote it.
    let script =
        "for i in 1 2 3 4 5 6; do echo \"child $$: $(date +%T.%N | cut -c1-12)\"; sleep 0.5; done";
    let mut child = Command::new("sh").args(["-c", script]).spawn()?;
    let me = getpid();
    let pid = Pid::from_raw(child.id() as i32);
    std::thread::sleep(Duration::from_secs(1));
    println!("parent {me}: SIGSTOP to child {pid}");
    kill(pid, Signal::SIGSTOP)?;
    std::thread::sleep(Duration::from_secs(1));
    println!("parent {me}: SIGCONT to child {pid}");
    kill(pid, Signal::SIGCONT)?;
    let status = child.wait()?;
    println!("parent {me}: child {pid} ended: {status}");
    Ok(())
}
