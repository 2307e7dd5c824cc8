//! Checkpoints of an unfinished run, so `--resume` continues after a crash or Ctrl-C exactly where
//! it stopped: the parameters, the best parameters so far, the optimizer moments (a safetensors file
//! per checkpoint) and the run's counters (`state.json`, written last: it names the tensors file, so
//! a crash between the two writes leaves the previous checkpoint intact).

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::TrainError;
use crate::artifact::write_file;

const STATE_FILE: &str = "state.json";

/// Counters and history of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// Identifies the run (base model, data, kind, hyper-parameters): a checkpoint of another run is
    /// refused.
    pub run_id: String,
    /// Optimizer steps done.
    pub step: u64,
    pub best_validation_loss: f64,
    pub best_step: u64,
    pub evals_since_best: u32,
    pub validation_loss_before: f64,
    /// (step, training loss of that step's batch).
    pub train_losses: Vec<(u64, f64)>,
    /// (step, validation loss).
    pub validation_losses: Vec<(u64, f64)>,
    /// Text tokens run through training so far, and the seconds spent.
    pub tokens_seen: u64,
    pub elapsed_s: f64,
    /// The tensors file of this checkpoint, relative to the checkpoint directory.
    pub tensors_file: String,
}

/// `<artifact dir>/checkpoint/`.
pub fn dir_for(artifact_dir: &Path) -> PathBuf {
    artifact_dir.join("checkpoint")
}

pub fn exists(dir: &Path) -> bool {
    dir.join(STATE_FILE).is_file()
}

/// Saves `tensors` (parameters, best parameters, optimizer moments, each under its own name) and
/// `state`; removes the previous checkpoint's tensors once the new state is in place.
pub fn save(dir: &Path, state: &RunState, tensors: &[(String, Tensor)]) -> Result<(), TrainError> {
    std::fs::create_dir_all(dir).map_err(|err| TrainError::io(dir, err))?;
    let previous = load_state(dir).ok().map(|s| s.tensors_file);
    let file = format!("step-{:06}.safetensors", state.step);
    let map: std::collections::HashMap<String, Tensor> = tensors.iter().cloned().collect();
    let tmp = dir.join(format!("{file}.tmp"));
    candle_core::safetensors::save(&map, &tmp).map_err(|err| TrainError::Checkpoint(err.to_string()))?;
    std::fs::rename(&tmp, dir.join(&file)).map_err(|err| TrainError::io(dir, err))?;
    let state = RunState { tensors_file: file.clone(), ..state.clone() };
    let json = serde_json::to_string_pretty(&state).map_err(|err| TrainError::Checkpoint(err.to_string()))?;
    write_file(&dir.join(STATE_FILE), json.as_bytes())
        .map_err(|err| TrainError::Checkpoint(err.to_string()))?;
    if let Some(old) = previous.filter(|old| *old != file) {
        // Best effort: a stale file costs disk, not correctness.
        let _ = std::fs::remove_file(dir.join(old));
    }
    Ok(())
}

fn load_state(dir: &Path) -> Result<RunState, TrainError> {
    let path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).map_err(|err| TrainError::io(&path, err))?;
    serde_json::from_str(&text).map_err(|err| TrainError::Checkpoint(format!("{}: {err}", path.display())))
}

/// Loads the checkpoint in `dir` if it belongs to run `run_id`.
pub fn load(dir: &Path, run_id: &str) -> Result<(RunState, Vec<(String, Tensor)>), TrainError> {
    let state = load_state(dir)?;
    if state.run_id != run_id {
        return Err(TrainError::Checkpoint(format!(
            "{} belongs to another run (its base model, data, kind or hyper-parameters differ): delete it or train into another directory",
            dir.display()
        )));
    }
    let path = dir.join(&state.tensors_file);
    let tensors = candle_core::safetensors::load(&path, &Device::Cpu)
        .map_err(|err| TrainError::Checkpoint(format!("{}: {err}", path.display())))?;
    Ok((state, tensors.into_iter().collect()))
}

pub fn remove(dir: &Path) -> Result<(), TrainError> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|err| TrainError::io(dir, err))?;
    }
    Ok(())
}
