//! Expected output lines with placeholders.
//!
//! A pattern is literal text in which these placeholders stand for a part
//! of the line:
//!
//! | placeholder   | matches                                                        |
//! |---------------|----------------------------------------------------------------|
//! | `{pid:NAME}`  | a PID; the first use binds NAME, later uses must be the same   |
//! | `{int}`       | an optionally signed whole number                              |
//! | `{float}`     | a decimal number such as `1.5` or `-0.25`                      |
//! | `{any}`       | any text, possibly empty                                       |
//! | `{re:REGEX}`  | a regular expression (no `}` inside)                           |
//!
//! `{{` and `}}` stand for literal braces.

use std::collections::BTreeMap;
use std::fmt;

use regex::Regex;

/// PIDs bound so far, by name.
pub type Bindings = BTreeMap<String, i32>;

/// A compiled line pattern.
#[derive(Clone)]
pub struct LinePattern {
    source: String,
    regex: Regex,
    /// The `{pid:NAME}` names, in capture-group order.
    pid_names: Vec<String>,
}

impl fmt::Debug for LinePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl fmt::Display for LinePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl LinePattern {
    pub fn new(source: &str) -> Result<Self, String> {
        let mut regex = String::from("^");
        let mut pid_names = Vec::new();
        let mut rest = source;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("{{") {
                regex.push_str(r"\{");
                rest = after;
            } else if let Some(after) = rest.strip_prefix("}}") {
                regex.push_str(r"\}");
                rest = after;
            } else if let Some(after) = rest.strip_prefix('{') {
                let end = after
                    .find('}')
                    .ok_or_else(|| format!("unclosed `{{` in pattern {source:?}"))?;
                let placeholder = &after[..end];
                rest = &after[end + 1..];
                if let Some(name) = placeholder.strip_prefix("pid:") {
                    if name.is_empty() {
                        return Err(format!("`{{pid:}}` needs a name in {source:?}"));
                    }
                    pid_names.push(name.to_string());
                    regex.push_str(r"(\d+)");
                } else if let Some(custom) = placeholder.strip_prefix("re:") {
                    Regex::new(custom).map_err(|e| format!("bad regex in {source:?}: {e}"))?;
                    regex.push_str(&format!("(?:{custom})"));
                } else {
                    regex.push_str(match placeholder {
                        "int" => r"[-+]?\d+",
                        "float" => r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?",
                        "any" => r".*",
                        other => {
                            return Err(format!("unknown placeholder {{{other}}} in {source:?}"))
                        }
                    });
                }
            } else {
                let next = rest.find(['{', '}']).unwrap_or(rest.len());
                let next = if next == 0 { 1 } else { next };
                regex.push_str(&regex::escape(&rest[..next]));
                rest = &rest[next..];
            }
        }
        regex.push('$');
        let regex = Regex::new(&regex).map_err(|e| format!("pattern {source:?}: {e}"))?;
        Ok(Self {
            source: source.to_string(),
            regex,
            pid_names,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether `line` matches, given the PIDs bound so far. On a match,
    /// new bindings are added to `bindings`.
    pub fn matches(&self, line: &str, bindings: &mut Bindings) -> bool {
        let Some(captures) = self.regex.captures(line) else {
            return false;
        };
        let mut new = Bindings::new();
        for (name, group) in self.pid_names.iter().zip(captures.iter().skip(1)) {
            let Some(pid) = group.and_then(|g| g.as_str().parse::<i32>().ok()) else {
                return false;
            };
            let bound = bindings.get(name).or_else(|| new.get(name));
            match bound {
                Some(&known) if known != pid => return false,
                Some(_) => {}
                None => {
                    new.insert(name.clone(), pid);
                }
            }
        }
        bindings.extend(new);
        true
    }
}

/// Matches `lines` against `patterns` one for one, in order. On failure,
/// says where the first mismatch is.
pub fn match_in_order(
    lines: &[&str],
    patterns: &[LinePattern],
    bindings: &mut Bindings,
) -> Result<(), Mismatch> {
    for (index, pattern) in patterns.iter().enumerate() {
        let Some(line) = lines.get(index) else {
            return Err(Mismatch {
                index,
                reason: "output ended early".to_string(),
            });
        };
        if !pattern.matches(line, bindings) {
            return Err(Mismatch {
                index,
                reason: if bindings.is_empty() {
                    "line does not match".to_string()
                } else {
                    // The PIDs earlier lines fixed: a line may fail on them alone.
                    let known: Vec<String> = bindings
                        .iter()
                        .map(|(name, pid)| format!("{{pid:{name}}} is {pid}"))
                        .collect();
                    format!("line does not match (where {})", known.join(", "))
                },
            });
        }
    }
    if lines.len() > patterns.len() {
        return Err(Mismatch {
            index: patterns.len(),
            reason: "unexpected extra line".to_string(),
        });
    }
    Ok(())
}

/// Where a sequence of lines first departs from its patterns.
#[derive(Debug, PartialEq)]
pub struct Mismatch {
    pub index: usize,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> LinePattern {
        LinePattern::new(s).unwrap()
    }

    #[test]
    fn placeholders() {
        let mut b = Bindings::new();
        assert!(p("x {int} y {float} {any}").matches("x -3 y 2.50 whatever (ok)", &mut b));
        assert!(p("a.b (c) [d]").matches("a.b (c) [d]", &mut b));
        assert!(!p("a.b").matches("axb", &mut b));
        assert!(p("{re:o+k}!").matches("oook!", &mut b));
        assert!(p("{{literal}}").matches("{literal}", &mut b));
        assert!(LinePattern::new("{nope}").is_err());
        assert!(LinePattern::new("{pid:x").is_err());
    }

    #[test]
    fn pids_bind_once() {
        let mut b = Bindings::new();
        let pattern = p("child {pid:child} (parent {pid:parent})");
        assert!(pattern.matches("child 12 (parent 11)", &mut b));
        assert_eq!(b["child"], 12);
        assert!(!pattern.matches("child 13 (parent 11)", &mut b));
        assert!(!p("{pid:a} {pid:a}").matches("1 2", &mut Bindings::new()));
        // A failed match binds nothing.
        let mut fresh = Bindings::new();
        assert!(!p("{pid:a} x").matches("1 y", &mut fresh));
        assert!(fresh.is_empty());
    }

    #[test]
    fn sequences_report_the_first_mismatch() {
        let patterns = [p("a {int}"), p("b")];
        let mut b = Bindings::new();
        assert_eq!(match_in_order(&["a 1", "b"], &patterns, &mut b), Ok(()));
        assert_eq!(
            match_in_order(&["a 1", "c"], &patterns, &mut b)
                .unwrap_err()
                .index,
            1
        );
        assert_eq!(
            match_in_order(&["a 1"], &patterns, &mut b)
                .unwrap_err()
                .index,
            1
        );
        assert_eq!(
            match_in_order(&["a 1", "b", "c"], &patterns, &mut b)
                .unwrap_err()
                .index,
            2
        );
    }
}
