//! A progress bar on stderr for command-line jobs (ingestion): items done of a total, rate and ETA.
//! On a terminal it redraws one line; otherwise (CI logs, pipes) it prints one line per item.

use std::{
    io::{IsTerminal, Write},
    time::Instant,
};

const WIDTH: usize = 28;

#[derive(Debug)]
pub struct ProgressBar {
    total: usize,
    unit: &'static str,
    started: Instant,
    terminal: bool,
}

impl ProgressBar {
    pub fn new(total: usize, unit: &'static str) -> Self {
        Self { total, unit, started: Instant::now(), terminal: std::io::stderr().is_terminal() }
    }

    /// `done` items finished, the last being `label`.
    pub fn update(&self, done: usize, label: &str) {
        let line = self.line(done, label, self.started.elapsed().as_secs_f64());
        let mut err = std::io::stderr().lock();
        // Progress is best effort: a closed stderr must not fail the job.
        let _ = if self.terminal { write!(err, "\r\x1b[2K{line}") } else { writeln!(err, "{line}") };
        let _ = err.flush();
    }

    /// Ends the redrawn line so later output starts on its own.
    pub fn finish(&self) {
        if self.terminal {
            eprintln!();
        }
    }

    fn line(&self, done: usize, label: &str, elapsed_s: f64) -> String {
        let total = self.total.max(1);
        let filled = (done.min(total) * WIDTH) / total;
        let bar = format!("{}{}", "=".repeat(filled), " ".repeat(WIDTH - filled));
        let rate = done as f64 / elapsed_s.max(1e-3);
        let eta = if done > 0 { (total.saturating_sub(done)) as f64 / rate } else { 0.0 };
        format!("[{bar}] {done}/{} {} {rate:.1}/s ETA {eta:.0}s  {label}", self.total, self.unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_in_proportion_and_estimates_the_rest() {
        let bar = ProgressBar { total: 4, unit: "docs", started: Instant::now(), terminal: false };
        let line = bar.line(1, "a.md", 2.0);
        assert!(
            line.starts_with(&format!("[{}{}] 1/4 docs 0.5/s ETA 6s", "=".repeat(7), " ".repeat(21))),
            "{line}"
        );
        assert!(bar.line(4, "d.md", 1.0).starts_with(&format!("[{}] 4/4", "=".repeat(WIDTH))));
    }
}
