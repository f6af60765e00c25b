//! Facts: the types that cross rooms. A case request goes from the grader
//! to a keeper; a case run comes back; the trace's events, the jail's
//! features and the tracer's perturbations are read by the judge and the
//! reports.
//!
//! This room depends on nothing else in the grader, so that every other
//! room may use it without pulling in the tracer, the jail or the judge.

pub mod event;
pub mod jail;
pub mod request;
pub mod run;

pub use event::{Event, EventKind, Limit, TraceCut};
pub use jail::{JailFeatures, CASE_PATH, SCRATCH_LIMIT};
pub use request::{CaseRequest, JailRequest, Perturb, SandboxMode};
pub use run::{CaseRun, Line, ProcessRun};
