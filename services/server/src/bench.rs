//! `rudder bench generate`: decode and prefill speed of the frozen LLM, time to first token for a
//! question with 5 passages (~800 prompt tokens) with and without the head cache, the machine's memory
//! read bandwidth and the decode bound it implies for each weight format, and peak RSS.
//! Everything is measured in one run so the figures compare as ratios on a noisy shared machine.

use std::time::Instant;

use candle_core::{Device, Tensor};
use rudder_core::{ModelFiles, Passage};
use rudder_generation::fusion::{self, PromptParts};
use rudder_llm::{ForwardOptions, KvCache, LoadedModel, LogitsAt, ServingFormat};

const DECODE_STEPS: usize = 48;
const SYSTEM_TEXT: &str = "You are Northwind Outfitters' customer support assistant for the United Kingdom. Answer only from the numbered policy passages. Cite the passage you used as [1], [2], and so on. Be courteous, use British spelling, give amounts in pounds sterling (£), and never promise anything the policy does not say.";

/// `model`: `generation.model` (empty: SmolLM2-135M; a catalogue name; a path).
pub fn generate(files: &ModelFiles, model: &std::path::Path) -> anyhow::Result<()> {
    let path = files.llm(model)?;
    println!("model: {}", path.display());
    let mut decoded = Vec::new();
    for format in [ServingFormat::F32, ServingFormat::Q8_0] {
        let model = LoadedModel::load(&path, format)?;
        decoded.push(report(&model)?);
    }
    println!("\npeak RSS: {:.0} MiB (both models were loaded one after the other)", peak_rss_mib());

    // The bandwidth probes run with no model loaded (their buffers stay out of the peak RSS above).
    let streaming = rudder_llm::memory_read_bandwidth();
    let tensor_sum = tensor_sum_bandwidth()?;
    println!(
        "memory read bandwidth: {:.1} GB/s (a 512 MiB buffer summed on every core with prefetching, best of 5); \
         {:.1} GB/s by candle's sum of a 512 MiB tensor (the probe of runs before 2026-11-29)",
        streaming / 1e9,
        tensor_sum / 1e9
    );
    for d in decoded {
        println!(
            "{} decode: {:.0} MB of weights per token (+{:.0} MB of keys/values at this context); bandwidth bound \
             {:.1} tok/s: {:.0}% achieved ({:.0}% counting the keys/values; {:.0}% of the bound by the tensor-sum probe)",
            d.format.name(),
            d.weight_bytes / 1e6,
            d.kv_bytes / 1e6,
            streaming / d.weight_bytes,
            100.0 * d.tokens_per_s * d.weight_bytes / streaming,
            100.0 * d.tokens_per_s * (d.weight_bytes + d.kv_bytes) / streaming,
            100.0 * d.tokens_per_s * d.weight_bytes / tensor_sum,
        );
    }
    Ok(())
}

/// What a decode measurement needs for its bandwidth bound.
struct Decoded {
    format: ServingFormat,
    tokens_per_s: f64,
    /// Bytes of weights one step reads.
    weight_bytes: f64,
    /// Bytes of keys and values one step reads, midway through the measured steps.
    kv_bytes: f64,
}

