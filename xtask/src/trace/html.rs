//! The picture as one self-contained page (`trace --html FILE`): an SVG
//! per run, drawn here, and a small script that only highlights a process
//! under the pointer and checks the drawing once the page has loaded (it
//! writes what it found into `<body data-drawn=...>`, which CI reads in a
//! real browser).
//!
//! Each run is a row per process (`<g class="lane">`) and a column per
//! mark, in time order (evenly spaced, so that marks a microsecond apart
//! stay readable; each mark's time is in its tooltip). Arrows are
//! `<g class="mark KIND arrow" data-from=PID data-to=PID>`. A round robin
//! gets a second chart on a true time scale: who ran when.
//!
//! Every text a program produced is escaped: what it printed is data on
//! this page, never markup or script.

use std::fmt::Write;

use super::picture::{Mark, Picture};

const SLOT: f64 = 36.0;
const LANE: f64 = 44.0;
const LEFT: f64 = 150.0;
const TOP: f64 = 30.0;
/// Marks drawn at most per run.
const MAX_MARKS: usize = 2_000;
const CHART_WIDTH: f64 = 800.0;

pub fn page(pictures: &[Picture]) -> String {
    let mut body = String::new();
    for picture in pictures {
        body.push_str(&section(picture));
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>What the processes did</h1>\n\
         <p class=\"legend\"><span class=\"k-fork\">fork</span> \
         <span class=\"k-signal\">signal</span> <span class=\"k-bytes\">bytes through a pipe or FIFO</span> \
         <span class=\"k-reap\">reap (exit status collected)</span> · a dashed lane: exited, not yet reaped \
         (a zombie) · point at a mark for its time and details</p>\n\
         <div class=\"runs\">\n{body}</div>\n<script>{SCRIPT}</script>\n</body>\n</html>\n",
        escape(&pictures.first().map_or(String::new(), |p| p.title.clone()))
    )
}

fn section(picture: &Picture) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "<section>\n<h2>{}</h2>", escape(&picture.title));
    for note in &picture.notes {
        let _ = writeln!(out, "<p class=\"note\">{}</p>", escape(note));
    }
    let slices = picture.has_slices();
    let marks: Vec<&(f64, Mark)> = picture
        .marks
        .iter()
        .filter(|(_, m)| !(slices && matches!(m, Mark::Stop { .. } | Mark::Cont { .. })))
        .take(MAX_MARKS)
        .collect();
    let (x, y) = (column_x, lane_y);
    let width = LEFT + SLOT * (marks.len() as f64 + 1.0);
    let height = TOP + LANE * picture.lanes.len() as f64 + 10.0;
    let _ = writeln!(
        out,
        "<svg class=\"run\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\">\n{DEFS}"
    );
    for (index, lane) in picture.lanes.iter().enumerate() {
        // From its first mark to its exit, then dashed to its reap.
        let slot_of = |wanted: &dyn Fn(&Mark) -> bool| marks.iter().position(|(_, m)| wanted(m));
        let first = slot_of(&|m| m.pid() == lane.pid || m.to() == Some(lane.pid)).unwrap_or(0);
        let exit = slot_of(&|m| matches!(m, Mark::Exit { pid, .. } if *pid == lane.pid));
        let reap = slot_of(&|m| matches!(m, Mark::Reap { child, .. } if *child == lane.pid));
        let last = exit.unwrap_or(marks.len());
        let _ = writeln!(
            out,
            "<g class=\"lane\" data-pid=\"{pid}\"><text x=\"8\" y=\"{text_y}\">{pid} {label}</text>\
             <line x1=\"{x1}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\"/>",
            pid = lane.pid,
            text_y = y(index) + 4.0,
            label = escape(&lane.label),
            x1 = x(first),
            x2 = x(last),
            y = y(index),
        );
        if let (Some(exit), Some(reap)) = (exit, reap) {
            let _ = write!(
                out,
                "<line class=\"zombie\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{1}\"/>",
                x(exit),
                y(index),
                x(reap)
            );
        }
        let _ = writeln!(out, "<title>{}</title></g>", escape(&lane_title(lane)));
    }
    // A time every few marks: the columns are even, the times are not.
    for (slot, (at, _)) in marks.iter().enumerate().step_by(4) {
        let _ = writeln!(
            out,
            "<text class=\"tick\" x=\"{}\" y=\"{}\">{at:.1} ms</text>",
            x(slot) - 4.0,
            TOP - 12.0
        );
    }
    for (slot, (at, mark)) in marks.iter().enumerate() {
        draw_mark(&mut out, picture, slot, *at, mark);
    }
    out.push_str("</svg>\n");
    if picture.marks.len() > marks.len() && !slices {
        let _ = writeln!(
            out,
            "<p class=\"note\">{} more marks are not drawn.</p>",
            picture.marks.len() - marks.len()
        );
    }
    if slices {
        out.push_str(&chart(picture));
    }
    out.push_str("</section>\n");
    out
}

