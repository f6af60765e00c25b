//! Commands a shell runs: each made by `fork` and turned into its program
//! by `exec` in the child, and each change of state the shell reports
//! being one its `wait` really returned.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use labcheck::{Bindings, LinePattern};

use super::data::{writes_carrying, written};
use super::{Context, Finding};
use crate::grade::facts::{Event, EventKind, CASE_PATH};
use crate::grade::judge::problem::problem_with;

/// A command the transcript says the shell started.
struct Started<'t> {
    pid: i32,
    /// Its first word, quotes removed: the program it names.
    program: String,
    /// The stdout line that said so.
    line: &'t str,
}

/// The commands announced by the stdout lines matching `line`, whose
/// `{pid:BINDING}` (default `command`) is the command's PID and whose text
/// after that PID and `": "` is the command line.
fn started<'t>(c: &Context<'t>) -> Vec<Started<'t>> {
    let binding = c.requirement.binding.as_deref().unwrap_or("command");
    let Ok(pattern) = LinePattern::new(c.requirement.line.as_deref().unwrap_or("")) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for line in &c.process.stdout {
        let mut bindings = Bindings::new();
        if !pattern.matches(&line.text, &mut bindings) {
            continue;
        }
        let Some(&pid) = bindings.get(binding) else {
            continue;
        };
        let after = format!("{pid}: ");
        let Some(at) = line.text.find(&after) else {
            continue;
        };
        let command = &line.text[at + after.len()..];
        let program = first_word(command);
        found.push(Started {
            pid,
            program,
            line: &line.text,
        });
    }
    found
}

/// The first word of a command line, as a shell with plain quotes splits it.
fn first_word(command: &str) -> String {
    let mut word = String::new();
    let mut quote = None;
    for ch in command.trim_start().chars() {
        match quote {
            Some(q) if ch == q => quote = None,
            Some(_) => word.push(ch),
            None if ch == '\'' || ch == '"' => quote = Some(ch),
            None if ch.is_whitespace() => break,
            None => word.push(ch),
        }
    }
    word
}

/// Where `execvp` finds `program` in a case: itself if it names a path,
/// else the first executable file of that name along [`CASE_PATH`]. The
/// path is resolved as the kernel's `/proc/PID/exe` shows it.
fn resolve(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |path: &Path| {
        path.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let path = if program.contains('/') {
        Some(PathBuf::from(program)).filter(|p| executable(p))
    } else {
        CASE_PATH
            .split(':')
            .map(|dir| Path::new(dir).join(program))
            .find(|p| executable(p))
    }?;
    Some(path.canonicalize().unwrap_or(path))
}

/// `commands`: every command the transcript says the shell started was a
/// child the shell made with `fork` (not `vfork`, which is what
/// `posix_spawn` and `std::process::Command` use), which became the
/// program its first word names with its first `exec`, or, if no such
/// program exists, exited with 127 without becoming anything. The shell
/// itself never exec'd (beyond its own start), and each stdout line
/// matching one of `output` was written, as a whole line, by a started
/// command (or a program it started) after its exec.
pub(super) fn commands<'a>(c: &Context<'a>) -> Finding<'a> {
    let me = c.process.pid;
    let name = &c.process.name;
    let announced = started(c);
    let mut decided: Vec<&Event> = Vec::new();
    let fail =
        |said: String, events: Vec<&'a Event>| Finding::failed(problem_with(said, vec![]), events);
    if let Some(exec) = c
        .trace
        .of_kind(EventKind::Exec)
        .filter(|e| e.pid == me)
        .nth(1)
    {
        return fail(
            format!(
                "{name} (pid {me}) itself exec'd {}: a shell runs each command in a child, and stays itself",
                exec.text.as_deref().unwrap_or("another program")
            ),
            vec![exec],
        );
    }
    for command in &announced {
        let pid = command.pid;
        let line = command.line;
        let Some(spawn) = c.trace.spawns_by(me).find(|e| e.pid == pid) else {
            let made: Vec<String> = c.trace.children(me).iter().map(|p| p.to_string()).collect();
            return Finding::failed(
                problem_with(
                    format!("{name} printed `{line}`, but created no process {pid}"),
                    vec![format!(
                        "processes it created: {}",
                        if made.is_empty() {
                            "none".into()
                        } else {
                            made.join(", ")
                        }
                    )],
                ),
                c.trace.spawns_by(me),
            );
        };
        decided.push(spawn);
        if spawn.text.as_deref() == Some("vfork") {
            return fail(
                format!("{name} made process {pid} with vfork (as posix_spawn and std::process::Command do), not fork: this step asks for fork, then exec in the child"),
                vec![spawn],
            );
        }
        let exec = c.trace.exec_of(pid);
        let exit = c.trace.of_kind(EventKind::Exit).find(|e| e.pid == pid);
        match (resolve(&command.program), exec) {
            (Some(wanted), Some(exec)) => {
                let became = exec.text.as_deref().unwrap_or("");
                if Path::new(became) != wanted {
                    return fail(
                        format!(
                            "process {pid} first exec'd {became}, not {} (`{}`): the child must exec the command itself, not a shell or a program of its own",
                            wanted.display(),
                            command.program
                        ),
                        vec![spawn, exec],
                    );
                }
                decided.push(exec);
            }
            (Some(wanted), None) => {
                return fail(
                    format!(
                        "process {pid} never exec'd {} (`{}`): it did the command's work itself, or ran nothing",
                        wanted.display(),
                        command.program
                    ),
                    vec![spawn].into_iter().chain(exit).collect(),
                );
            }
            (None, Some(exec)) => {
                return fail(
                    format!(
                        "process {pid} exec'd {}, but `{}` names no program on {CASE_PATH}",
                        exec.text.as_deref().unwrap_or("a program"),
                        command.program
                    ),
                    vec![spawn, exec],
                );
            }
            (None, None) => {
                let code = exit.and_then(|e| e.code);
                if code != Some(127) {
                    let ended = exit.map_or("never ended".to_string(), |e| {
                        match (e.code, e.signal.as_deref()) {
                            (Some(code), _) => format!("exited with {code}"),
                            (_, Some(signal)) => format!("was killed by {signal}"),
                            _ => "ended".to_string(),
                        }
                    });
                    return fail(
                        format!(
                            "`{}` names no program, so process {pid} should exit with 127 once exec fails; it {ended}",
                            command.program
                        ),
                        vec![spawn].into_iter().chain(exit).collect(),
                    );
                }
                decided.extend(exit);
            }
        }
    }
    if let Some(finding) = output_of_commands(c, &announced) {
        return finding;
    }
    Finding::held(decided)
}

