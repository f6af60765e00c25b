//! Reports: one module per format, each a reader of the same
//! [`Outcome`](super::outcome::Outcome). None of them decides a grade.
//!
//! - `human`: for people (the default);
//! - `json`: the workbook's own schema, versioned (see `json`);
//! - `gradescope`: Gradescope's autograder `results.json`;
//! - `junit`: JUnit XML, which CI systems show natively.
//!
//! Hidden cases are hidden in every format: a report names them
//! `hidden case NAME`, gives their points and status, and nothing else.

pub mod gradescope;
pub mod human;
pub mod json;
pub mod junit;
pub mod learner;

use super::outcome::Outcome;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    #[default]
    Human,
    Json,
    Gradescope,
    Junit,
}

impl Format {
    /// As given on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Human => "human",
            Self::Json => "json",
            Self::Gradescope => "gradescope",
            Self::Junit => "junit",
        }
    }

    /// A report file's extension (`STUDENT.EXT` in a class's reports).
    pub fn extension(self) -> &'static str {
        match self {
            Self::Human => "txt",
            Self::Json => "json",
            Self::Gradescope => "gradescope.json",
            Self::Junit => "xml",
        }
    }
}

/// The report in `format`, uncoloured (colours are for a terminal, which
/// the caller handles for the human format).
pub fn render(outcome: &Outcome, format: Format, verbose: bool) -> Result<String, String> {
    match format {
        Format::Human => Ok(human::render(outcome, &human::Style::plain(), verbose)),
        Format::Json => json::render(outcome),
        Format::Gradescope => gradescope::render(outcome),
        Format::Junit => junit::render(outcome),
    }
}