/// Where a lane's line runs, down the page.
fn lane_y(index: usize) -> f64 {
    TOP + LANE * index as f64 + LANE / 2.0
}

/// Where a mark's column is, across the page.
fn column_x(slot: usize) -> f64 {
    LEFT + SLOT * (slot as f64 + 0.5)
}

/// One mark at its column: an arrow between two lanes, or a glyph on one.
fn draw_mark(out: &mut String, picture: &Picture, slot: usize, at: f64, mark: &Mark) {
    let row = |pid: i32| picture.lanes.iter().position(|l| l.pid == pid);
    let (x, y) = (column_x, lane_y);
    let Some(from) = row(mark.pid()) else {
        return;
    };
    let tip = format!("{at:.3} ms · {} {}", mark.pid(), mark.words());
    let kind = kind_of(mark);
    let to = mark.to().and_then(row).filter(|&to| to != from);
    match to {
        Some(to) => {
            let (y1, y2) = if matches!(mark, Mark::Reap { .. }) {
                (y(to), y(from)) // the status flows to the reaper
            } else {
                (y(from), y(to))
            };
            let label = match mark {
                Mark::Signal { name, .. } => name.clone(),
                Mark::Bytes { bytes, .. } => format!("{bytes} B"),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "<g class=\"mark {kind} arrow\" data-from=\"{}\" data-to=\"{}\" data-at=\"{at:.3}\">\
                 <line x1=\"{x}\" y1=\"{y1}\" x2=\"{x}\" y2=\"{y2}\" marker-end=\"url(#head)\"/>\
                 <text x=\"{}\" y=\"{}\">{}</text><title>{}</title></g>",
                mark.pid(),
                mark.to().unwrap_or(0),
                x(slot) + 3.0,
                (y1 + y2) / 2.0,
                escape(&label),
                escape(&tip),
                x = x(slot),
            );
        }
        None => {
            let glyph = match mark {
                Mark::Exit { .. } => "✕",
                Mark::Exec { .. } => "◆",
                Mark::Output { .. } => "▪",
                Mark::Stop { .. } => "⏸",
                Mark::Cont { .. } => "▶",
                Mark::Refused { .. } => "⛔",
                _ => "●",
            };
            let _ = writeln!(
                out,
                "<g class=\"mark {kind}\" data-from=\"{}\" data-at=\"{at:.3}\">\
                 <text class=\"glyph\" x=\"{}\" y=\"{}\">{glyph}</text><title>{}</title></g>",
                mark.pid(),
                x(slot),
                y(from) + 5.0,
                escape(&tip),
            );
        }
    }
}

/// Who ran when, on a true time scale.
fn chart(picture: &Picture) -> String {
    let length = picture.length_ms.max(1.0);
    let scale = CHART_WIDTH / length;
    let height = TOP + LANE * picture.lanes.len() as f64;
    let mut out = format!(
        "<h3>Who ran when ({length:.0} ms)</h3>\n<svg class=\"slices\" xmlns=\"http://www.w3.org/2000/svg\" \
         width=\"{}\" height=\"{height}\">\n",
        LEFT + CHART_WIDTH + 10.0
    );
    for (index, ((pid, spans), lane)) in picture
        .running_spans()
        .iter()
        .zip(&picture.lanes)
        .enumerate()
    {
        let y = TOP + LANE * index as f64;
        let _ = writeln!(
            out,
            "<g class=\"lane\" data-pid=\"{pid}\"><text x=\"8\" y=\"{}\">{pid} {}</text>",
            y + LANE / 2.0 + 4.0,
            escape(&lane.label)
        );
        for (from, to) in spans {
            let _ = writeln!(
                out,
                "<rect class=\"slice\" x=\"{:.1}\" y=\"{}\" width=\"{:.1}\" height=\"{}\">\
                 <title>{pid} ran {from:.1}–{to:.1} ms</title></rect>",
                LEFT + from * scale,
                y + 8.0,
                ((to - from) * scale).max(0.5),
                LANE - 16.0
            );
        }
        out.push_str("</g>\n");
    }
    out.push_str("</svg>\n");
    out
}