/// Each stdout line matching one of `output` was written onto the
/// process's stdout by a started command after it exec'd.
fn output_of_commands<'a>(c: &Context<'a>, announced: &[Started]) -> Option<Finding<'a>> {
    let patterns: Vec<LinePattern> = c
        .requirement
        .output
        .iter()
        .filter_map(|p| LinePattern::new(p).ok())
        .collect();
    if patterns.is_empty() {
        return None;
    }
    let onto = c.onto_stdout();
    // Only what each command wrote after its exec counts.
    let after_exec = |e: &Event| onto(e) && c.trace.after_exec(e);
    // A command, or a program it started in turn (`sh -c 'cat; exit 5'`).
    let commands: std::collections::BTreeSet<i32> = announced
        .iter()
        .flat_map(|s| {
            let mut tree = c.trace.descendants(s.pid);
            tree.insert(s.pid);
            tree
        })
        .collect();
    let streams = written(c.trace, after_exec);
    for line in &c.process.stdout {
        let text = line.text.as_str();
        if !patterns
            .iter()
            .any(|p| p.matches(text, &mut Bindings::new()))
        {
            continue;
        }
        let by_command = streams
            .iter()
            .any(|(pid, contents)| commands.contains(pid) && contents.has_line(text));
        if !by_command {
            let writers: Vec<&Event> = c
                .trace
                .of_kind(EventKind::Write)
                .filter(|e| {
                    onto(e)
                        && e.text
                            .as_deref()
                            .is_some_and(|t| t.split('\n').any(|l| l == text))
                })
                .collect();
            let who = writers
                .first()
                .map_or("no process the trace saw".to_string(), |w| {
                    format!("process {}", w.pid)
                });
            return Some(Finding::failed(
                problem_with(
                    format!("`{text}` was written by {who}, not by a command the shell started and exec'd"),
                    vec![],
                ),
                writers,
            ));
        }
    }
    None
}

/// A wait's report as the sheet words it, after `child PID `.
fn reported(event: &Event) -> Option<String> {
    match event.kind {
        EventKind::Reap => Some(match (event.code, event.signal.as_deref()) {
            (Some(code), _) => format!("exited with status {code}"),
            (_, Some(signal)) => {
                let core = if event.core_dumped {
                    " (core dumped)"
                } else {
                    ""
                };
                format!("was killed by {signal}{core}")
            }
            _ => return None,
        }),
        EventKind::WaitedStop => Some(format!(
            "was stopped by {}",
            event.signal.as_deref().unwrap_or("a signal")
        )),
        EventKind::WaitedCont => Some("was continued".to_string()),
        _ => None,
    }
}

