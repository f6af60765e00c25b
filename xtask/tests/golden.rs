//! The JSON report of `grade --solutions` held against a golden file, so
//! that moving the grader's code around cannot change a verdict unseen.
//!
//! What is compared is what a verdict is: every step's and case's status
//! and points, each diagnosis, each process's command and how it ended,
//! and each trace requirement (its kind, process, verdict, diagnosis, and
//! whether events decided it). What the machine's timing or numbering
//! decides is masked: every run of digits in a text becomes `N` (PIDs,
//! times, scratch paths), and a requirement's deciding events are reduced
//! to whether there were any (which ones come first depends on timing).
//!
//! `XTASK_BLESS=1 cargo test -p xtask --test golden` writes the golden file
//! afresh from the reference solutions; review its diff before committing.

mod common;

use common::{grade, one_at_a_time, root};
use serde_json::{json, Value};

const GOLDEN: &str = "xtask/tests/golden/solutions.json";

fn masked(value: &Value) -> Value {
    match value {
        Value::String(text) => {
            let mut out = String::with_capacity(text.len());
            let mut in_number = false;
            for c in text.chars() {
                if c.is_ascii_digit() {
                    if !in_number {
                        out.push('N');
                    }
                    in_number = true;
                } else {
                    in_number = false;
                    out.push(c);
                }
            }
            Value::String(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(masked).collect()),
        other => other.clone(),
    }
}

/// The fields of `from` named in `keys`, in that order.
fn pick(from: &Value, keys: &[&str]) -> Value {
    let mut map = serde_json::Map::new();
    for key in keys {
        map.insert(
            key.to_string(),
            from.get(*key).cloned().unwrap_or(Value::Null),
        );
    }
    Value::Object(map)
}

fn verdicts(report: &Value) -> Value {
    let list = |v: &Value, key: &str| v[key].as_array().cloned().unwrap_or_default();
    let steps: Vec<Value> = list(report, "steps")
        .iter()
        .map(|step| {
            let cases: Vec<Value> = list(step, "cases")
                .iter()
                .map(|case| {
                    let mut out = pick(
                        case,
                        &["case", "number", "status", "score", "max_score", "hidden"],
                    );
                    out["diagnosis"] = masked(&case["diagnosis"]);
                    let observed = &case["observed"];
                    if observed.is_object() {
                        out["processes"] = list(observed, "processes")
                            .iter()
                            .map(|p| {
                                let mut p = pick(p, &["name", "command", "exit_code", "signal"]);
                                p["command"] = masked(&p["command"]);
                                p
                            })
                            .collect();
                        for key in [
                            "killed_because",
                            "script_error",
                            "leftovers",
                            "scratch_leftovers",
                            "untraced_because",
                        ] {
                            out[key] = masked(&observed[key]);
                        }
                        out["requirements"] = list(observed, "requirements")
                            .iter()
                            .map(|r| {
                                json!({
                                    "what": r["what"],
                                    "process": r["process"],
                                    "passed": r["passed"],
                                    "diagnosis": masked(&r["diagnosis"]),
                                    "decided_by_events": !list(r, "events").is_empty(),
                                })
                            })
                            .collect();
                    }
                    out
                })
                .collect();
            let mut out = pick(step, &["step", "status", "score", "max_score"]);
            out["diagnosis"] = masked(&step["diagnosis"]);
            out["cases"] = Value::Array(cases);
            out
        })
        .collect();
    json!({
        "score": report["score"],
        "max_score": report["max_score"],
        "full_marks": report["full_marks"],
        "steps": steps,
    })
}

#[test]
fn the_solutions_report_is_as_recorded() {
    let _one = one_at_a_time();
    let run = grade(&["--solutions", "--format", "json"]);
    let report: Value = serde_json::from_slice(&run.stdout).unwrap_or_else(|e| {
        panic!(
            "{}",
            run.differs("not json", "a json report", &e.to_string())
        )
    });
    // The golden file was made traced; untraced, there are no trace
    // requirements to compare (other tests hold that mode).
    if report["isolation"]["traced"] != Value::Bool(true) {
        eprintln!(
            "skipped: the programs were not traced here ({})",
            report["isolation"]["untraced_because"]
        );
        return;
    }
    let got = serde_json::to_string_pretty(&verdicts(&report)).unwrap() + "\n";
    let path = root().join(GOLDEN);
    if std::env::var_os("XTASK_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (XTASK_BLESS=1 writes it)", path.display()));
    if got != expected {
        // The first lines that differ, with some context: the whole report
        // is long.
        let (e, g): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), got.lines().collect());
        let first = e
            .iter()
            .zip(&g)
            .position(|(a, b)| a != b)
            .unwrap_or(e.len().min(g.len()));
        let from = first.saturating_sub(8);
        let window = |lines: &[&str]| {
            lines
                .iter()
                .skip(from)
                .take(24)
                .copied()
                .collect::<Vec<_>>()
                .join("\n")
        };
        panic!(
            "{}",
            run.differs(
                &format!("the verdicts differ from {GOLDEN} from line {} (XTASK_BLESS=1 rewrites it, if the change is meant)", first + 1),
                &window(&e),
                &window(&g)
            )
        );
    }
}
