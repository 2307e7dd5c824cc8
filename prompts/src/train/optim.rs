//! AdamW over the prompt parameters, with global gradient-norm clipping and a warm-up + cosine
//! learning-rate schedule. Written here rather than taken from candle-nn so its moment estimates can
//! be checkpointed and restored (`--resume` continues exactly where a run stopped).

use candle_core::{Tensor, Var, backprop::GradStore};

use super::TrainError;

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Gradients are scaled down so their global L2 norm is at most this.
    pub clip_norm: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, clip_norm: 1.0 }
    }
}

#[derive(Debug)]
pub struct AdamW {
    config: AdamWConfig,
    /// Per parameter (same order as the vars given to [`AdamW::step`]): first and second moments.
    moments: Vec<(Tensor, Tensor)>,
    /// Updates applied so far (bias correction).
    pub steps: u64,
}

impl AdamW {
    pub fn new(config: AdamWConfig, vars: &[(String, Var)]) -> Result<Self, TrainError> {
        let moments = vars
            .iter()
            .map(|(_, v)| Ok((v.as_tensor().zeros_like()?, v.as_tensor().zeros_like()?)))
            .collect::<Result<_, TrainError>>()?;
        Ok(Self { config, moments, steps: 0 })
    }

    /// One update at learning rate `lr`. Returns the gradient norm before clipping; when it is not
    /// finite nothing is updated.
    pub fn step(&mut self, vars: &[(String, Var)], grads: &GradStore, lr: f64) -> Result<f64, TrainError> {
        let gradients: Vec<Tensor> = vars
            .iter()
            .map(|(name, var)| {
                grads
                    .get(var.as_tensor())
                    .cloned()
                    .ok_or_else(|| TrainError::Internal(format!("no gradient reached parameter {name}")))
            })
            .collect::<Result<_, _>>()?;
        let mut squared = 0.0f64;
        for g in &gradients {
            squared += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
        }
        let norm = squared.sqrt();
        if !norm.is_finite() {
            // Leave parameters and moments as they were: the caller stops the run.
            return Ok(norm);
        }
        let scale = if norm > self.config.clip_norm { self.config.clip_norm / norm } else { 1.0 };

        self.steps += 1;
        let c = &self.config;
        let bias1 = 1.0 - c.beta1.powi(self.steps as i32);
        let bias2 = 1.0 - c.beta2.powi(self.steps as i32);
        for (((_, var), g), (m, v)) in vars.iter().zip(&gradients).zip(self.moments.iter_mut()) {
            let g = (g * scale)?;
            *m = ((&*m * c.beta1)? + (&g * (1.0 - c.beta1))?)?;
            *v = ((&*v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let update = ((&*m / bias1)? / ((&*v / bias2)?.sqrt()? + c.eps)?)?;
            let decayed = (var.as_tensor() * (1.0 - lr * c.weight_decay))?;
            var.set(&(decayed - (update * lr)?)?)?;
        }
        Ok(norm)
    }

    /// Moments by parameter name, for checkpoints.
    pub fn state(&self, vars: &[(String, Var)]) -> Vec<(String, Tensor)> {
        vars.iter()
            .zip(&self.moments)
            .flat_map(|((name, _), (m, v))| {
                [(format!("adam_m.{name}"), m.clone()), (format!("adam_v.{name}"), v.clone())]
            })
            .collect()
    }

    pub fn restore(
        &mut self,
        vars: &[(String, Var)],
        state: &[(String, Tensor)],
        steps: u64,
    ) -> Result<(), TrainError> {
        let find = |key: String| {
            state
                .iter()
                .find(|(n, _)| *n == key)
                .map(|(_, t)| t.clone())
                .ok_or_else(|| TrainError::Checkpoint(format!("has no optimizer state {key}")))
        };
        for ((name, var), moments) in vars.iter().zip(self.moments.iter_mut()) {
            let (m, v) = (find(format!("adam_m.{name}"))?, find(format!("adam_v.{name}"))?);
            if m.dims() != var.dims() || v.dims() != var.dims() {
                return Err(TrainError::Checkpoint(format!(
                    "optimizer state for {name} has the wrong shape"
                )));
            }
            *moments = (m, v);
        }
        self.steps = steps;
        Ok(())
    }
}

/// Linear warm-up to `peak` over `warmup` steps, then cosine decay to `peak * floor` at `total`.
pub fn learning_rate(step: u64, total: u64, warmup: u64, peak: f64, floor: f64) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1) as f64;
    let progress = ((step - warmup) as f64 / span).min(1.0);
    let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
    peak * (floor + (1.0 - floor) * cosine)
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    use super::*;

    #[test]
    fn adamw_minimises_a_quadratic_and_clipping_bounds_the_first_step() {
        let target = Tensor::new(&[3.0f32, -2.0], &Device::Cpu).expect("tensor");
        let vars = vec![("x".to_owned(), Var::zeros(2, candle_core::DType::F32, &Device::Cpu).expect("var"))];
        let mut adam = AdamW::new(AdamWConfig { clip_norm: 0.5, ..Default::default() }, &vars).expect("adam");
        for step in 0..300 {
            let loss =
                (vars[0].1.as_tensor() - &target).expect("sub").sqr().expect("sqr").sum_all().expect("sum");
            let grads = loss.backward().expect("backward");
            let norm = adam.step(&vars, &grads, 0.05).expect("step");
            if step == 0 {
                // |grad| = 2 * |x - target| = 2 * sqrt(13) before clipping.
                assert!((norm - 2.0 * 13f64.sqrt()).abs() < 1e-4, "norm {norm}");
            }
        }
        let x = vars[0].1.as_tensor().to_vec1::<f32>().expect("values");
        assert!((x[0] - 3.0).abs() < 0.05 && (x[1] + 2.0).abs() < 0.05, "{x:?}");
    }

    #[test]
    fn the_schedule_warms_up_peaks_and_decays_to_the_floor() {
        let lr = |step| learning_rate(step, 100, 10, 1.0, 0.1);
        assert!((lr(0) - 0.1).abs() < 1e-9);
        assert!((lr(9) - 1.0).abs() < 1e-9);
        assert!(lr(50) < lr(20) && lr(50) > 0.1);
        assert!((lr(100) - 0.1).abs() < 1e-9);
    }
}
