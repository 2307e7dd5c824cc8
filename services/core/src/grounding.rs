//! How much of the grounded-answer pipeline a request runs (the generation service owns the
//! pipeline; the mode is here because the configuration names it too).

/// How much of the pipeline runs for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroundingMode {
    /// Whole passages to the model, its answer streamed unchecked (the pipeline before grounding).
    Off,
    /// Evidence sentences to the model, its answer unchecked.
    Evidence,
    /// Evidence, then verification with repair or the extractive fallback; no declining.
    Verified,
    /// Everything: evidence, declining when the evidence does not answer, verification, fallback.
    Full,
    /// No model: the deciding evidence quoted with its citation, or the hand-over. The default:
    /// on both labelled answer sets it states the deciding fact more often than the model's verified
    /// answer, in a tenth of the time (BENCHMARKS.md, "Answer correctness").
    #[default]
    Extractive,
}

impl GroundingMode {
    pub const ALL: [Self; 5] = [Self::Off, Self::Evidence, Self::Verified, Self::Full, Self::Extractive];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Evidence => "evidence",
            Self::Verified => "verified",
            Self::Full => "full",
            Self::Extractive => "extractive",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }

    pub fn selects_evidence(self) -> bool {
        self != Self::Off
    }

    pub fn verifies(self) -> bool {
        matches!(self, Self::Verified | Self::Full)
    }

    pub fn declines(self) -> bool {
        matches!(self, Self::Full | Self::Extractive)
    }

    pub fn runs_model(self) -> bool {
        self != Self::Extractive
    }
}
