//! `cargo xtask watch [STEP]`: the learner's default way to work. It shows
//! the current step, grades it each time one of its files is saved, shows
//! what failed and offers a hint, and moves on when the step passes.
//!
//! Four threads feed one channel, and only the main thread acts:
//! - the file watcher (notify, with its debouncer): a burst of changes
//!   under `exercises/` becomes one message once it has been quiet for
//!   [`QUIET`]. It watches folders, not files, so a save that writes a new
//!   file and renames it over the old one (vim, JetBrains) is seen like a
//!   save in place or a `git checkout`;
//! - the keys (crossterm, the terminal in raw mode);
//! - SIGTERM, SIGHUP and SIGINT (signal-hook's iterator): quit cleanly;
//! - the grading under way, when there is one: the grader in a process
//!   group of its own, so that a new save, `q` or a signal stops all of
//!   it at once (and it dies with us, `PR_SET_PDEATHSIG`, should we be
//!   killed outright).
//!
//! A save whose files are byte for byte what was last graded (an editor
//! that touches without changing, a checkout of the same tree) is not
//! graded again: the fingerprint of the step's sources decides.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::Duration;

use crossterm::event::{Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use notify_debouncer_full::notify::{EventKind, RecursiveMode};
use notify_debouncer_full::DebounceEventResult;

use super::progress::{self, Graded, Progress};
use crate::{hint, project};

/// How long the files must stay quiet before a burst of changes is graded.
const QUIET: Duration = Duration::from_millis(300);

/// How long a grading that was asked to stop gets before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(2);

enum Message {
    /// Files changed under `exercises/`.
    Saved(Vec<PathBuf>),
    Key(KeyEvent),
    /// A grading ended (`generation` says which one).
    Graded {
        generation: u64,
        result: Result<Graded, String>,
    },
    /// A signal asked us to stop.
    Signal,
}

pub fn run(step: Option<&str>) -> Result<(), String> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        return Err(
            "watch needs a terminal (its keys); `cargo xtask grade STEP` grades once".into(),
        );
    }
    let root = project::root();
    let progress = Progress::load_or_rebuild(&root)?;
    let step = match step {
        Some(wanted) => project::find_step(wanted)?,
        None => match progress.next_step(&root) {
            Some(step) => step,
            None => {
                println!("every step is done: `cargo xtask list` shows them");
                return Ok(());
            }
        },
    };
    let (sender, messages) = channel();
    let _watcher = watch_files(&root, sender.clone())?;
    forward_keys(sender.clone());
    forward_signals(sender.clone())?;
    let _raw = RawMode::enter()?;
    let mut session = Session::new(root, progress, step, sender);
    let ended = session.serve(&messages);
    session.stop_grading();
    ended
}

/// Watches `exercises/` (folders, recursively) and sends each quiet burst.
fn watch_files(root: &Path, sender: Sender<Message>) -> Result<impl Drop, String> {
    let mut debouncer =
        notify_debouncer_full::new_debouncer(QUIET, None, move |result: DebounceEventResult| {
            let Ok(events) = result else { return };
            let paths: Vec<PathBuf> = events
                .into_iter()
                // Reads and opens are not saves.
                .filter(|e| !matches!(e.event.kind, EventKind::Access(_)))
                .flat_map(|e| e.event.paths.clone())
                .collect();
            if !paths.is_empty() {
                let _ = sender.send(Message::Saved(paths));
            }
        })
        .map_err(|e| format!("cannot watch the files: {e}"))?;
    let exercises = root.join("exercises");
    debouncer
        .watch(&exercises, RecursiveMode::Recursive)
        .map_err(|e| format!("cannot watch {}: {e}", exercises.display()))?;
    Ok(debouncer)
}

fn forward_keys(sender: Sender<Message>) {
    std::thread::spawn(move || loop {
        match crossterm::event::read() {
            Ok(Event::Key(key)) if key.kind == KeyEventKind::Press => {
                if sender.send(Message::Key(key)).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(_) => return,
        }
    });
}

fn forward_signals(sender: Sender<Message>) -> Result<(), String> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGHUP, SIGINT])
        .map_err(|e| format!("cannot hook signals: {e}"))?;
    std::thread::spawn(move || {
        for _ in signals.forever() {
            if sender.send(Message::Signal).is_err() {
                return;
            }
        }
    });
    Ok(())
}

/// The terminal in raw mode (keys one at a time, no echo) while it lives;
/// as it was, after.
struct RawMode;

impl RawMode {
    fn enter() -> Result<Self, String> {
        crossterm::terminal::enable_raw_mode()
            .map_err(|e| format!("cannot use the terminal: {e}"))?;
        Ok(Self)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
        println!();
    }
}

/// The grading under way.
struct Running {
    generation: u64,
    child_group: nix::unistd::Pid,
    /// The sources it grades.
    fingerprint: String,
}

/// What the screen shows below the report.
enum Aside {
    None,
    Hint(usize),
    List,
}

