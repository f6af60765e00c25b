//! Demo: catching SIGINT instead of dying.
//!
//! `cargo run -p ex2_signal_exchange --example sigint_smiley`
//!
//! Press Ctrl-C: the program prints `:~:` instead of ending. Press it three
//! times, or send SIGTERM from another terminal (`kill PID`), to stop it.
//!
//! The handler installed by signal-hook does not print: printing is not
//! async-signal-safe (it takes a lock the interrupted code may hold). It
//! only records the signal; the loop below does the printing.

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

fn main() -> std::io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    let me = std::process::id();
    println!("process {me}: press Ctrl-C (three times to quit)");
    let mut smiles = 0;
    for signal in signals.forever() {
        match signal {
            SIGINT => {
                println!("process {me}: :~:");
                smiles += 1;
                if smiles == 3 {
                    break;
                }
            }
            _ => {
                println!("process {me}: SIGTERM: bye");
                break;
            }
        }
    }
    Ok(())
}
