//! Picking the next token from logits: repetition penalty, then greedy (temperature 0) or sampling
//! with temperature, top-k and top-p from a seeded RNG, so the same seed gives the same answer.

use rand::{Rng, SeedableRng, rngs::StdRng};

/// Validated decoding parameters (the gRPC edge checks ranges before building one).
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    pub max_tokens: u32,
    /// 0 is greedy.
    pub temperature: f32,
    /// In (0, 1].
    pub top_p: f32,
    /// 0 disables.
    pub top_k: u32,
    pub seed: u64,
    /// Stop when the answer ends with one of these; the stop text is not emitted.
    pub stop: Vec<String>,
    /// > 1 discourages tokens already generated; 1 disables.
    pub repetition_penalty: f32,
}

#[derive(Debug)]
pub struct Sampler {
    params: SamplingParams,
    rng: StdRng,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Self {
        let rng = StdRng::seed_from_u64(params.seed);
        Self { params, rng }
    }

    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// The next token given `logits` over the vocabulary and the tokens generated so far.
    pub fn next(&mut self, logits: &mut [f32], generated: &[u32]) -> u32 {
        self.penalise_repeats(logits, generated);
        if self.params.temperature <= 0.0 {
            return argmax(logits);
        }
        let mut candidates: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .map(|(id, &logit)| (id as u32, logit / self.params.temperature))
            .collect();
        candidates.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
        if self.params.top_k > 0 {
            candidates.truncate(self.params.top_k as usize);
        }
        let max = candidates.first().map_or(0.0, |c| c.1);
        let mut probs: Vec<f32> = candidates.iter().map(|c| (c.1 - max).exp()).collect();
        let total: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
        // Nucleus: the smallest prefix of the sorted tokens whose mass reaches top_p.
        let mut mass = 0.0;
        let keep = probs
            .iter()
            .position(|p| {
                mass += p;
                mass >= self.params.top_p
            })
            .map_or(probs.len(), |i| i + 1);
        let kept_mass: f32 = probs[..keep].iter().sum();
        let mut draw = self.rng.random::<f32>() * kept_mass;
        for (i, p) in probs[..keep].iter().enumerate() {
            if draw < *p {
                return candidates[i].0;
            }
            draw -= p;
        }
        candidates[keep - 1].0
    }

    fn penalise_repeats(&self, logits: &mut [f32], generated: &[u32]) {
        let penalty = self.params.repetition_penalty;
        if penalty == 1.0 {
            return;
        }
        let mut seen = std::collections::HashSet::new();
        for &id in generated {
            if seen.insert(id)
                && let Some(logit) = logits.get_mut(id as usize)
            {
                *logit = if *logit > 0.0 { *logit / penalty } else { *logit * penalty };
            }
        }
    }
}

pub fn argmax(values: &[f32]) -> u32 {
    values.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(temperature: f32, top_k: u32, top_p: f32, seed: u64) -> SamplingParams {
        SamplingParams {
            max_tokens: 8,
            temperature,
            top_p,
            top_k,
            seed,
            stop: vec![],
            repetition_penalty: 1.0,
        }
    }

    #[test]
    fn temperature_zero_is_greedy() {
        let mut sampler = Sampler::new(params(0.0, 0, 1.0, 1));
        assert_eq!(sampler.next(&mut [0.1, 2.0, 1.0], &[]), 1);
    }

    #[test]
    fn the_same_seed_draws_the_same_tokens_and_another_seed_differs() {
        let logits = vec![1.0f32; 50];
        let draw = |seed| {
            let mut sampler = Sampler::new(params(1.0, 0, 1.0, seed));
            (0..20).map(|_| sampler.next(&mut logits.clone(), &[])).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn top_k_one_and_a_tiny_top_p_both_reduce_to_the_best_token() {
        for (k, p) in [(1, 1.0), (0, 1e-6)] {
            let mut sampler = Sampler::new(params(1.5, k, p, 3));
            for _ in 0..20 {
                assert_eq!(sampler.next(&mut [0.0, 3.0, 2.9, -1.0], &[]), 1);
            }
        }
    }

    #[test]
    fn repetition_penalty_can_change_the_greedy_choice() {
        let mut sampler = Sampler::new(SamplingParams { repetition_penalty: 2.0, ..params(0.0, 0, 1.0, 0) });
        assert_eq!(sampler.next(&mut [3.0, 2.0], &[0]), 1, "3.0 / 2 < 2.0");
    }
}
