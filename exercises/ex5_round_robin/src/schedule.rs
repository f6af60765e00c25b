//! Schedules: what to run, and when.
//!
//! Two forms are read from TOML. The **simple form** lists programs, each
//! with its own slice, run in round-robin order:
//!
//! ```toml
//! [[program]]
//! command = ["print_time", "0.5", "3"]
//! slice = "200ms"
//! ```
//!
//! The **full form** (in the style of ARINC 653) fixes a major frame and the
//! windows inside it; the frame repeats until every program has exited:
//!
//! ```toml
//! major_frame = "100ms"
//!
//! [[program]]
//! name = "fast"
//! command = ["print_time", "0.1", "2"]
//!
//! [[window]]
//! program = "fast"
//! start = "0ms"
//! duration = "40ms"
//! ```
//!
//! Every error names the file and the line that causes it.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// One program to run: its display name and its argv.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgramSpec {
    pub name: String,
    pub command: Vec<String>,
    /// Where the program was declared, for error messages (1-based).
    pub line: usize,
}

/// A window of the major frame, in the full form.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub program: usize,
    pub start: Duration,
    pub duration: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Round robin: program `i` runs for `slices[i]`, then the next.
    RoundRobin { slices: Vec<Duration> },
    /// A major frame of windows sorted by start, repeated.
    Frame {
        major_frame: Duration,
        windows: Vec<Window>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub programs: Vec<ProgramSpec>,
    pub plan: Plan,
}

/// The shortest slice or window accepted. Below this, the cost of a switch
/// (two signals and a wait) is a large part of the slice.
pub const MIN_SLICE: Duration = Duration::from_micros(500);
/// The longest one accepted: a typo must not freeze a program for a day.
pub const MAX_SLICE: Duration = Duration::from_secs(3600);
pub const MAX_PROGRAMS: usize = 64;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    major_frame: Option<Spanned<String>>,
    #[serde(default)]
    program: Vec<Spanned<RawProgram>>,
    #[serde(default)]
    window: Vec<Spanned<RawWindow>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProgram {
    name: Option<String>,
    command: Vec<String>,
    slice: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    program: Spanned<String>,
    start: Spanned<String>,
    duration: Spanned<String>,
}

