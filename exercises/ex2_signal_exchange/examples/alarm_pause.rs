//! Demo: SIGALRM, `alarm` and waiting for a signal.
//!
//! `cargo run -p ex2_signal_exchange --example alarm_pause`
//!
//! Three times: set an alarm for one second, then sleep until a signal
//! comes. The handler only raises a flag (signal-hook's `flag` module).
//!
//! Waiting with plain `pause()` has a race: if the alarm fired between
//! setting it and calling `pause`, we would sleep forever. So SIGALRM is
//! blocked, and `sigsuspend` unblocks it and sleeps in one atomic step.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::unistd::alarm;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rang = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGALRM, Arc::clone(&rang))?;
    let mut alarm_only = SigSet::empty();
    alarm_only.add(Signal::SIGALRM);
    let usual = alarm_only.thread_swap_mask(SigmaskHow::SIG_BLOCK)?;

    let me = std::process::id();
    let start = Instant::now();
    for round in 1..=3 {
        println!(
            "process {me}: setting an alarm at {:.3} s",
            start.elapsed().as_secs_f64()
        );
        alarm::set(1);
        while !rang.swap(false, Ordering::SeqCst) {
            // Sleeps with `usual` as the mask (SIGALRM unblocked) until a
            // handler has run, then blocks SIGALRM again.
            let _ = usual.suspend();
        }
        println!(
            "process {me}: got SIGALRM #{round} at {:.3} s",
            start.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