fn report(model: &LoadedModel) -> anyhow::Result<Decoded> {
    let config = model.model.config();
    let passages = sample_passages();
    let parts = PromptParts {
        system_text: SYSTEM_TEXT,
        passages: &passages,
        history: &[],
        question: "How long do refunds take after I return an item, and who pays for return postage?",
    };
    let plan = fusion::plan(model, parts, config.max_position - 256)?;
    let (head, tail) = (plan.head.len(), plan.tail.len());

    // Without the head cache: the whole prompt prefilled, then the first decode step.
    let started = Instant::now();
    let mut cache = KvCache::new(config.num_layers);
    let all: Vec<u32> = plan.head.iter().chain(&plan.tail).copied().collect();
    let logits = forward(model, &all, &mut cache, LogitsAt::Last)?;
    let prefill_s = started.elapsed().as_secs_f64();
    let first = rudder_generation::sampler::argmax(&logits.squeeze(0)?.to_vec1()?);
    forward(model, &[first], &mut cache, LogitsAt::Last)?;
    let ttft_cold = started.elapsed().as_secs_f64();

    // With the head cache: the head's KV computed once beforehand, the tail prefilled, first step.
    let started = Instant::now();
    let mut head_cache = KvCache::new(config.num_layers);
    forward(model, &plan.head, &mut head_cache, LogitsAt::None)?;
    let head_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    // As the server does: the request's own copy of the head, written in place.
    let kv_dtype = model.model.serving_kv_dtype();
    let mut cache = head_cache.in_place_copy(plan.tail.len() + 1 + DECODE_STEPS, kv_dtype)?;
    forward(model, &plan.tail, &mut cache, LogitsAt::Last)?;
    forward(model, &[first], &mut cache, LogitsAt::Last)?;
    let ttft_warm = started.elapsed().as_secs_f64();
    let after_prompt = cache;

    // Decode: single-token steps after the prompt, written in place (as served), then the same
    // steps on an f32 cache that concatenates (as training and the eval do), for the ratio in one run.
    let decode = |mut cache: KvCache| -> anyhow::Result<f64> {
        let started = Instant::now();
        let mut next = first;
        for _ in 0..DECODE_STEPS {
            let logits = forward(model, &[next], &mut cache, LogitsAt::Last)?;
            next = rudder_generation::sampler::argmax(&logits.squeeze(0)?.to_vec1()?);
        }
        Ok(DECODE_STEPS as f64 / started.elapsed().as_secs_f64())
    };
    let decode_tps = decode(after_prompt.in_place_copy(DECODE_STEPS, kv_dtype)?)?;
    let mut concatenating = head_cache.clone();
    forward(model, &plan.tail, &mut concatenating, LogitsAt::None)?;
    forward(model, &[first], &mut concatenating, LogitsAt::None)?;
    let concatenating_tps = decode(concatenating)?;

    println!(
        "\n== {} decode weights ({} prompt tokens: head {head}, passages + question {tail}) ==",
        model.format.name(),
        head + tail
    );
    println!(
        "  prefill               {:>8.1} tok/s  ({:.2} s for {} tokens, {} products)",
        (head + tail) as f64 / prefill_s,
        prefill_s,
        head + tail,
        if model.model.quantized_prefill() { "Q8_0 integer" } else { "f32" }
    );
    println!("  time to first token   {ttft_cold:>8.2} s without head cache, {ttft_warm:.2} s with it");
    println!(
        "  head prefill          {:>8.3} s computed, 0 s when cached: the cache removes 100% of it",
        head_s
    );
    println!(
        "  decode                {decode_tps:>8.1} tok/s ({DECODE_STEPS} steps after the prompt, keys/values in {}; \
         {concatenating_tps:.1} tok/s growing an f32 cache by concatenation: {:.2}x)",
        kv_dtype.as_str(),
        decode_tps / concatenating_tps
    );
    if model.model.decodes_in_batches() {
        for sequences in [4, 8, 16] {
            let tps = batched_decode(model, &after_prompt, first, sequences)?;
            println!(
                "  batched decode        {tps:>8.1} tok/s for {sequences} sequences stepping together ({:.2}x one sequence)",
                tps / decode_tps
            );
        }
    }
    Ok(Decoded {
        format: model.format,
        tokens_per_s: decode_tps,
        weight_bytes: weight_bytes_per_token(model),
        kv_bytes: kv_bytes_per_token(model, head + tail + DECODE_STEPS / 2),
    })
}

/// Output tokens per second of `sequences` sequences, each continuing its own copy of `prompt`,
/// decoding [`DECODE_STEPS`] tokens together (the batching scheduler's step).
fn batched_decode(
    model: &LoadedModel,
    prompt: &KvCache,
    first: u32,
    sequences: usize,
) -> anyhow::Result<f64> {
    let kv_dtype = model.model.serving_kv_dtype();
    let mut caches = (0..sequences)
        .map(|_| prompt.in_place_copy(DECODE_STEPS, kv_dtype))
        .collect::<Result<Vec<_>, _>>()?;
    let mut tokens = vec![first; sequences];
    let started = Instant::now();
    for _ in 0..DECODE_STEPS {
        let mut refs: Vec<&mut KvCache> = caches.iter_mut().collect();
        let logits = model.model.decode_batch(&tokens, &mut refs)?;
        tokens = logits.iter().map(|logits| rudder_generation::sampler::argmax(logits)).collect();
    }
    Ok((sequences * DECODE_STEPS) as f64 / started.elapsed().as_secs_f64())
}

