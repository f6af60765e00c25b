//! The picture in a terminal, with box-drawing characters: a column per
//! process, a row per mark, arrows from sender to receiver across the
//! columns; for a round robin, a chart of who ran when beneath.
//!
//! ```text
//!        ms  2 main      3 child
//!       0.4  ├──────────▶●           fork → 3
//!       1.1  │           ●           42 B to stdout: "child 3 (parent 2): 0 1 1"
//!       1.2  │           ✕           exit 0
//!       1.3  ●◀┄┄┄┄┄┄┄┄┄┄┆             reaped 3: exit 0
//! ```

use super::picture::{Lane, Mark, Picture};

/// Columns a process gets.
const COLUMN: usize = 12;
/// Rows drawn at most; the page (`--html`) draws every mark.
const MAX_ROWS: usize = 200;
/// Columns of the chart of who ran when.
const CHART: usize = 60;

/// How a lane looks in a row where nothing happens to it.
#[derive(Clone, Copy, PartialEq)]
enum Life {
    NotYet,
    Running,
    Stopped,
    /// Exited, its status not yet collected: a zombie.
    Zombie,
    Gone,
}

impl Life {
    fn glyph(self) -> char {
        match self {
            Life::NotYet | Life::Gone => ' ',
            Life::Running => '│',
            Life::Stopped => '╎',
            Life::Zombie => '┆',
        }
    }
}

pub fn draw(picture: &Picture) -> String {
    let mut out = format!("{}\n", picture.title);
    for note in &picture.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    if picture.lanes.is_empty() {
        out.push_str("(no process was seen)\n");
        return out;
    }
    let index = |pid: i32| picture.lanes.iter().position(|l| l.pid == pid);
    // The header: each process's PID and name.
    let mut header = format!("{:>10}  ", "ms");
    for lane in &picture.lanes {
        header.push_str(&fit(&format!("{} {}", lane.pid, lane.label), COLUMN));
    }
    out.push_str(header.trim_end());
    out.push('\n');
    let mut life: Vec<Life> = vec![Life::NotYet; picture.lanes.len()];
    // A round robin's stops and continues are the chart's; the rows keep
    // the rest.
    let slices = picture.has_slices();
    let mut rows = 0;
    let mut left_off = 0;
    for (at, mark) in &picture.marks {
        let Some(from) = index(mark.pid()) else {
            continue;
        };
        update_life(&mut life, from, mark, &index);
        if slices && matches!(mark, Mark::Stop { .. } | Mark::Cont { .. }) {
            continue;
        }
        if rows == MAX_ROWS {
            left_off += 1;
            continue;
        }
        rows += 1;
        let line = row(&life, from, mark.to().and_then(index), mark);
        out.push_str(&format!("{at:>10.1}  {}  {}\n", line, mark.words()));
    }
    if left_off > 0 {
        out.push_str(&format!(
            "{:>10}  … {left_off} more (--html FILE draws every one)\n",
            ""
        ));
    }
    for lane in picture.lanes.iter().filter(|l| l.ending.is_none()) {
        {
            out.push_str(&format!(
                "{:>10}  {} {} was still running when the case ended\n",
                "", lane.pid, lane.label
            ));
        }
    }
    out.push_str(&format!(
        "{:>10}  │ running  ╎ stopped  ┆ exited, not yet reaped (a zombie)  ● ✕ what happened\n",
        ""
    ));
    if slices {
        out.push_str(&chart(picture));
    }
    out
}

/// The lanes' glyphs for one row, with the mark at `from` and its arrow to
/// `to`.
fn row(life: &[Life], from: usize, to: Option<usize>, mark: &Mark) -> String {
    let width = life.len() * COLUMN;
    let mut cells: Vec<char> = (0..width)
        .map(|x| {
            if x % COLUMN == 0 {
                life[x / COLUMN].glyph()
            } else {
                ' '
            }
        })
        .collect();
    let here = match mark {
        Mark::Exit { .. } => '✕',
        _ => '●',
    };
    match to {
        Some(to) if to != from => {
            let (a, b) = (from * COLUMN, to * COLUMN);
            let (low, high) = (a.min(b), a.max(b));
            let line = if matches!(mark, Mark::Reap { .. }) {
                '┄'
            } else {
                '─'
            };
            for cell in &mut cells[low + 1..high] {
                *cell = line;
            }
            cells[a] = if a < b { '├' } else { '┤' };
            // The arrow's head at the receiver; a reap points back at
            // the reaper.
            if matches!(mark, Mark::Reap { .. }) {
                // The status goes from the zombie to the reaper.
                cells[a] = '●';
                cells[b] = '┆';
                if a < b {
                    cells[a + 1] = '◀';
                } else {
                    cells[a - 1] = '▶';
                }
            } else if a < b {
                cells[b - 1] = '▶';
                cells[b] = if matches!(mark, Mark::Fork { .. }) {
                    '●'
                } else {
                    '┤'
                };
            } else {
                cells[b + 1] = '◀';
                cells[b] = '├';
            }
            let label = match mark {
                Mark::Signal { name, .. } => Some(name.clone()),
                Mark::Bytes { bytes, .. } => Some(format!("{bytes} B")),
                _ => None,
            };
            if let Some(name) = label {
                // The signal's name or the bytes on the arrow, when they fit.
                let name: Vec<char> = name.chars().collect();
                let room = high - low;
                if name.len() + 4 <= room {
                    let start = low + (room - name.len()) / 2 + 1;
                    cells[start..start + name.len()].copy_from_slice(&name);
                }
            }
        }
        _ => cells[from * COLUMN] = here,
    }
    cells.into_iter().collect::<String>()
}

