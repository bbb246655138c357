//! Progress reporting: spinners per resource on a terminal, plain lines otherwise.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Where human-readable output goes.
pub type Sink = Arc<Mutex<dyn Write + Send>>;

/// Writes one line to a sink, ignoring write errors (output is best effort).
pub fn line(sink: &Sink, text: &str) {
    if let Ok(mut w) = sink.lock() {
        let _ = writeln!(w, "{text}");
    }
}

#[derive(Clone)]
pub struct Progress {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    Lines(Sink),
    Bars(indicatif::MultiProgress),
    Quiet,
}

/// One tracked piece of work.
pub struct Task {
    label: String,
    started: Instant,
    kind: TaskKind,
}

enum TaskKind {
    Line(Sink),
    Bar(indicatif::ProgressBar),
    Quiet,
}

impl Progress {
    /// Spinners when `terminal`, plain lines to `sink` otherwise.
    pub fn new(sink: Sink, terminal: bool) -> Self {
        let inner = if terminal {
            Inner::Bars(indicatif::MultiProgress::with_draw_target(
                indicatif::ProgressDrawTarget::stderr(),
            ))
        } else {
            Inner::Lines(sink)
        };
        Self { inner }
    }

    pub fn quiet() -> Self {
        Self {
            inner: Inner::Quiet,
        }
    }

    pub fn start(&self, label: impl Into<String>) -> Task {
        let label = label.into();
        let kind = match &self.inner {
            Inner::Lines(s) => {
                line(s, &format!("… {label}"));
                TaskKind::Line(s.clone())
            }
            Inner::Bars(m) => {
                let bar = m.add(indicatif::ProgressBar::new_spinner());
                if let Ok(style) =
                    indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                {
                    bar.set_style(style);
                }
                bar.set_message(label.clone());
                bar.enable_steady_tick(std::time::Duration::from_millis(120));
                TaskKind::Bar(bar)
            }
            Inner::Quiet => TaskKind::Quiet,
        };
        Task {
            label,
            started: Instant::now(),
            kind,
        }
    }
}

impl Task {
    fn finish(self, mark: &str, extra: &str) {
        let text = format!(
            "{mark} {}{extra} ({:.1}s)",
            self.label,
            self.started.elapsed().as_secs_f64()
        );
        match self.kind {
            TaskKind::Line(s) => line(&s, &text),
            TaskKind::Bar(b) => b.finish_with_message(text),
            TaskKind::Quiet => {}
        }
    }
    pub fn done(self) {
        self.finish("✓", "");
    }
    pub fn failed(self, why: &str) {
        self.finish("✗", &format!(": {why}"));
    }
}
