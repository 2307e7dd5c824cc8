//! The training progress bar on stderr: steps, loss, validation loss, tokens/s and ETA. On a
//! terminal it redraws one line; otherwise (CI logs, files) it prints a line every tenth of the run.

use std::{
    io::{IsTerminal, Write},
    time::Instant,
};

#[derive(Debug)]
pub struct Progress {
    total: u64,
    first_step: u64,
    started: Instant,
    terminal: bool,
    last_printed: u64,
}

/// One step's figures.
#[derive(Debug, Clone, Copy)]
pub struct StepFigures {
    pub step: u64,
    pub loss: f64,
    pub validation_loss: Option<f64>,
    pub tokens_per_s: f64,
}

const BAR_WIDTH: usize = 24;

impl Progress {
    /// `first_step`: where this process starts (non-zero after `--resume`), for an honest ETA.
    pub fn new(total: u64, first_step: u64) -> Self {
        Self {
            total,
            first_step,
            started: Instant::now(),
            terminal: std::io::stderr().is_terminal(),
            last_printed: 0,
        }
    }

    pub fn update(&mut self, figures: StepFigures) {
        let line = self.render(figures);
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let _ = write!(err, "\r{line}\x1b[K");
            let _ = err.flush();
        } else if figures.step == self.total
            || figures.step >= self.last_printed + (self.total / 10).max(1)
            || figures.validation_loss.is_some()
        {
            let _ = writeln!(err, "{line}");
            self.last_printed = figures.step;
        }
    }

    pub fn finish(&self) {
        if self.terminal {
            let _ = writeln!(std::io::stderr());
        }
    }

    fn render(&self, f: StepFigures) -> String {
        let filled = (BAR_WIDTH as u64 * f.step / self.total.max(1)) as usize;
        let bar: String = "#".repeat(filled) + &".".repeat(BAR_WIDTH - filled.min(BAR_WIDTH));
        let done_here = f.step.saturating_sub(self.first_step).max(1);
        let per_step = self.started.elapsed().as_secs_f64() / done_here as f64;
        let eta = per_step * self.total.saturating_sub(f.step) as f64;
        let validation = f.validation_loss.map(|v| format!(" val {v:.3}")).unwrap_or_default();
        format!(
            "[{bar}] step {}/{} loss {:.3}{validation} | {:.0} tok/s | {:.1} s/step | ETA {}",
            f.step,
            self.total,
            f.loss,
            f.tokens_per_s,
            per_step,
            minutes_seconds(eta)
        )
    }
}

fn minutes_seconds(seconds: f64) -> String {
    let s = seconds.round() as u64;
    format!("{}m{:02}s", s / 60, s % 60)
}
