//! Behaviour of the forward pass: KV-cache continuation, prefixes, the differentiable path, the
//! quantized decode path, and coherent output.

use candle_core::{DType, Tensor};
use rudder_llm::{ForwardOptions, KvCache, LogitsAt};

use crate::common::{argmax, chat_ids, greedy, ids_tensor, last_logits, max_abs_diff, smollm, smollm_q8};

#[test]
fn greedy_answer_is_coherent() {
    let model = smollm();
    let answer = greedy(model, &chat_ids(model, "What is the capital of France?"), 24);
    let text = model.tokenizer.decode(&answer).unwrap();
    assert!(text.contains("Paris"), "{text:?}");
}

#[test]
fn decoding_through_the_cache_equals_one_full_pass() {
    let model = smollm();
    let ids = chat_ids(model, "Can I return a gift without a receipt?");
    let layers = model.model.config().num_layers;
    let full = last_logits(model, &ids, &mut KvCache::new(layers));
    let mut cache = KvCache::new(layers);
    last_logits(model, &ids[..ids.len() - 3], &mut cache);
    last_logits(model, &ids[ids.len() - 3..ids.len() - 1], &mut cache);
    let stepped = last_logits(model, &ids[ids.len() - 1..], &mut cache);
    assert_eq!(cache.len(), ids.len());
    let diff = max_abs_diff(&full, &stepped);
    assert!(diff <= 1e-3, "cache continuation differs by {diff}");
}

/// On the f32 tensor path and on the Q8_0 decode step (which reads a buffer's filled positions
/// through its strides, and a concatenated cache whole).
#[test]
fn an_in_place_cache_decodes_like_a_concatenating_one_and_leaves_the_head_it_came_from_alone() {
    for model in [smollm(), smollm_q8()] {
        let ids = chat_ids(model, "Do you ship to Ireland?");
        let layers = model.model.config().num_layers;
        let (head, tail) = ids.split_at(ids.len() - 4);
        let mut head_cache = KvCache::new(layers);
        last_logits(model, head, &mut head_cache);
        let untouched = last_logits(model, &tail[..1], &mut head_cache.clone());
        let mut concatenating = head_cache.clone();
        // Room for 2 only: the third step outgrows the buffers and continues in bigger ones.
        let mut in_place = head_cache.in_place_copy(2, DType::F32).unwrap();
        for step in tail.chunks(1) {
            let expected = last_logits(model, step, &mut concatenating);
            let got = last_logits(model, step, &mut in_place);
            assert!(max_abs_diff(&expected, &got) <= 1e-5, "{}: step {step:?}", model.format.name());
        }
        assert_eq!(in_place.len(), ids.len());
        // The shared head was never written to: it still continues exactly as before.
        let again = last_logits(model, &tail[..1], &mut head_cache.clone());
        assert!(max_abs_diff(&again, &untouched) <= 1e-6);
    }
}

#[test]
fn a_prefix_cache_built_from_keys_and_values_acts_like_the_text_it_came_from() {
    let model = smollm();
    let layers = model.model.config().num_layers;
    let head = model.tokenizer.encode("<|im_start|>system\nAnswer in one word.<|im_end|>\n").unwrap();
    let tail = chat_ids(model, "Name a colour.");
    // Run the head as text, then lift its keys/values out as a prefix (what prefix tuning starts from).
    let mut text_cache = KvCache::new(layers);
    last_logits(model, &head, &mut text_cache);
    let (keys, values): (Vec<Tensor>, Vec<Tensor>) = (0..layers)
        .map(|l| {
            let (k, v) = text_cache.layer(l).unwrap();
            (k.squeeze(0).unwrap(), v.squeeze(0).unwrap())
        })
        .unzip();
    let after_text = last_logits(model, &tail, &mut text_cache);
    let mut prefix_cache = KvCache::from_prefix(&keys, &values, 1).unwrap();
    assert_eq!(prefix_cache.len(), head.len());
    let after_prefix = last_logits(model, &tail, &mut prefix_cache);
    assert!(max_abs_diff(&after_text, &after_prefix) <= 1e-4);
}