/// `statuses`: the stdout lines matching `line` say `child PID` (then
/// perhaps a `)`) and then how it changed (`exited with status N`, `was killed by SIG`, with
/// ` (core dumped)` when the kernel says so, `was stopped by SIG`, `was
/// continued`). For each PID, those lines are exactly the reports the
/// process's waits returned for it, in the order they returned them: none
/// made up, none left out, none in other words, each printed after the
/// wait that returned it.
pub(super) fn statuses<'a>(c: &Context<'a>) -> Finding<'a> {
    let me = c.process.pid;
    let name = &c.process.name;
    let Ok(pattern) = LinePattern::new(c.requirement.line.as_deref().unwrap_or("")) else {
        return Finding::held([]);
    };
    // What the shell said, per child, in its order.
    let mut said: BTreeMap<i32, Vec<(String, &str)>> = BTreeMap::new();
    for line in &c.process.stdout {
        let text = line.text.as_str();
        if !pattern.matches(text, &mut Bindings::new()) {
            continue;
        }
        // `child PID` then the status, which ends the line (after a space
        // or a closing bracket: `stage 2 (child 43) was killed by SIGTERM`).
        let Some((_, rest)) = text.split_once("child ") else {
            continue;
        };
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        let Ok(pid) = rest[..digits].parse::<i32>() else {
            continue;
        };
        let words = rest[digits..].trim_start_matches([')', ' ']);
        said.entry(pid).or_default().push((words.to_string(), text));
    }
    // What its waits returned, per child, in the kernel's order.
    let mut waited: BTreeMap<i32, Vec<(String, &Event)>> = BTreeMap::new();
    for event in c.trace.events.iter().filter(|e| e.pid == me) {
        if let (Some(child), Some(words)) = (event.other, reported(event)) {
            waited.entry(child).or_default().push((words, event));
        }
    }
    let mut decided = Vec::new();
    for (pid, lines) in &said {
        let returned = waited.get(pid).map(Vec::as_slice).unwrap_or_default();
        for (n, (words, line)) in lines.iter().enumerate() {
            match returned.get(n) {
                Some((truth, event)) if truth == words => {
                    // Printed after the wait returned it, not guessed
                    // before (from /proc, say).
                    let writes = writes_carrying(c.trace, me, c.onto_stdout(), line);
                    let printed = writes.last().and_then(|w| c.trace.index_of(w));
                    if printed.is_some_and(|at| Some(at) < c.trace.index_of(event)) {
                        return Finding::failed(
                            problem_with(
                                format!("{name} printed `{line}` before its wait returned that report: a status is the wait's to give"),
                                vec![],
                            ),
                            writes.into_iter().chain([*event]),
                        );
                    }
                    decided.push(*event);
                }
                Some((truth, event)) => {
                    return Finding::failed(
                        problem_with(
                            format!("{name} printed `{line}`, but its wait returned `{truth}` for child {pid} there"),
                            vec![],
                        ),
                        [*event],
                    );
                }
                None => {
                    let events: Vec<&Event> = returned.iter().map(|(_, e)| *e).collect();
                    return Finding::failed(
                        problem_with(
                            format!(
                                "{name} printed `{line}`, but {}",
                                if returned.is_empty() {
                                    format!("none of its waits returned anything for {pid}")
                                } else {
                                    format!(
                                        "its waits returned only {} report(s) for {pid}",
                                        returned.len()
                                    )
                                }
                            ),
                            vec![],
                        ),
                        events,
                    );
                }
            }
        }
    }
    for (pid, returned) in &waited {
        let told = said.get(pid).map_or(0, Vec::len);
        if let Some((truth, event)) = returned.get(told) {
            return Finding::failed(
                problem_with(
                    format!(
                        "{name}'s wait returned `{truth}` for child {pid}, which it never reported"
                    ),
                    vec![],
                ),
                [*event],
            );
        }
    }
    Finding::held(decided)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_word_loses_its_quotes() {
        assert_eq!(first_word("sleep 30"), "sleep");
        assert_eq!(first_word("  'my prog' x"), "my prog");
        assert_eq!(first_word("\"sh\" -c 'exit 3'"), "sh");
        assert_eq!(first_word(""), "");
    }

    #[test]
    fn programs_are_found_as_execvp_finds_them() {
        let sh = resolve("sh").expect("every machine has sh");
        assert!(sh.is_absolute());
        assert_eq!(resolve("/bin/sh"), Some(sh));
        assert_eq!(resolve("no-such-program-anywhere"), None);
        // A directory is not a program.
        assert_eq!(resolve("/usr"), None);
    }

    #[test]
    fn each_report_reads_as_the_sheet_words_it() {
        let wait = |kind, code, signal: Option<&str>, core_dumped| Event {
            kind,
            code,
            signal: signal.map(String::from),
            core_dumped,
            ..Event::default()
        };
        let cases = [
            (
                wait(EventKind::Reap, Some(3), None, false),
                "exited with status 3",
            ),
            (
                wait(EventKind::Reap, None, Some("SIGQUIT"), true),
                "was killed by SIGQUIT (core dumped)",
            ),
            (
                wait(EventKind::WaitedStop, None, Some("SIGTSTP"), false),
                "was stopped by SIGTSTP",
            ),
            (
                wait(EventKind::WaitedCont, None, None, false),
                "was continued",
            ),
        ];
        for (event, words) in cases {
            assert_eq!(reported(&event).as_deref(), Some(words));
        }
    }
}
