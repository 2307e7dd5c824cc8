//! The trainer end to end on the real SmolLM2 weights, kept tiny (a few steps on short sequences):
//! a soft prompt and a prefix train, lower validation loss, leave the base weights untouched and
//! write a complete artifact; a run is deterministic and resumes from its checkpoint; bad input
//! gets a clear error and no artifact.
// A test binary: a panic here is a failing test, including in helpers outside #[test] functions.
#![allow(clippy::expect_used)]

use std::{
    path::{Path, PathBuf},
    sync::{OnceLock, atomic::Ordering},
};

use rudder_llm::{LoadedModel, ServingFormat};
use rudder_prompts::{
    artifact,
    train::{self, BadLines, HyperParameters, Kind, TrainError, TrainOptions, optim::AdamWConfig},
};

fn model() -> &'static LoadedModel {
    static MODEL: OnceLock<LoadedModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = std::env::var_os("RUDDER_MODELS_DIR").map(PathBuf::from).unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/rudder/models")
        });
        let path = dir.join("llm/SmolLM2-135M-Instruct.Q4_1.gguf");
        assert!(path.is_file(), "{} is missing: run `make models`", path.display());
        LoadedModel::load_gguf(&path, ServingFormat::F32).expect("load SmolLM2")
    })
}

/// Short examples with one easy pattern, so a handful of steps visibly lowers the loss.
fn write_data(dir: &Path) -> PathBuf {
    let items = ["boots", "tent", "jacket", "stove", "lamp", "rope", "gloves", "scarf"];
    let lines: Vec<String> = items
        .iter()
        .map(|item| {
            serde_json::json!({"messages": [
                {"role": "user", "content": format!("Which colour is the {item}?")},
                {"role": "assistant", "content": format!("The {item} is teal [1].")}
            ]})
            .to_string()
        })
        .collect();
    let path = dir.join("train.jsonl");
    std::fs::write(&path, lines.join("\n")).expect("write data");
    path
}

fn hyper(steps: u64) -> HyperParameters {
    HyperParameters {
        virtual_tokens: 4,
        prefix_positions: 3,
        init: "text".into(),
        init_text: Some("Answer briefly.".into()),
        reparam_hidden: None,
        learning_rate: 0.05,
        warmup_steps: 1,
        lr_floor: 0.5,
        max_steps: steps,
        batch_size: 2,
        adamw: AdamWConfig::default(),
        validation_fraction: 0.25,
        eval_every: 2,
        patience: 0,
        checkpoint_every: 2,
        seed: 11,
        max_example_tokens: 256,
        emphasis: None,
        unlikelihood_weight: None,
    }
}

fn options(kind: Kind, data: &Path, out: &Path, hyper: HyperParameters) -> TrainOptions {
    TrainOptions {
        kind,
        data: data.to_owned(),
        out_dir: out.to_owned(),
        system_text: "You are a shop assistant.".into(),
        hyper,
        fixed_companion: None,
        bad_lines: BadLines::Stop,
        resume: false,
        command: "test".into(),
        stop: train::stop_flag(),
        pause_after: None,
    }
}

#[test]
fn a_soft_prompt_trains_lowers_validation_loss_and_writes_a_complete_artifact() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = write_data(dir.path());
    let out = dir.path().join("soft");
    let report = train::train(model(), &options(Kind::SoftPrompt, &data, &out, hyper(6))).expect("training");
    let training = report.manifest.training.as_ref().expect("training record");
    assert!(
        training.validation_loss_after < training.validation_loss_before,
        "validation loss {} -> {}",
        training.validation_loss_before,
        training.validation_loss_after
    );
    assert_eq!((training.steps, training.train_examples, training.validation_examples), (6, 6, 2));
    assert_eq!(report.manifest.base_model_fingerprint, model().fingerprint);

    let (manifest, tensors) = artifact::read(&out).expect("the artifact reads back");
    // (Floats are compared by what they mean: a JSON round trip may move the last bit.)
    assert_eq!(
        (&manifest.name, &manifest.tensors, manifest.kind),
        (&report.manifest.name, &report.manifest.tensors, report.manifest.kind)
    );
    let read_training = manifest.training.as_ref().expect("training record read back");
    assert!((read_training.validation_loss_after - training.validation_loss_after).abs() < 1e-12);
    assert_eq!(tensors[0].0, "prompt_embeddings");
    assert_eq!(tensors[0].1.dims(), &[4, model().model.config().hidden_size]);
    assert!(
        std::fs::read_to_string(out.join(artifact::LOSS_CURVE_FILE)).expect("loss curve").contains("<svg")
    );
    assert!(!out.join("checkpoint").exists(), "the checkpoint is removed once the artifact is written");

    let again =
        train::train(model(), &options(Kind::SoftPrompt, &data, &out, hyper(6))).expect_err("no overwrite");
    assert!(again.to_string().contains("already holds an artifact"), "{again}");
}