#[test]
fn the_differentiable_path_computes_the_same_logits_for_every_position() {
    let model = smollm();
    let ids = chat_ids(model, "Where is my parcel?");
    let embeds = model.model.embed(&ids_tensor(&ids)).unwrap();
    let layers = model.model.config().num_layers;
    let run = |differentiable| -> Vec<f32> {
        let options = ForwardOptions { logits: LogitsAt::All, differentiable };
        let logits = model.model.forward(&embeds, &mut KvCache::new(layers), options).unwrap();
        assert_eq!(logits.dims(), &[1, ids.len(), 49152]);
        logits.flatten_all().unwrap().to_vec1().unwrap()
    };
    let diff = max_abs_diff(&run(false), &run(true));
    assert!(diff <= 1e-3, "fused and differentiable paths differ by {diff}");
}

/// Serving as a request is served (Q8_0 prefill and decode weights, and the request's in-place cache
/// in the dtype the model serves with, f16) stays faithful to f32: teacher-forced over an f32 greedy
/// answer, it picks the same next token at (nearly) every step and its logits stay within a stated
/// tolerance. The tolerance is the decode step's own (1.5, with an f32 prefill) plus the prefill's
/// (the test above): the quantized prefill's keys and values are what every step reads.
#[test]
fn q8_0_decode_on_the_serving_cache_stays_close_to_f32() {
    let (f32_model, q8_model) = (smollm(), smollm_q8());
    assert_eq!(q8_model.model.serving_kv_dtype(), DType::F16);
    let prompt = chat_ids(f32_model, "Summarise: items can be returned within 30 days with a receipt.");
    let answer = greedy(f32_model, &prompt, 32);
    let layers = f32_model.model.config().num_layers;
    let (mut f32_cache, mut head_cache) = (KvCache::new(layers), KvCache::new(layers));
    // The q8 side, as the engine does, prefills a head, then the tail into its own in-place copy.
    let mut f32_logits = last_logits(f32_model, &prompt, &mut f32_cache);
    let (head, tail) = prompt.split_at(prompt.len() / 2);
    last_logits(q8_model, head, &mut head_cache);
    let mut q8_cache =
        head_cache.in_place_copy(tail.len() + answer.len(), q8_model.model.serving_kv_dtype()).unwrap();
    let mut q8_logits = last_logits(q8_model, tail, &mut q8_cache);
    assert_eq!(q8_cache.layer(0).unwrap().0.dtype(), DType::F16);
    let (mut agree, mut worst) = (0, 0.0f32);
    for &token in &answer {
        agree += usize::from(argmax(&f32_logits) == argmax(&q8_logits));
        f32_logits = last_logits(f32_model, &[token], &mut f32_cache);
        q8_logits = last_logits(q8_model, &[token], &mut q8_cache);
        worst = worst.max(max_abs_diff(&f32_logits, &q8_logits));
    }
    let agreement = agree as f32 / answer.len() as f32;
    // f16 holds up to 65504: the model's keys and values stay far below (an overflow would be inf).
    let largest = (0..layers)
        .flat_map(|l| {
            let (k, v) = f32_cache.layer(l).unwrap();
            [k, v].map(|t| t.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap())
        })
        .fold(0.0, f32::max);
    eprintln!(
        "q8_0 + f16 cache vs f32: top-1 agreement {agreement:.3} over {} steps, worst |dlogit| {worst:.3}; \
         largest |key or value| {largest:.1}",
        answer.len()
    );
    assert!(agreement >= 0.9, "top-1 agreement {agreement}");
    assert!(largest < 65504.0 / 16.0, "largest cached |key or value| {largest}");
    assert!(worst <= 2.5, "worst logit difference {worst}");
}

