//! The lab's worker: `print_time N T` prints its PID and the time every N
//! seconds, for T seconds of wall-clock time, then exits.
//!
//! ```text
//! worker 4243: 1764000000.123456
//! worker 4243: 1764000000.623519
//! ```
//!
//! Under the round-robin coordinator it is stopped and continued from
//! outside; the gaps in its timestamps show when it was not running.
//!
//! Built twice: as a binary of its own, and as a module of the coordinator,
//! which runs it when started under the name `print_time`.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const USAGE: &str = "usage: print_time N T (print every N seconds, for T seconds)";

pub fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let (every, total) = match parse(&argv) {
        Ok(pair) => pair,
        Err(message) => {
            eprintln!("print_time: {message} ({USAGE})");
            return ExitCode::from(2);
        }
    };
    let me = std::process::id();
    let end = Instant::now() + total;
    let mut out = std::io::stdout().lock();
    while Instant::now() < end {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        // A closed stdout is no reason to panic: stop quietly.
        if writeln!(out, "worker {me}: {unix:.6}")
            .and_then(|()| out.flush())
            .is_err()
        {
            return ExitCode::from(1);
        }
        std::thread::sleep(every);
    }
    ExitCode::SUCCESS
}

fn parse(argv: &[String]) -> Result<(Duration, Duration), String> {
    let [every, total] = argv else {
        return Err(format!("expected 2 arguments, got {}", argv.len()));
    };
    let seconds = |text: &str, what: &str, min: f64| -> Result<Duration, String> {
        match text.parse::<f64>() {
            Ok(s) if (min..=86_400.0).contains(&s) => Ok(Duration::from_secs_f64(s)),
            _ => Err(format!(
                "{what} must be a number of seconds from {min} to 86400, got {text:?}"
            )),
        }
    };
    Ok((seconds(every, "N", 0.001)?, seconds(total, "T", 0.0)?))
}