#[test]
fn a_prefix_with_a_reparameterisation_mlp_trains_into_plain_keys_and_values() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = write_data(dir.path());
    let out = dir.path().join("prefix");
    let with_mlp = HyperParameters { reparam_hidden: Some(16), learning_rate: 0.01, ..hyper(2) };
    let report = train::train(model(), &options(Kind::Prefix, &data, &out, with_mlp)).expect("training");
    let config = model().model.config();
    let expected = vec![config.num_layers, config.num_kv_heads, 3, config.head_dim];
    assert_eq!(report.manifest.tensors.get("prefix_keys"), Some(&expected));
    assert_eq!(report.manifest.tensors.get("prefix_values"), Some(&expected));
    assert_eq!(report.manifest.tensors.len(), 2, "the MLP is folded away: {:?}", report.manifest.tensors);

    // A soft prompt trained with that prefix held fixed records it as its companion.
    let soft = dir.path().join("soft-on-prefix");
    let with_prefix = TrainOptions {
        fixed_companion: Some(out.clone()),
        ..options(Kind::SoftPrompt, &data, &soft, hyper(2))
    };
    let report = train::train(model(), &with_prefix).expect("training on top of the prefix");
    let training = report.manifest.training.expect("training record");
    assert_eq!(training.companion, Some(out.display().to_string()));
}

#[test]
fn an_interrupted_run_resumes_to_the_same_result_as_an_uninterrupted_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = write_data(dir.path());
    let straight = dir.path().join("straight");
    train::train(model(), &options(Kind::SoftPrompt, &data, &straight, hyper(4))).expect("straight run");

    // Paused after step 2 of 4: the checkpoint must carry parameters, the best parameters so far
    // and the optimizer moments for the rest to come out bit-identical.
    let resumed = dir.path().join("resumed");
    let paused =
        TrainOptions { pause_after: Some(2), ..options(Kind::SoftPrompt, &data, &resumed, hyper(4)) };
    let err = train::train(model(), &paused).expect_err("paused");
    assert!(matches!(err, TrainError::Interrupted { step: 2, .. }), "{err}");
    assert!(err.to_string().contains("--resume"), "{err}");

    let stopped = TrainOptions { resume: true, ..options(Kind::SoftPrompt, &data, &resumed, hyper(4)) };
    stopped.stop.store(true, Ordering::Relaxed);
    let err = train::train(model(), &stopped).expect_err("Ctrl-C before the next step");
    assert!(matches!(err, TrainError::Interrupted { step: 2, .. }), "{err}");

    let again = options(Kind::SoftPrompt, &data, &resumed, hyper(4));
    let err = train::train(model(), &again).expect_err("an unfinished run is not silently overwritten");
    assert!(err.to_string().contains("pass --resume"), "{err}");

    let other_run = TrainOptions { resume: true, ..options(Kind::SoftPrompt, &data, &resumed, hyper(5)) };
    let err = train::train(model(), &other_run).expect_err("another run's checkpoint");
    assert!(err.to_string().contains("belongs to another run"), "{err}");

    let resume = TrainOptions { resume: true, ..options(Kind::SoftPrompt, &data, &resumed, hyper(4)) };
    train::train(model(), &resume).expect("resumed run");
    let (_, a) = artifact::read(&straight).expect("straight artifact");
    let (_, b) = artifact::read(&resumed).expect("resumed artifact");
    let (a, b) = (a[0].1.flatten_all().expect("flat"), b[0].1.flatten_all().expect("flat"));
    assert_eq!(a.to_vec1::<f32>().expect("values"), b.to_vec1::<f32>().expect("values"));
}

