//! Maximal marginal relevance: picks passages one at a time, each time the one that best balances its
//! relevance to the question against its similarity to the passages already picked, so a handful of
//! near-duplicate chunks does not crowd out the second policy that also applies.
//!
//! Relevance is the search score rescaled to 0..1 over the candidates (so any mode's score scale
//! works); similarity is the cosine of the chunks' dense vectors (unit length from the embedder).

/// Indices into the candidates, in pick order, at most `k`. `lambda` 1.0 is pure relevance order,
/// 0.0 pure diversity after the first pick.
pub fn select(scores: &[f32], vectors: &[Vec<f32>], k: usize, lambda: f32) -> Vec<usize> {
    let n = scores.len().min(vectors.len());
    let (lo, hi) =
        scores[..n].iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &s| (lo.min(s), hi.max(s)));
    let relevance = |i: usize| if hi > lo { (scores[i] - lo) / (hi - lo) } else { 1.0 };
    let mut picked: Vec<usize> = Vec::with_capacity(k.min(n));
    let mut closest = vec![f32::NEG_INFINITY; n]; // highest similarity to anything picked so far
    while picked.len() < k.min(n) {
        let best = (0..n)
            .filter(|i| !picked.contains(i))
            .map(|i| {
                let redundancy = if picked.is_empty() { 0.0 } else { closest[i] };
                (i, lambda * relevance(i) - (1.0 - lambda) * redundancy)
            })
            // Ties go to the better-ranked candidate.
            .max_by(|(a, sa), (b, sb)| sa.total_cmp(sb).then(b.cmp(a)));
        let Some((chosen, _)) = best else { break };
        picked.push(chosen);
        for i in 0..n {
            closest[i] = closest[i].max(dot(&vectors[i], &vectors[chosen]));
        }
    }
    picked
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(x: f32, y: f32) -> Vec<f32> {
        let n = (x * x + y * y).sqrt();
        vec![x / n, y / n]
    }

    #[test]
    fn pure_relevance_keeps_the_ranking() {
        let vectors = [unit(1.0, 0.0), unit(1.0, 0.01), unit(0.0, 1.0)];
        assert_eq!(select(&[0.9, 0.8, 0.5], &vectors, 3, 1.0), [0, 1, 2]);
    }

    #[test]
    fn diversity_lets_a_different_passage_past_a_near_duplicate() {
        // 0 and 1 say the same thing; 2 is less relevant but about something else.
        let vectors = [unit(1.0, 0.0), unit(1.0, 0.02), unit(0.0, 1.0)];
        assert_eq!(select(&[0.9, 0.85, 0.6], &vectors, 2, 0.5), [0, 2]);
        assert_eq!(select(&[0.9, 0.85, 0.6], &vectors, 2, 0.95), [0, 1], "mostly relevance");
    }

    #[test]
    fn fewer_candidates_than_asked_and_equal_scores_are_fine() {
        assert_eq!(select(&[0.5, 0.5], &[unit(1.0, 0.0), unit(0.0, 1.0)], 5, 0.5), [0, 1]);
        assert!(select(&[], &[], 3, 0.5).is_empty());
    }
}
