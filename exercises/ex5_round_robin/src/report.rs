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
        // TODO: None for no errors; otherwise sort them and take nearest-rank
        // percentiles: the p-th percentile of n sorted values is the one at
        // rank ceil(p * n), counting from 1.
        todo!("median, p99 and max")
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
