//! Whether a held-out answer is right on the facts, by the rules of `rudder eval answers`: the
//! deciding facts of an example are the figures (amounts, durations, percentages, contacts) its
//! reference answer states and its passages hold; an answer is fact-correct when it states every
//! one of them and no false figure, a figure none of the passages given states.

use rudder_generation::grounding::figures::{Figure, figures, supported};

/// The facts of one answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct FactScore {
    /// The example decides on figures at all (a reference without figures is not judged on facts).
    pub has_facts: bool,
    /// Deciding figures (normal form) the answer does not state.
    pub missing: Vec<String>,
    /// Figures of the answer (normal form) that none of the passages states.
    pub false_figures: Vec<String>,
}

impl FactScore {
    /// Every deciding figure stated and nothing invented; `None` when the example has no figures.
    pub fn correct(&self) -> Option<bool> {
        self.has_facts.then_some(self.missing.is_empty() && self.false_figures.is_empty())
    }
}

/// Scores `answer` against the `reference` answer and `prompt`, the user turn with its passages
/// (figures the customer's question states count as given).
pub fn score_facts(answer: &str, reference: &str, prompt: &str) -> FactScore {
    let given = figures(prompt);
    let stated = figures(answer);
    let deciding: Vec<Figure> = figures(reference).into_iter().filter(|f| supported(f, &given)).collect();
    FactScore {
        has_facts: !deciding.is_empty(),
        missing: unique(deciding.iter().filter(|f| !supported(f, &stated))),
        false_figures: unique(stated.iter().filter(|f| !supported(f, &given))),
    }
}

fn unique<'a>(found: impl Iterator<Item = &'a Figure>) -> Vec<String> {
    let mut normals: Vec<String> = found.map(|f| f.normal.clone()).collect();
    normals.dedup();
    normals
}

/// Running counts over a variant's answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FactTotals {
    answers: usize,
    with_facts: usize,
    correct: usize,
    with_false_figure: usize,
}

impl FactTotals {
    pub fn add(&mut self, score: &FactScore) {
        self.answers += 1;
        if let Some(correct) = score.correct() {
            self.with_facts += 1;
            self.correct += usize::from(correct);
        }
        self.with_false_figure += usize::from(!score.false_figures.is_empty());
    }

    /// Share of the examples with deciding figures that were answered fact-correct; `None` when
    /// none has any.
    pub fn fact_correct(&self) -> Option<f64> {
        (self.with_facts > 0).then(|| self.correct as f64 / self.with_facts as f64)
    }

    /// Share of the answers stating a false figure (0 with no answers).
    pub fn false_figure_rate(&self) -> f64 {
        if self.answers == 0 { 0.0 } else { self.with_false_figure as f64 / self.answers as f64 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMPT: &str = "Policy passages:\n\n[1] Delivery\nStandard delivery costs £3.95 and arrives in 2 to 3 working days.\n\nQuestion: how much is delivery?";

    #[test]
    fn an_answer_stating_the_deciding_figure_and_nothing_else_is_correct() {
        let score = score_facts("Standard delivery is £3.95 [1].", "It costs £3.95 [1].", PROMPT);
        assert_eq!(score.correct(), Some(true), "{score:?}");
    }

    #[test]
    fn a_missing_figure_or_an_invented_one_is_not() {
        let missing = score_facts("Delivery is cheap [1].", "It costs £3.95 [1].", PROMPT);
        assert_eq!(missing.missing, ["£3.95"]);
        assert_eq!(missing.correct(), Some(false));
        let invented =
            score_facts("It costs £3.95, or £9.99 for next day [1].", "It costs £3.95 [1].", PROMPT);
        assert_eq!(invented.false_figures, ["£9.99"]);
        assert_eq!(invented.correct(), Some(false));
    }

    #[test]
    fn a_reference_without_figures_is_not_judged_on_facts_but_false_figures_still_count() {
        let score = score_facts("Yes, within 30 days [1].", "Yes, you can [1].", PROMPT);
        assert_eq!(score.correct(), None);
        let mut totals = FactTotals::default();
        totals.add(&score);
        assert_eq!(totals.fact_correct(), None);
        assert_eq!(totals.false_figure_rate(), 1.0);
    }
}
