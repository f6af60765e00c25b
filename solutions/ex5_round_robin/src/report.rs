//! The end-of-run report: slices and run time per program, how far slice
//! lengths strayed from the schedule, and a text timeline.

use std::fmt::Write;
use std::time::Duration;

use crate::schedule::show;

/// Why a slice ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SliceEnd {
    /// Its deadline came and the coordinator stopped it.
    Deadline,
    /// The program exited during the slice.
    Exited,
    /// The coordinator was told to shut down.
    Shutdown,
}

/// One slice as it really happened, in time since the run started.
#[derive(Debug, Clone, Copy)]
pub struct Slice {
    pub program: usize,
    pub start: Duration,
    pub end: Duration,
    /// What the schedule gave it.
    pub configured: Duration,
    pub ended_by: SliceEnd,
}

impl Slice {
    pub fn length(&self) -> Duration {
        self.end.saturating_sub(self.start)
    }
}

/// Everything the report needs about one program.
pub struct ProgramSummary {
    pub name: String,
    pub pid: i32,
    pub outcome: String,
}

pub struct SliceReport<'a> {
    pub programs: &'a [ProgramSummary],
    pub slices: &'a [Slice],
    pub wall_time: Duration,
}

/// Median, 99th percentile and maximum of a set of errors.
#[derive(Debug, PartialEq)]
pub struct ErrorStats {
    pub count: usize,
    pub median: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl ErrorStats {
    /// Nearest-rank percentiles; `None` for an empty set.
    pub fn of(mut errors: Vec<Duration>) -> Option<Self> {
        if errors.is_empty() {
            return None;
        }
        errors.sort();
        let rank = |p: f64| {
            let index = (p * errors.len() as f64).ceil() as usize;
            errors[index.clamp(1, errors.len()) - 1]
        };
        Some(Self {
            count: errors.len(),
            median: rank(0.50),
            p99: rank(0.99),
            max: errors[errors.len() - 1],
        })
    }
}

pub const TIMELINE_WIDTH: usize = 60;

impl SliceReport<'_> {
    pub fn render(&self) -> String {
        let mut text = String::new();
        let name_width = self
            .programs
            .iter()
            .map(|p| p.name.len())
            .max()
            .unwrap_or(4)
            .max(7);
        let _ = writeln!(
            text,
            "  {:<name_width$}  {:>7}  {:>6}  {:>12}  ended",
            "program", "pid", "slices", "run time"
        );
        for (index, program) in self.programs.iter().enumerate() {
            let mine = self.slices.iter().filter(|s| s.program == index);
            let count = mine.clone().count();
            let run_time: Duration = mine.map(Slice::length).sum();
            let _ = writeln!(
                text,
                "  {:<name_width$}  {:>7}  {:>6}  {:>12}  {}",
                program.name,
                program.pid,
                count,
                show(run_time),
                program.outcome
            );
        }

        let full: Vec<Duration> = self
            .slices
            .iter()
            .filter(|s| s.ended_by == SliceEnd::Deadline)
            .map(|s| s.length().abs_diff(s.configured))
            .collect();
        match ErrorStats::of(full) {
            Some(stats) => {
                let _ = writeln!(
                    text,
                    "  slice length error |real - configured| over {} full slices: median {}, p99 {}, max {}",
                    stats.count,
                    show(stats.median),
                    show(stats.p99),
                    show(stats.max)
                );
            }
            None => {
                let _ = writeln!(text, "  slice length error: no slice ran to its deadline");
            }
        }
        text.push_str(&self.timeline(name_width));
        text
    }

    /// One row per program; a column is `#` for the program that ran most
    /// during that stretch of time, `.` otherwise.
    fn timeline(&self, name_width: usize) -> String {
        let mut text = String::new();
        let total = self.wall_time.max(Duration::from_nanos(1));
        let column = total / TIMELINE_WIDTH as u32;
        let column = column.max(Duration::from_nanos(1));
        let _ = writeln!(
            text,
            "  timeline: {} per column, {} in all",
            show(column),
            show(self.wall_time)
        );
        // For each column, the program that ran the longest in it, if any.
        let winners: Vec<Option<usize>> = (0..TIMELINE_WIDTH as u32)
            .map(|col| {
                let (from, to) = (column * col, column * (col + 1));
                let mut ran = vec![Duration::ZERO; self.programs.len()];
                for slice in self.slices {
                    ran[slice.program] += slice.end.min(to).saturating_sub(slice.start.max(from));
                }
                ran.iter()
                    .enumerate()
                    .filter(|(_, time)| !time.is_zero())
                    .max_by_key(|(_, time)| **time)
                    .map(|(program, _)| program)
            })
            .collect();
        let rows = (0..self.programs.len()).map(|program| {
            winners
                .iter()
                .map(|winner| if *winner == Some(program) { '#' } else { '.' })
                .collect::<String>()
        });
        for (program, row) in self.programs.iter().zip(rows) {
            let _ = writeln!(text, "  {:<name_width$} |{row}|", program.name);
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        assert_eq!(ErrorStats::of(vec![]), None);
        let stats = ErrorStats::of((1..=100).map(Duration::from_micros).collect()).unwrap();
        assert_eq!(stats.median, Duration::from_micros(50));
        assert_eq!(stats.p99, Duration::from_micros(99));
        assert_eq!(stats.max, Duration::from_micros(100));
        let one = ErrorStats::of(vec![ms(3)]).unwrap();
        assert_eq!((one.median, one.p99, one.max), (ms(3), ms(3), ms(3)));
    }

    #[test]
    fn timeline_shows_who_ran() {
        let programs = [
            ProgramSummary {
                name: "a".into(),
                pid: 1,
                outcome: "exited 0".into(),
            },
            ProgramSummary {
                name: "b".into(),
                pid: 2,
                outcome: "exited 0".into(),
            },
        ];
        let slice = |program, start, end| Slice {
            program,
            start: ms(start),
            end: ms(end),
            configured: ms(end - start),
            ended_by: SliceEnd::Deadline,
        };
        let slices = [slice(0, 0, 30), slice(1, 30, 60)];
        let report = SliceReport {
            programs: &programs,
            slices: &slices,
            wall_time: ms(60),
        };
        let text = report.render();
        let half = TIMELINE_WIDTH / 2;
        let row_a = format!("|{}{}|", "#".repeat(half), ".".repeat(half));
        let row_b = format!("|{}{}|", ".".repeat(half), "#".repeat(half));
        assert!(text.contains(&row_a), "{text}");
        assert!(text.contains(&row_b), "{text}");
        assert!(text.contains("over 2 full slices: median 0 ms"), "{text}");
    }
}