struct Session {
    root: PathBuf,
    progress: Progress,
    step: &'static str,
    sender: Sender<Message>,
    running: Option<Running>,
    generation: u64,
    /// Gradings of the current step, this session.
    gradings: u32,
    /// The fingerprint of the sources last graded (or under way).
    graded_sources: Option<String>,
    /// The last report for people, or what the screen says instead.
    report: String,
    /// A line above the report (what just happened).
    news: String,
    aside: Aside,
    /// Hints shown so far, per step.
    hints_shown: std::collections::BTreeMap<&'static str, usize>,
}

impl Session {
    fn new(root: PathBuf, progress: Progress, step: &'static str, sender: Sender<Message>) -> Self {
        let mut session = Self {
            root,
            progress,
            step,
            sender,
            running: None,
            generation: 0,
            gradings: 0,
            graded_sources: None,
            report: String::new(),
            news: String::new(),
            aside: Aside::None,
            hints_shown: Default::default(),
        };
        session.enter_step(step, "");
        session
    }

    /// Until `q` or a signal.
    fn serve(&mut self, messages: &Receiver<Message>) -> Result<(), String> {
        self.draw();
        for message in messages {
            match message {
                Message::Saved(paths) => self.saved(&paths),
                Message::Key(key) => {
                    if !self.key(key) {
                        return Ok(());
                    }
                }
                Message::Graded { generation, result } => self.graded(generation, result),
                Message::Signal => return Ok(()),
            }
            self.draw();
        }
        Ok(())
    }

    /// Makes `step` the current one: shown as last recorded when it is
    /// done with today's sources, graded otherwise.
    fn enter_step(&mut self, step: &'static str, news: &str) {
        self.stop_grading();
        self.step = step;
        self.gradings = 0;
        self.aside = Aside::None;
        self.news = news.to_string();
        self.graded_sources = None;
        if self.progress.is_done_now(&self.root, step) {
            self.graded_sources = Some(progress::fingerprint(&self.root, step));
            self.report = format!(
                "{step} is done: every case passed when it was last graded (r grades it again).\n"
            );
        } else {
            self.start_grading();
        }
    }

    fn saved(&mut self, paths: &[PathBuf]) {
        let dir = self.root.join("exercises").join(self.step);
        let ours = paths.iter().any(|p| {
            (p.starts_with(dir.join("src")) && !progress::is_editors_own(p))
                || *p == dir.join("Cargo.toml")
        });
        if !ours {
            return;
        }
        let now = progress::fingerprint(&self.root, self.step);
        if self.graded_sources.as_deref() == Some(now.as_str()) {
            return; // the same bytes as graded already
        }
        self.news = "saved: grading it".into();
        self.start_grading();
    }