/// Prefill on the Q8_0 copies (integer products, where the CPU has them) stays within the decode
/// test's tolerance of f32, on a short prompt and on one long enough to be served in several chunks;
/// where the two pick different next tokens, f32 itself nearly ties them.
#[test]
fn q8_0_prefill_stays_close_to_f32() {
    let (f32_model, q8_model) = (smollm(), smollm_q8());
    let policy = "Standard delivery takes 3 to 5 working days across the United Kingdom. Express delivery \
                  costs £4.99 and arrives the next working day when ordered before 2pm. Items can be returned \
                  within 28 days of delivery for a full refund to the original payment method. ";
    let long = format!("{}Can I still return a jacket I bought five weeks ago?", policy.repeat(6));
    let layers = f32_model.model.config().num_layers;
    for question in ["Summarise: items can be returned within 30 days with a receipt.", long.as_str()] {
        let prompt = chat_ids(f32_model, question);
        let exact = last_logits(f32_model, &prompt, &mut KvCache::new(layers));
        let mut cache = KvCache::new(layers);
        // As the engine serves a long prompt: in chunks, each attending over the ones before.
        for chunk in prompt[..prompt.len() - 1].chunks(128) {
            last_logits(q8_model, chunk, &mut cache);
        }
        let quantized = last_logits(q8_model, &prompt[prompt.len() - 1..], &mut cache);
        let worst = max_abs_diff(&exact, &quantized);
        let best = exact[argmax(&exact) as usize];
        let margin = best - exact[argmax(&quantized) as usize];
        eprintln!(
            "q8_0 prefill ({}) of {} tokens vs f32: worst |dlogit| {worst:.3}, f32's margin over q8_0's pick {margin:.3}",
            if q8_model.model.quantized_prefill() { "integer products" } else { "f32 products on this CPU" },
            prompt.len()
        );
        assert!(worst <= 1.5, "worst logit difference {worst}");
        assert!(margin <= worst, "q8_0 picked a token f32 puts {margin} below its best");
    }
}

/// Sequences of different lengths, one continuing a prefix given as keys and values (as a bundle's
/// prefix tuning does), step together and each gets the logits it gets alone: the same next token
/// (or one the lone step nearly ties with it), and logits within the served path's Q8_0 tolerance
/// against f32 (2.5, above). Not closer: the batched products sum in another order, and an
/// activation that lands on the other side of a rounding step moves later ones by a quantization
/// step (an f16 cache against an f32 one differs as much). A step that mixed up sequences would
/// answer another question.
#[test]
fn a_batched_step_gives_each_sequence_the_logits_it_gets_alone() {
    let model = smollm_q8();
    let layers = model.model.config().num_layers;
    let mut heads: Vec<(KvCache, u32)> =
        ["Do you ship to Ireland?", "Can I return a gift without a receipt after six weeks?"]
            .into_iter()
            .map(|question| {
                let mut cache = KvCache::new(layers);
                let logits = last_logits(model, &chat_ids(model, question), &mut cache);
                (cache, argmax(&logits))
            })
            .collect();
    // A third sequence continues a prefix of keys and values lifted out of the first one's cache.
    let (keys, values): (Vec<Tensor>, Vec<Tensor>) = (0..layers)
        .map(|l| {
            let (k, v) = heads[0].0.layer(l).unwrap();
            (k.narrow(2, 0, 5).unwrap().squeeze(0).unwrap(), v.narrow(2, 0, 5).unwrap().squeeze(0).unwrap())
        })
        .unzip();
    let mut prefixed = KvCache::from_prefix(&keys, &values, 1).unwrap();
    let first = argmax(&last_logits(model, &chat_ids(model, "Where is my parcel?"), &mut prefixed));
    heads.push((prefixed, first));

    let dtype = model.model.serving_kv_dtype();
    let copies = |heads: &[(KvCache, u32)]| -> Vec<KvCache> {
        heads.iter().map(|(cache, _)| cache.in_place_copy(8, dtype).unwrap()).collect()
    };
    let (mut together, mut alone) = (copies(&heads), copies(&heads));
    let mut tokens: Vec<u32> = heads.iter().map(|(_, token)| *token).collect();
    for step in 0..4 {
        let mut refs: Vec<&mut KvCache> = together.iter_mut().collect();
        let batched = model.model.decode_batch(&tokens, &mut refs).unwrap();
        for (i, logits) in batched.iter().enumerate() {
            let single = last_logits(model, &[tokens[i]], &mut alone[i]);
            let diff = max_abs_diff(&single, logits);
            let margin = single[argmax(&single) as usize] - single[argmax(logits) as usize];
            assert!(diff <= 2.5 && margin <= diff, "step {step}, sequence {i}: logits differ by {diff}");
            assert_eq!(together[i].len(), alone[i].len());
            tokens[i] = argmax(&single);
        }
    }
    eprintln!("batched steps read each matrix once: {}", model.model.decodes_in_batches());
}