/// How each lane stands after `mark`.
fn update_life(life: &mut [Life], from: usize, mark: &Mark, index: &dyn Fn(i32) -> Option<usize>) {
    // A process that acts is alive.
    if life[from] == Life::NotYet {
        life[from] = Life::Running;
    }
    match mark {
        Mark::Fork { child, .. } => {
            if let Some(child) = index(*child) {
                life[child] = Life::Running;
            }
        }
        Mark::Stop { .. } => life[from] = Life::Stopped,
        Mark::Cont { .. } => life[from] = Life::Running,
        Mark::Exit { .. } => life[from] = Life::Zombie,
        Mark::Reap { child, .. } => {
            if let Some(child) = index(*child) {
                life[child] = Life::Gone;
            }
        }
        _ => {}
    }
}

/// Who ran when: a row per process, each column a slice of the run's time.
fn chart(picture: &Picture) -> String {
    let length = picture.length_ms.max(1.0);
    let per_column = length / CHART as f64;
    let mut out =
        format!("\nwho ran when (each column is {per_column:.1} ms; █ running, ░ stopped):\n");
    for ((pid, spans), lane) in picture.running_spans().iter().zip(&picture.lanes) {
        let end = lane.to_ms.unwrap_or(length);
        let cells: String = (0..CHART)
            .map(|column| {
                let (from, to) = (column as f64 * per_column, (column + 1) as f64 * per_column);
                let alive = to > lane.from_ms && from < end;
                let ran = spans.iter().any(|&(a, b)| a < to && b > from);
                match (alive, ran) {
                    (_, true) => '█',
                    (true, false) => '░',
                    (false, false) => ' ',
                }
            })
            .collect();
        out.push_str(&format!(
            "{:>16}  {cells}\n",
            fit(&format!("{pid} {}", label(lane)), 16).trim_end()
        ));
    }
    out
}

fn label(lane: &Lane) -> &str {
    &lane.label
}

/// `text` in exactly `width` columns: cut with `…`, or padded.
fn fit(text: &str, width: usize) -> String {
    let count = text.chars().count();
    if count < width {
        format!("{text}{}", " ".repeat(width - count))
    } else {
        let cut: String = text.chars().take(width - 2).collect();
        format!("{cut}… ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lane(pid: i32, label: &str, to_ms: Option<f64>) -> Lane {
        Lane {
            pid,
            label: label.into(),
            parent: None,
            from_ms: 0.0,
            to_ms,
            ending: to_ms.map(|_| "exit 0".into()),
        }
    }

    #[test]
    fn arrows_run_from_sender_to_receiver() {
        let picture = Picture {
            title: "ex2_signal_exchange".into(),
            lanes: vec![lane(2, "main", Some(9.0)), lane(3, "child", Some(5.0))],
            marks: vec![
                (
                    1.0,
                    Mark::Fork {
                        parent: 2,
                        child: 3,
                    },
                ),
                (
                    2.0,
                    Mark::Signal {
                        from: 3,
                        to: 2,
                        name: "SIGUSR1".into(),
                    },
                ),
                (
                    5.0,
                    Mark::Exit {
                        pid: 3,
                        ending: "exit 0".into(),
                    },
                ),
                (
                    6.0,
                    Mark::Reap {
                        by: 2,
                        child: 3,
                        ending: "exit 0".into(),
                    },
                ),
            ],
            length_ms: 9.0,
            notes: vec![],
        };
        let text = draw(&picture);
        let rows: Vec<&str> = text.lines().collect();
        assert_eq!(rows[1], "        ms  2 main      3 child");
        assert_eq!(rows[2], "       1.0  ├──────────▶●             fork → 3");
        assert_eq!(rows[3], "       2.0  ├◀─SIGUSR1──┤             SIGUSR1");
        assert_eq!(rows[4], "       5.0  │           ✕             exit 0");
        assert_eq!(
            rows[5],
            "       6.0  ●◀┄┄┄┄┄┄┄┄┄┄┆             reaped 3: exit 0"
        );
    }
}