    /// Returns false to quit.
    fn key(&mut self, key: KeyEvent) -> bool {
        let control = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('q') => return false,
            KeyCode::Char('c' | 'd') if control => return false,
            KeyCode::Char('h') => {
                let shown = self.hints_shown.entry(self.step).or_insert(0);
                *shown += 1;
                self.aside = Aside::Hint(*shown);
            }
            KeyCode::Char('l') => {
                self.aside = match self.aside {
                    Aside::List => Aside::None,
                    _ => Aside::List,
                }
            }
            KeyCode::Char('n') => match next_after(self.step) {
                Some(next) => self.enter_step(next, &format!("skipped {}", self.step)),
                None => self.news = "this is the last step".into(),
            },
            KeyCode::Char('r') => {
                self.news = "grading it again".into();
                self.start_grading();
            }
            KeyCode::Char('x') => {
                self.aside = Aside::None;
                self.news.clear();
            }
            _ => {}
        }
        true
    }

    fn start_grading(&mut self) {
        self.stop_grading();
        self.generation += 1;
        self.gradings += 1;
        self.report = "grading...\n".into();
        let fingerprint = progress::fingerprint(&self.root, self.step);
        self.graded_sources = Some(fingerprint.clone());
        match spawn_grader(&self.root, self.step) {
            Ok((child, json)) => {
                let child_group = nix::unistd::Pid::from_raw(child.id() as i32);
                let generation = self.generation;
                let sender = self.sender.clone();
                std::thread::spawn(move || {
                    let result = child
                        .wait_with_output()
                        .map_err(|e| format!("the grader: {e}"))
                        .and_then(|output| progress::finish_grading(&json, &output));
                    let _ = sender.send(Message::Graded { generation, result });
                });
                self.running = Some(Running {
                    generation,
                    child_group,
                    fingerprint,
                });
            }
            Err(why) => self.report = format!("cannot grade: {why}\n"),
        }
    }

    /// Stops the grading under way, if any, and everything it started:
    /// SIGTERM to its group, SIGKILL after [`STOP_GRACE`].
    fn stop_grading(&mut self) {
        use nix::sys::signal::{killpg, Signal};
        let Some(running) = self.running.take() else {
            return;
        };
        let _ = killpg(running.child_group, Signal::SIGTERM);
        let deadline = std::time::Instant::now() + STOP_GRACE;
        // The group is gone once no process is left in it.
        while killpg(running.child_group, None).is_ok() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = killpg(running.child_group, Signal::SIGKILL);
    }

    fn graded(&mut self, generation: u64, result: Result<Graded, String>) {
        let Some(running) = self.running.take_if(|r| r.generation == generation) else {
            return; // a grading stopped since: its result is stale
        };
        let graded = match result {
            Ok(graded) => graded,
            Err(why) => {
                self.report = format!("the grading failed: {why}\n");
                return;
            }
        };
        self.report = graded.report.clone();
        let passed = graded
            .states
            .iter()
            .any(|(s, state)| *s == self.step && state.is_done());
        // Recorded against the sources that were graded, not today's.
        let records = graded
            .states
            .into_iter()
            .map(|(step, state)| {
                let sources = running.fingerprint.clone();
                (step, progress::StepRecord { state, sources })
            })
            .collect();
        let _ = self.progress.record_as(&self.root, records);
        if passed {
            let done = self.step;
            match self.progress.next_step(&self.root) {
                Some(next) => {
                    let news = format!(
                        "{done} passes: well done. Now {next}: read {}",
                        super::list::sheet(next)
                    );
                    self.enter_step(next, &news);
                }
                None => self.news = format!("{done} passes, and so does every step: well done."),
            }
        }
    }

    /// What to try next, after a grading that did not pass.
    fn offer(&self) -> Option<String> {
        let state = &self.progress.steps.get(self.step)?.state;
        if self.running.is_some() || state.is_done() {
            return None;
        }
        let hints = hint::load().ok()?.get(self.step)?.len();
        let shown = self.hints_shown.get(self.step).copied().unwrap_or(0);
        let hint = match shown {
            0 => format!("stuck? press h for a hint ({hints} for this step)"),
            n if n < hints => format!("press h for hint {} of {hints}", n + 1),
            _ => "every hint is shown".to_string(),
        };
        Some(format!(
            "{hint} · see what your processes did: cargo xtask trace {} --compare --case NAME",
            &self.step[..3]
        ))
    }

    fn draw(&self) {
        let mut screen = String::new();
        let number = project::STEPS
            .iter()
            .position(|s| *s == self.step)
            .unwrap_or(0)
            + 1;
        screen.push_str(&format!(
            "watch: {} (step {number} of {}), grading {} · edit exercises/{}/src/main.rs\n",
            self.step,
            project::STEPS.len(),
            self.gradings,
            self.step
        ));
        if !self.news.is_empty() {
            screen.push_str(&format!("{}\n", self.news));
        }
        screen.push('\n');
        screen.push_str(&self.report);
        if let Some(offer) = self.offer() {
            screen.push_str(&format!("\n{offer}\n"));
        }
        match self.aside {
            Aside::None => {}
            Aside::Hint(n) => screen.push_str(&format!("\n{}", hint_text(self.step, n))),
            Aside::List => {
                let views = self.progress.views(&self.root);
                let next = self.progress.next_step(&self.root);
                screen.push_str(&format!("\n{}", super::list::render(&views, next)));
            }
        }
        screen.push_str(
            "\nh hint · l list · n next step · r re-grade · x reset the screen · q quit\n",
        );
        let mut out = std::io::stdout().lock();
        let _ = crossterm::execute!(
            out,
            crossterm::terminal::Clear(crossterm::terminal::ClearType::All),
            crossterm::terminal::Clear(crossterm::terminal::ClearType::Purge),
            crossterm::cursor::MoveTo(0, 0)
        );
        // Raw mode: a newline only moves down; the carriage return is ours.
        let _ = out.write_all(screen.replace('\n', "\r\n").as_bytes());
        let _ = out.flush();
    }
}

/// The grader for the current step, in a process group of its own that
/// dies with us.
fn spawn_grader(root: &Path, step: &str) -> Result<(Child, PathBuf), String> {
    use std::os::unix::process::CommandExt;
    let (mut command, json) = progress::grade_command(root, Some(step), true)?;
    command.stdin(std::process::Stdio::null()).process_group(0);
    // SAFETY: runs in the child between fork and exec: one prctl, a system
    // call, which is async-signal-safe; nothing allocates or locks. (The
    // death signal follows the thread that forks: the main thread, which
    // lives as long as we do.)
    unsafe {
        command.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(std::io::Error::from)
        });
    }
    let child = command
        .spawn()
        .map_err(|e| format!("cannot run the grader: {e}"))?;
    Ok((child, json))
}

fn next_after(step: &str) -> Option<&'static str> {
    let at = project::STEPS.iter().position(|s| *s == step)?;
    project::STEPS.get(at + 1).copied()
}

/// Hint `n` (from 1) of `step`, and how to see more.
fn hint_text(step: &str, n: usize) -> String {
    let Ok(all) = hint::load() else {
        return "no hints: exercises/hints.toml cannot be read\n".into();
    };
    let Some(hints) = all.get(step) else {
        return "no hints for this step\n".into();
    };
    let n = n.clamp(1, hints.len());
    let more = if n < hints.len() {
        " (h again for the next)"
    } else {
        " (the last one)"
    };
    format!("hint {n} of {}{more}: {}\n", hints.len(), hints[n - 1])
}