/// Read bandwidth as runs before 2026-11-29 measured it: bytes of a 512 MiB tensor over the time
/// candle's (multi-threaded) sum takes. It reads well below the streaming probe here; both are
/// printed so figures of different dates compare.
fn tensor_sum_bandwidth() -> anyhow::Result<f64> {
    let elements = 128 << 20;
    let tensor = Tensor::ones(elements, candle_core::DType::F32, &Device::Cpu)?;
    let mut best = f64::MAX;
    for _ in 0..5 {
        let started = Instant::now();
        let _ = tensor.sum_all()?.to_scalar::<f32>()?;
        best = best.min(started.elapsed().as_secs_f64());
    }
    Ok((elements * 4) as f64 / best)
}

fn forward(
    model: &LoadedModel,
    ids: &[u32],
    cache: &mut KvCache,
    logits: LogitsAt,
) -> anyhow::Result<Tensor> {
    let embeds = model.model.embed(&Tensor::new(ids, &Device::Cpu)?.unsqueeze(0)?)?;
    Ok(model.model.forward(&embeds, cache, ForwardOptions { logits, differentiable: false })?)
}

/// Bytes of weights a decode step reads: every projection matrix and the LM head in the decode
/// format (Q8_0: the decode weights' own size, scales included), nothing for the one embedding row.
fn weight_bytes_per_token(model: &LoadedModel) -> f64 {
    if let Some(bytes) = model.model.decode_weight_bytes() {
        return bytes as f64;
    }
    let c = model.model.config();
    let per_layer = c.hidden_size * (c.num_heads * c.head_dim) * 2
        + c.hidden_size * (c.num_kv_heads * c.head_dim) * 2
        + c.hidden_size * c.intermediate_size * 3;
    ((per_layer * c.num_layers + c.vocab_size * c.hidden_size) * 4) as f64
}

/// Bytes of keys and values a decode step reads at `positions`, in the serving cache's dtype.
fn kv_bytes_per_token(model: &LoadedModel, positions: usize) -> f64 {
    let c = model.model.config();
    let value_bytes = model.model.serving_kv_dtype().size_in_bytes();
    (2 * c.num_layers * c.num_kv_heads * c.head_dim * positions * value_bytes) as f64
}

fn peak_rss_mib() -> f64 {
    peak_rss_mib_of("self")
}