impl Schedule {
    /// N copies of one command, each with the same slice.
    pub fn copies(count: usize, slice: Duration, command: Vec<String>) -> Result<Self, String> {
        if !(1..=MAX_PROGRAMS).contains(&count) {
            return Err(format!(
                "--copies must be between 1 and {MAX_PROGRAMS}, got {count}"
            ));
        }
        check_slice(slice).map_err(|e| format!("--slice {e}"))?;
        if command.is_empty() {
            return Err("missing the command to run after `--`".to_string());
        }
        let programs = (1..=count)
            .map(|i| ProgramSpec {
                name: format!("{}#{i}", base_name(&command[0])),
                command: command.clone(),
                line: 0,
            })
            .collect();
        Ok(Self {
            programs,
            plan: Plan::RoundRobin {
                slices: vec![slice; count],
            },
        })
    }

    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        Self::parse(&text).map_err(|(line, message)| match line {
            Some(line) => format!("{}:{line}: {message}", path.display()),
            None => format!("{}: {message}", path.display()),
        })
    }

    /// Parses a schedule. Errors carry the 1-based line they refer to.
    pub fn parse(text: &str) -> Result<Self, (Option<usize>, String)> {
        let line_at = |offset: usize| {
            // A span starting right after a newline belongs to the next line.
            let before = &text[..offset.min(text.len())];
            Some(before.matches('\n').count() + 1)
        };
        let raw: RawSchedule = toml::from_str(text).map_err(|e| {
            let line = e.span().and_then(|span| line_at(span.start));
            (line, e.message().trim().to_string())
        })?;
        if raw.program.is_empty() {
            return Err((None, "no [[program]] given: nothing to run".to_string()));
        }
        if raw.program.len() > MAX_PROGRAMS {
            let line = line_at(raw.program[MAX_PROGRAMS].span().start);
            return Err((line, format!("at most {MAX_PROGRAMS} programs are allowed")));
        }

        let mut programs: Vec<ProgramSpec> = Vec::new();
        for (index, spanned) in raw.program.iter().enumerate() {
            let line = line_at(spanned.span().start);
            let program = spanned.get_ref();
            if program.command.is_empty() || program.command[0].is_empty() {
                return Err((line, "`command` must name a program to run".to_string()));
            }
            let name = match &program.name {
                Some(name) => name.clone(),
                None => {
                    let base = base_name(&program.command[0]);
                    let same = raw.program.iter().filter(|p| {
                        p.get_ref().name.is_none() && base_name(&p.get_ref().command[0]) == base
                    });
                    if same.count() > 1 {
                        format!("{base}#{}", index + 1)
                    } else {
                        base.to_string()
                    }
                }
            };
            if name.is_empty() || name.len() > 32 || name.chars().any(char::is_whitespace) {
                return Err((
                    line,
                    format!("program name {name:?} must be 1 to 32 characters without spaces"),
                ));
            }
            if programs.iter().any(|p| p.name == name) {
                return Err((line, format!("two programs are named {name:?}")));
            }
            programs.push(ProgramSpec {
                name,
                command: program.command.clone(),
                line: line.unwrap_or(0),
            });
        }

        let plan = match &raw.major_frame {
            None => Self::round_robin(&raw, &programs, line_at)?,
            Some(frame) => Self::frame(&raw, frame, &programs, line_at)?,
        };
        Ok(Self { programs, plan })
    }

    fn round_robin(
        raw: &RawSchedule,
        programs: &[ProgramSpec],
        line_at: impl Fn(usize) -> Option<usize>,
    ) -> Result<Plan, (Option<usize>, String)> {
        if let Some(window) = raw.window.first() {
            return Err((
                line_at(window.span().start),
                "a [[window]] needs `major_frame` at the top of the file".to_string(),
            ));
        }
        let mut slices = Vec::new();
        for (spanned, spec) in raw.program.iter().zip(programs) {
            let Some(slice) = &spanned.get_ref().slice else {
                return Err((
                    line_at(spanned.span().start),
                    format!(
                        "program {:?} needs a `slice`, such as slice = \"20ms\"",
                        spec.name
                    ),
                ));
            };
            let length = parse_duration(slice.get_ref())
                .and_then(|d| check_slice(d).map(|()| d))
                .map_err(|e| (line_at(slice.span().start), format!("slice {e}")))?;
            slices.push(length);
        }
        Ok(Plan::RoundRobin { slices })
    }

    fn frame(
        raw: &RawSchedule,
        frame: &Spanned<String>,
        programs: &[ProgramSpec],
        line_at: impl Fn(usize) -> Option<usize>,
    ) -> Result<Plan, (Option<usize>, String)> {
        let major_frame = parse_duration(frame.get_ref())
            .and_then(|d| check_slice(d).map(|()| d))
            .map_err(|e| (line_at(frame.span().start), format!("major_frame {e}")))?;
        for spanned in &raw.program {
            if let Some(slice) = &spanned.get_ref().slice {
                return Err((
                    line_at(slice.span().start),
                    "with a major_frame, time is given by [[window]]s, not by `slice`".to_string(),
                ));
            }
        }
        if raw.window.is_empty() {
            return Err((
                line_at(frame.span().start),
                "a major_frame needs at least one [[window]]".to_string(),
            ));
        }
        // (window, line) pairs, to name both lines when two overlap.
        let mut windows: Vec<(Window, Option<usize>)> = Vec::new();
        for spanned in &raw.window {
            let raw_window = spanned.get_ref();
            let line = line_at(spanned.span().start);
            let wanted = raw_window.program.get_ref();
            let program = programs
                .iter()
                .position(|p| &p.name == wanted)
                .ok_or_else(|| {
                    let known: Vec<&str> = programs.iter().map(|p| p.name.as_str()).collect();
                    (
                        line_at(raw_window.program.span().start),
                        format!(
                            "no program is named {wanted:?} (known: {})",
                            known.join(", ")
                        ),
                    )
                })?;
            let start = parse_duration(raw_window.start.get_ref())
                .map_err(|e| (line_at(raw_window.start.span().start), format!("start {e}")))?;
            let duration = parse_duration(raw_window.duration.get_ref())
                .and_then(|d| check_slice(d).map(|()| d))
                .map_err(|e| {
                    (
                        line_at(raw_window.duration.span().start),
                        format!("duration {e}"),
                    )
                })?;
            if start + duration > major_frame {
                return Err((
                    line,
                    format!(
                        "window {} + {} ends at {}, past the major frame of {}",
                        show(start),
                        show(duration),
                        show(start + duration),
                        show(major_frame)
                    ),
                ));
            }
            windows.push((
                Window {
                    program,
                    start,
                    duration,
                },
                line,
            ));
        }
        windows.sort_by_key(|(w, _)| w.start);
        for pair in windows.windows(2) {
            let ((earlier, earlier_line), (later, later_line)) = (&pair[0], &pair[1]);
            if later.start < earlier.start + earlier.duration {
                let (first, second) = if earlier_line <= later_line {
                    ((earlier, earlier_line), (later, later_line))
                } else {
                    ((later, later_line), (earlier, earlier_line))
                };
                return Err((
                    *second.1,
                    format!(
                        "this window ({} to {}) overlaps the one on line {} ({} to {})",
                        show(second.0.start),
                        show(second.0.start + second.0.duration),
                        first.1.unwrap_or(0),
                        show(first.0.start),
                        show(first.0.start + first.0.duration)
                    ),
                ));
            }
        }
        for (index, spec) in programs.iter().enumerate() {
            if !windows.iter().any(|(w, _)| w.program == index) {
                return Err((
                    Some(spec.line),
                    format!(
                        "program {:?} has no [[window]], so it would never run",
                        spec.name
                    ),
                ));
            }
        }
        Ok(Plan::Frame {
            major_frame,
            windows: windows.into_iter().map(|(w, _)| w).collect(),
        })
    }
}

fn base_name(command: &str) -> &str {
    command.rsplit('/').next().unwrap_or(command)
}

fn check_slice(d: Duration) -> Result<(), String> {
    if d < MIN_SLICE || d > MAX_SLICE {
        return Err(format!(
            "must be between {} and {}, got {}",
            show(MIN_SLICE),
            show(MAX_SLICE),
            show(d)
        ));
    }
    Ok(())
}

/// Parses `20ms`, `1.5s`, `250us` or `100000ns`. A unit is required:
/// a bare `20` is too easy to misread.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale = match unit.trim() {
        "s" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "ns" => 1e-9,
        "" => return Err(format!("needs a unit (s, ms, us or ns), got {text:?}")),
        other => return Err(format!("has an unknown unit {other:?} in {text:?}")),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("is not a duration: {text:?}"))?;
    let secs = value * scale;
    if !secs.is_finite() || secs > 1e9 {
        return Err(format!("is out of range: {text:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A duration in the unit that reads best.
pub fn show(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if d.is_zero() {
        "0 ms".to_string()
    } else if secs >= 1.0 {
        format!("{secs:.3} s")
    } else if secs >= 1e-3 {
        format!("{:.3} ms", secs * 1e3)
    } else {
        format!("{:.1} us", secs * 1e6)
    }
}
