//! Printing grades: a summary line per step, and for each failed case its
//! description, command, problems (expected/got, first mismatch marked),
//! how it ended and how long it took. Colours only on a terminal.

use std::io::IsTerminal;

use super::case::Case;
use super::runner::CaseRun;
use super::verdict::{tail, Detail, Verdict};

pub struct Style {
    colour: bool,
}

impl Style {
    pub fn detect() -> Self {
        let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Self { colour }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn good(&self, text: &str) -> String {
        self.paint("32", text)
    }

    pub fn bad(&self, text: &str) -> String {
        self.paint("31", text)
    }

    pub fn strong(&self, text: &str) -> String {
        self.paint("1", text)
    }
}

/// `text` with every control character but newline and tab escaped
/// (`\u{1b}`): what a program printed must never drive the terminal of
/// whoever reads the report.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' | '\t' => c.to_string(),
            c if c.is_control() => c.escape_default().to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// One case, graded.
pub struct Graded {
    pub case: Case,
    pub run: Option<CaseRun>,
    pub verdict: Verdict,
}

pub fn print_case(style: &Style, graded: &Graded, verbose: bool) {
    let case = &graded.case;
    let seconds = graded.run.as_ref().map_or(0.0, |r| r.elapsed_ms / 1e3);
    let label = if case.hidden {
        format!("hidden case {}", case.name())
    } else {
        case.description.clone()
    };
    let label = printable(&label);
    if graded.verdict.passed() {
        if verbose {
            println!("  {} {label} ({seconds:.2} s)", style.good("ok  "));
        }
        return;
    }
    if let Some(todo) = &graded.verdict.not_started {
        println!(
            "  {} {label}: stopped at {}",
            style.bad("TODO"),
            printable(todo)
        );
        return;
    }
    println!("  {} {label} ({seconds:.2} s)", style.bad("FAIL"));
    if case.hidden {
        return; // the problems would reveal the case
    }
    println!("       case: {}", case.file.display());
    if let Some(run) = &graded.run {
        for process in &run.processes {
            let ending = match (&process.exit_code, &process.signal) {
                (Some(code), _) => format!("exit status {code}"),
                (_, Some(signal)) => format!("killed by {signal}"),
                _ => "did not run".to_string(),
            };
            println!(
                "       {}: {} -> {ending}",
                printable(&process.name),
                printable(&process.command)
            );
        }
    }
    for problem in &graded.verdict.problems {
        println!("       - {}", printable(&problem.headline));
        for detail in &problem.details {
            match detail {
                Detail::Plain(text) => println!("           {}", printable(text)),
                Detail::Mismatch(text) => {
                    println!("           {}", style.bad(&printable(text)))
                }
            }
        }
    }
    if let Some(run) = graded.run.as_ref().filter(|r| r.killed_because.is_some()) {
        for process in &run.processes {
            println!("       last output of {}:", printable(&process.name));
            for line in tail(&process.stdout, 10) {
                println!("           | {}", printable(&line));
            }
            for line in tail(&process.stderr, 5) {
                println!("           ! {}", printable(&line));
            }
        }
    }
}