fn lane_title(lane: &super::picture::Lane) -> String {
    let parent = lane
        .parent
        .map_or(String::new(), |p| format!(", child of {p}"));
    let ending = lane
        .ending
        .as_deref()
        .unwrap_or("still running when the case ended");
    format!("process {} {}{parent}: {ending}", lane.pid, lane.label)
}

fn kind_of(mark: &Mark) -> &'static str {
    match mark {
        Mark::Fork { .. } => "fork",
        Mark::Exec { .. } => "exec",
        Mark::Signal { .. } => "signal",
        Mark::Bytes { .. } => "bytes",
        Mark::Output { .. } => "output",
        Mark::Stop { .. } => "stop",
        Mark::Cont { .. } => "cont",
        Mark::Exit { .. } => "exit",
        Mark::Reap { .. } => "reap",
        Mark::Refused { .. } => "refused",
    }
}

/// Text as HTML: `&`, `<`, `>`, and both quotes escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

const DEFS: &str = "<defs><marker id=\"head\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" \
markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\"/></marker></defs>\n";

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}\
.runs{display:flex;flex-wrap:wrap;gap:2em;align-items:flex-start}section{overflow-x:auto;max-width:100%}\
.lane line{stroke:#999;stroke-width:2}.lane line.zombie{stroke-dasharray:4 4}.lane text{font-size:13px}\
.tick{font-size:10px;fill:#888}.mark line{stroke-width:2}.mark text{font-size:11px}.glyph{text-anchor:middle;font-size:14px}\
.fork line{stroke:#777}.signal line{stroke:#c0392b}.signal text{fill:#c0392b}.bytes line{stroke:#2471a3}\
.bytes text{fill:#2471a3}.reap line{stroke:#777;stroke-dasharray:3 3}.exit .glyph{fill:#c0392b}\
marker path{fill:#555}.slice{fill:#27ae60}.note{color:#a04000}.dim{opacity:.2}\
.legend span{padding:0 .3em;border-bottom:3px solid}.k-fork{border-color:#777}.k-signal{border-color:#c0392b}\
.k-bytes{border-color:#2471a3}.k-reap{border-color:#777;border-bottom-style:dashed}";

/// Highlights a process's marks under the pointer; checks the drawing and
/// says what it found in `body[data-drawn]` (what CI's browser reads).
const SCRIPT: &str = r#"
(function () {
  const runs = document.querySelectorAll("svg.run");
  let lanes = 0, arrows = 0;
  runs.forEach(function (svg) {
    lanes += svg.querySelectorAll("g.lane").length;
    arrows += svg.querySelectorAll("g.arrow").length;
    svg.querySelectorAll("g.lane").forEach(function (lane) {
      const pid = lane.dataset.pid;
      lane.addEventListener("mouseenter", function () {
        svg.querySelectorAll("g.mark").forEach(function (m) {
          const mine = m.dataset.from === pid || m.dataset.to === pid;
          m.classList.toggle("dim", !mine);
        });
      });
      lane.addEventListener("mouseleave", function () {
        svg.querySelectorAll("g.mark").forEach(function (m) { m.classList.remove("dim"); });
      });
    });
  });
  if (runs.length === 0 || lanes === 0) {
    throw new Error("the trace page has nothing drawn");
  }
  document.body.dataset.drawn = runs.length + " runs, " + lanes + " lanes, " + arrows + " arrows";
})();
"#;

#[cfg(test)]
mod tests {
    use super::super::picture::Lane;
    use super::*;

    #[test]
    fn what_a_program_printed_is_never_markup() {
        let picture = Picture {
            title: "<script>alert(1)</script>".into(),
            lanes: vec![Lane {
                pid: 2,
                label: "main\"><script>".into(),
                parent: None,
                from_ms: 0.0,
                to_ms: None,
                ending: None,
            }],
            marks: vec![(
                1.0,
                Mark::Output {
                    pid: 2,
                    stream: "stdout",
                    bytes: 9,
                    text: "</title><script>x()</script>".into(),
                },
            )],
            length_ms: 2.0,
            notes: vec![],
        };
        let page = page(&[picture]);
        assert_eq!(
            page.matches("<script>").count(),
            1,
            "only the page's own script"
        );
        assert!(page.contains("&lt;/title&gt;&lt;script&gt;x()"));
        assert!(page.contains("main&quot;&gt;&lt;script&gt;"));
    }
}
