//! What the judge finds: problems, and trace requirements as judged.

/// One thing that went wrong, with the lines that show it.
#[derive(Debug, Clone)]
pub struct Problem {
    pub headline: String,
    pub details: Vec<Detail>,
}

/// A line of a problem's details; `Mismatch` lines are marked and coloured.
#[derive(Debug, Clone)]
pub enum Detail {
    Plain(String),
    Mismatch(String),
}

/// A trace requirement as judged: what went wrong, if anything, and the
/// events it rested on.
#[derive(Debug, Clone)]
pub struct Judged {
    /// The requirement's kind (`signal`, `reaped`...), or one of the rules
    /// every traced case has: `no_refused_calls`, `all_reaped`,
    /// `complete_trace` (when the trace is full).
    pub what: String,
    /// The case's process it is about.
    pub process: String,
    /// Empty when it held.
    pub problems: Vec<Problem>,
    /// Indices into the case's events: those that satisfied it or, for a
    /// failure, those that show what happened instead; at most
    /// `requirements::MAX_DECIDING`, in the trace's order.
    pub events: Vec<usize>,
    /// How many more events it rested on.
    pub left_off: usize,
}

pub(super) fn problem(headline: impl Into<String>) -> Problem {
    Problem {
        headline: headline.into(),
        details: Vec::new(),
    }
}

pub fn problem_with(headline: impl Into<String>, details: Vec<String>) -> Problem {
    Problem {
        headline: headline.into(),
        details: details.into_iter().map(Detail::Plain).collect(),
    }
}