/// Peak resident memory of a process (`self` or a pid), from /proc; 0 where unavailable.
pub(crate) fn peak_rss_mib_of(process: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{process}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Five policy passages of about 130 tokens each, like a real retrieval result.
fn sample_passages() -> Vec<Passage> {
    let body = "Items bought online or in store can be returned within 28 days of delivery, provided they are unused and in their original packaging with tags attached. Once the returned item reaches our warehouse we inspect it within three working days and then refund the original payment method; your bank may take a further three to five working days to show the credit. Return postage is free with the prepaid Royal Mail label in your order confirmation; if you use another carrier you pay the postage and we recommend a tracked service.";
    (1..=5)
        .map(|i| Passage {
            doc_id: format!("returns-uk-{i}"),
            version: "2026-01".into(),
            title: "Returns and Refunds (UK)".into(),
            heading_path: vec!["Returns".into(), format!("Part {i}")],
            text: body.into(),
            ..Passage::default()
        })
        .collect()
}

/// `rudder bench train`: one prompt-tuning step (20-token soft prompt, batch 8 x 148 text tokens,
/// loss on the second half: forward with the differentiable ops, backward to the soft prompt only,
/// AdamW) against an inference prefill of the same batch, measured in one run.
pub fn train(files: &ModelFiles) -> anyhow::Result<()> {
    use rudder_prompts::train::{
        data::TokenizedExample,
        loss,
        optim::{AdamW, AdamWConfig},
        params::{SoftPromptInit, Trainable},
    };
    const BATCH: usize = 8;
    const SEQUENCE: usize = 148;
    const VIRTUAL_TOKENS: usize = 20;
    const REPEATS: usize = 3;

    let model = LoadedModel::load_gguf(&files.path(ModelFiles::LLM_GGUF), ServingFormat::F32)?;
    let text = model.tokenizer.encode(&format!("{SYSTEM_TEXT} {SYSTEM_TEXT} {SYSTEM_TEXT}"))?;
    let examples: Vec<TokenizedExample> = (0..BATCH)
        .map(|b| TokenizedExample {
            ids: text.iter().cycle().skip(b * 7).take(SEQUENCE).copied().collect(),
            answer_start: SEQUENCE / 2,
            ..TokenizedExample::default()
        })
        .collect();
    let batch: Vec<&TokenizedExample> = examples.iter().collect();
    let mut rng = rudder_prompts::train::rng::SplitMix64::new(7);
    let trainable =
        Trainable::soft_prompt(&model, VIRTUAL_TOKENS, &SoftPromptInit::Text(SYSTEM_TEXT.into()), &mut rng)?;
    let mut adam = AdamW::new(AdamWConfig::default(), trainable.vars())?;

    let prefill = || -> anyhow::Result<f64> {
        let steering = trainable.steering()?.detached();
        let started = Instant::now();
        let ids: Vec<u32> = examples.iter().flat_map(|e| e.ids.iter().copied()).collect();
        let embeds = model.model.embed(&Tensor::from_vec(ids, (BATCH, SEQUENCE), &Device::Cpu)?)?;
        let embeds = rudder_llm::prepend_soft_prompt(steering.soft_prompt.as_ref(), embeds)?;
        let mut cache = KvCache::new(model.model.config().num_layers);
        model.model.forward(
            &embeds,
            &mut cache,
            ForwardOptions { logits: LogitsAt::Last, differentiable: false },
        )?;
        Ok(started.elapsed().as_secs_f64())
    };
    // (forward, backward, optimizer) seconds of one step.
    let mut step = || -> anyhow::Result<(f64, f64, f64)> {
        let started = Instant::now();
        let loss = loss::answer_loss(&model, &trainable.steering()?, &batch, true, loss::LossWeights::PLAIN)?
            .objective()?;
        loss.to_scalar::<f32>()?;
        let forward = started.elapsed().as_secs_f64();
        let grads = loss.backward()?;
        let backward = started.elapsed().as_secs_f64() - forward;
        adam.step(trainable.vars(), &grads, 0.01)?;
        Ok((forward, backward, started.elapsed().as_secs_f64() - forward - backward))
    };
    // Interleaved, after one warm-up of each, so drift on a shared machine hits both alike.
    prefill()?;
    step()?;
    let (mut prefill_s, mut steps) = (Vec::new(), Vec::new());
    for _ in 0..REPEATS {
        prefill_s.push(prefill()?);
        steps.push(step()?);
    }
    prefill_s.sort_by(f64::total_cmp);
    steps.sort_by(|a, b| (a.0 + a.1 + a.2).total_cmp(&(b.0 + b.1 + b.2)));
    let (prefill_s, (forward_s, backward_s, optimizer_s)) = (prefill_s[REPEATS / 2], steps[REPEATS / 2]);
    let step_s = forward_s + backward_s + optimizer_s;
    let tokens = (BATCH * SEQUENCE) as f64;
    println!(
        "batch {BATCH} x {SEQUENCE} text tokens, {VIRTUAL_TOKENS}-token soft prompt, loss on {} answer tokens per row; median of {REPEATS}",
        SEQUENCE / 2
    );
    println!("  inference prefill: {prefill_s:.2} s = {:.0} tokens/s", tokens / prefill_s);
    println!("  training step:     {step_s:.2} s/step = {:.0} train tokens/s", tokens / step_s);
    println!(
        "    forward (differentiable) {forward_s:.2} s ({:.2}x the prefill), backward {backward_s:.2} s, optimizer {optimizer_s:.3} s",
        forward_s / prefill_s
    );
    println!("  a training token costs {:.2}x a prefill token (target <= 2.5x)", step_s / prefill_s);
    println!("peak RSS: {:.0} MiB", peak_rss_mib());
    Ok(())
}
