//! JUnit XML (`--format junit`), which CI systems show natively: one
//! `<testsuite>` per step, one `<testcase>` per case (classname: the
//! step), and for a case that did not pass a `<failure>` whose `type` is
//! the status (`failed`, `timed_out`, `does_not_compile`...), whose
//! `message` is its first line and whose text is the whole diagnosis.
//! Each testcase carries its points as properties `score` and `max_score`.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use crate::grade::outcome::{Outcome, Status};

pub fn render(outcome: &Outcome) -> Result<String, String> {
    let mut report = Report::new("cargo xtask grade");
    report.set_time(outcome.duration);
    for step in &outcome.steps {
        let mut suite = TestSuite::new(step.step);
        let mut time = Duration::ZERO;
        for case in &step.cases {
            let status = if case.status == Status::Passed {
                TestCaseStatus::success()
            } else {
                let diagnosis = case.diagnosis();
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status
                    .set_type(case.status.key())
                    .set_message(
                        diagnosis
                            .first()
                            .map_or(case.status.label(), |l| l.trim_start_matches("- ").trim()),
                    )
                    .set_description(diagnosis.join("\n"));
                status
            };
            let mut test = TestCase::new(case.label(), status);
            test.set_classname(step.step)
                .add_property(Property::new("score", case.earned.to_string()))
                .add_property(Property::new("max_score", case.points.to_string()));
            if let Some(run) = &case.run {
                let elapsed = Duration::from_secs_f64(run.elapsed_ms.max(0.0) / 1e3);
                test.set_time(elapsed);
                time += elapsed;
            }
            suite.add_test_case(test);
        }
        suite.set_time(time);
        if let Some(why) = step.state.diagnosis() {
            suite.set_system_out(format!("{}: {why}", step.state.key()));
        }
        report.add_test_suite(suite);
    }
    report
        .to_string()
        .map_err(|e| format!("cannot encode the JUnit report: {e}"))
}