#[test]
fn bad_data_and_a_diverging_loss_get_clear_errors_and_no_artifact() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = write_data(dir.path());

    let out = dir.path().join("too-long");
    let short_limit = HyperParameters { max_example_tokens: 20, ..hyper(2) };
    let err =
        train::train(model(), &options(Kind::SoftPrompt, &data, &out, short_limit)).expect_err("too long");
    assert!(err.to_string().contains("train.jsonl:1:") && err.to_string().contains("longer than"), "{err}");

    let out = dir.path().join("diverged");
    // A learning rate near f32's limit pushes prefix keys to infinity: the attention scores (and the
    // loss) become NaN.
    let huge_lr = HyperParameters { learning_rate: 3e38, lr_floor: 1.0, warmup_steps: 0, ..hyper(4) };
    let err = train::train(model(), &options(Kind::Prefix, &data, &out, huge_lr)).expect_err("diverges");
    assert!(matches!(err, TrainError::NonFinite { .. }), "{err}");
    assert!(!out.join(artifact::MANIFEST_FILE).exists(), "no artifact after a diverged run");
}

#[test]
fn emphasised_answer_tokens_are_the_matched_span_and_weigh_more_in_the_loss() {
    use rudder_prompts::train::{
        data::{self, Example, ExampleMeta},
        loss,
        params::SteeringTensors,
    };
    let example = Example {
        line: 1,
        context: vec![rudder_llm::Message::new(rudder_llm::Role::User, "How much is delivery?")],
        answer: "Standard delivery costs £4.95 and next-day delivery £6.95 [1].".into(),
        rejected: Vec::new(),
        meta: ExampleMeta::default(),
    };
    let amounts = regex::Regex::new("£[0-9.]+").expect("pattern");
    let leave = data::RejectedAnswers::Leave;
    let plain =
        data::tokenize(model(), "You are a shop assistant.", &example, None, leave).expect("tokenize");
    let marked = data::tokenize(model(), "You are a shop assistant.", &example, Some(&amounts), leave)
        .expect("tokenize");
    assert_eq!((&marked.ids, marked.answer_start), (&plain.ids, plain.answer_start));
    assert!(plain.emphasised.is_empty());
    let text: Vec<String> = marked
        .emphasised
        .iter()
        .map(|&at| model().tokenizer.decode(&marked.ids[at..=at]).expect("decode"))
        .collect();
    assert_eq!(text.concat().replace(' ', ""), "£4.95£6.95", "emphasised tokens {text:?}");
    assert!(marked.emphasised.iter().all(|&at| at >= marked.answer_start));

    let steering = SteeringTensors::default();
    let weighing = |emphasis| {
        let weights = loss::LossWeights { emphasis, unlikelihood: None };
        let loss = loss::answer_loss(model(), &steering, &[&marked], false, weights).expect("loss");
        (loss.nll.to_scalar::<f32>().expect("scalar"), loss.weight)
    };
    let ((nll, weight), (weighted, weight_3)) = (weighing(1.0), weighing(3.0));
    assert_eq!(weight, marked.answer_tokens() as f64);
    assert_eq!(weight_3, weight + 2.0 * marked.emphasised.len() as f64);
    assert!(weighted > nll, "the emphasised tokens add their NLL twice more: {nll} -> {weighted}");

    let bad = HyperParameters {
        emphasis: Some(train::Emphasis { pattern: "£[0-9".into(), weight: 3.0 }),
        ..hyper(2)
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let data = write_data(dir.path());
    let err = train::train(model(), &options(Kind::SoftPrompt, &data, &dir.path().join("out"), bad))
        .expect_err("a broken pattern is refused");
    assert!(err.to_string().contains("--emphasize"), "{err}");
}

#[test]
fn rejected_answers_push_their_forbidden_promises_down_and_leave_the_answer_loss_alone() {
    use rudder_prompts::train::{
        data::{DataFile, RejectedAnswers},
        loss,
        params::SteeringTensors,
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let items = ["boots", "tent", "jacket", "stove", "lamp", "rope", "gloves", "scarf"];
    let lines: Vec<String> = items
        .iter()
        .map(|item| {
            serde_json::json!({
                "messages": [
                    {"role": "user", "content": format!("Can I have free delivery on the {item}?")},
                    {"role": "assistant", "content": format!("Delivery on the {item} costs £3.95 [1].")}
                ],
                "rejected": [format!("Delivery on the {item} costs £3.95, but I can make it free for you.")],
                "meta": {"kind": "decline", "forbidden": ["make it free"]}
            })
            .to_string()
        })
        .collect();
    let data = dir.path().join("train.jsonl");
    std::fs::write(&data, lines.join("\n")).expect("write data");

    // The token pushed down is where the answer turns to the promise, after the same prompt.
    let file = DataFile::read(&data, BadLines::Stop).expect("the data reads");
    let tokenized: Vec<_> = file
        .examples
        .iter()
        .map(|e| {
            train::data::tokenize(model(), "You are a shop assistant.", e, None, RejectedAnswers::Render)
                .expect("tokenize")
        })
        .collect();
    let left = train::data::tokenize(
        model(),
        "You are a shop assistant.",
        &file.examples[0],
        None,
        RejectedAnswers::Leave,
    )
    .expect("tokenize");
    assert!(left.rejected.is_empty(), "rejected answers are rendered only when asked for");
    assert_eq!(left.ids, tokenized[0].ids);
    let first = &tokenized[0];
    let rejected = &first.rejected[0];
    assert_eq!(rejected.ids[..first.answer_start], first.ids[..first.answer_start]);
    let promise: String = rejected
        .unlikely
        .iter()
        .map(|&at| model().tokenizer.decode(&rejected.ids[at..=at]).expect("decode"))
        .collect();
    assert_eq!(rejected.unlikely.len(), 1, "the first token of the promise only: {promise:?}");
    assert!(!promise.trim().is_empty() && "make it free".starts_with(promise.trim()), "{promise:?}");
    assert!(rejected.unlikely[0] > first.answer_start);

    // Rejected answers add their own term and change nothing in the answers' NLL.
    let steering = SteeringTensors::default();
    let batch: Vec<_> = tokenized.iter().take(2).collect();
    let with = loss::LossWeights { emphasis: 1.0, unlikelihood: Some(1.0) };
    let plain = loss::answer_loss(model(), &steering, &batch, false, loss::LossWeights::PLAIN).expect("loss");
    let both = loss::answer_loss(model(), &steering, &batch, false, with).expect("loss");
    assert!(plain.unlikelihood.is_none());
    let term = both.unlikelihood.as_ref().expect("an unlikelihood term");
    assert_eq!((term.tokens, term.weight), (2 * rejected.unlikely.len(), 1.0));
    assert!(term.sum.to_scalar::<f32>().expect("scalar") > 0.0);
    let scalar = |t: &candle_core::Tensor| t.to_scalar::<f32>().expect("scalar");
    assert_eq!(plain.weight, both.weight);
    assert!((scalar(&plain.nll) - scalar(&both.nll)).abs() < 1e-3 * scalar(&plain.nll));

    // Trained with the term, the same run makes the promise less likely than without it.
    let forbidden_mean = |weight: Option<f64>, out: &str| {
        let out = dir.path().join(out);
        let hyper = HyperParameters { unlikelihood_weight: weight, ..hyper(4) };
        train::train(model(), &options(Kind::SoftPrompt, &data, &out, hyper)).expect("training");
        let (_, steering) = SteeringTensors::load(model(), &out).expect("the artifact loads");
        let all: Vec<_> = tokenized.iter().collect();
        let loss = loss::answer_loss(model(), &steering, &all, false, with).expect("loss");
        let term = loss.unlikelihood.expect("an unlikelihood term");
        f64::from(scalar(&term.sum)) / term.tokens as f64
    };
    let (without, with) = (forbidden_mean(None, "plain"), forbidden_mean(Some(5.0), "unlikely"));
    assert!(with < without, "mean -log(1 - p) of the promise: {without} untouched, {with} with the term");

    let bad = HyperParameters { unlikelihood_weight: Some(0.0), ..hyper(2) };
    let err = train::train(model(), &options(Kind::SoftPrompt, &data, &dir.path().join("bad"), bad))
        .expect_err("a zero weight is refused");
    assert!(err.to_string().contains("--unlikelihood-weight"), "{err}");
}
