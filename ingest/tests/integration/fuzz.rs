//! Fuzzing of every parser an uploaded document meets (the loader of its format, front matter, the
//! normalised text and its block offsets), on stable Rust and without extra crates: the sample
//! corpus's files, mutated by byte flips, cut and copied ranges, and the format's own syntax
//! inserted once or repeated into nesting bombs. An input may be refused with an error; it may not
//! panic, overflow the stack (the test thread has the 2 MiB of a tokio worker) or loop.
//!
//! `make test` runs a bounded number of rounds per seed (`RUDDER_FUZZ_ROUNDS`, default 20);
//! `make fuzz` runs for `RUDDER_FUZZ_SECONDS`. A failure names the seed file, the round and the
//! RNG state, and writes the input to `target/fuzz-findings/`.

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use rudder_ingest::{
    client::{self, WalkOptions},
    loaders::{self, MediaType},
};

use super::corpus_dir;

/// Syntax worth inserting, per format: what opens nesting, what ends structures early, numbers
/// that overflow, and bytes that are not text.
fn dictionary(media: MediaType) -> &'static [&'static [u8]] {
    match media {
        MediaType::Markdown | MediaType::PlainText => &[
            b"\n# ",
            b"\n> ",
            b"\n- ",
            b"\n1. ",
            b"\n    ",
            b"+++\n",
            b"---\n",
            b"[",
            b"](",
            b"```\n",
            b"|",
            b"<div>",
            b"{% if x %}",
            b"{{ x }}",
            b"regions = [[[[",
            b"\"",
            b"\\",
            b"\0",
            b"\xF0\x9F",
            b"99999999999999999999",
        ],
        MediaType::Html => &[
            b"<div>",
            b"</div>",
            b"<li>",
            b"<ol start=\"99999999999999999999\">",
            b"<table><tr><td>",
            b"<script>",
            b"<h1>",
            b"&#x10FFFF;",
            b"<!--",
            b"<![CDATA[",
            b"<svg>",
            b"\0",
        ],
        MediaType::Pdf => &[
            b" obj ",
            b"endobj",
            b"<<",
            b">>",
            b"stream\n",
            b"endstream",
            b"/Length 99999999",
            b"[",
            b"]",
            b"(",
            b")",
            b"xref\n0 99999\n",
            b"trailer",
            b"/Type /Page",
            b" 0 R",
        ],
    }
}

/// xorshift64*: reproducible from its state, which a failure reports.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

/// One to four mutations of `seed`.
fn mutate(seed: &[u8], media: MediaType, rng: &mut Rng) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(6) {
            0 if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes[i] ^= 1 << rng.below(8);
            }
            1 if !bytes.is_empty() => {
                let end = (at + rng.below(256)).min(bytes.len());
                bytes.drain(at.min(end)..end);
            }
            2 if !bytes.is_empty() => {
                let start = rng.below(bytes.len());
                let end = (start + rng.below(512)).min(bytes.len());
                let copy = bytes[start..end].to_vec();
                bytes.splice(at..at, copy);
            }
            3 => {
                let words = dictionary(media);
                let word = words[rng.below(words.len())];
                bytes.splice(at..at, word.iter().copied());
            }
            4 => {
                // A nesting bomb: one opener repeated thousands of times.
                let words = dictionary(media);
                let word = words[rng.below(words.len())];
                let times = 1000 + rng.below(20_000);
                let bomb: Vec<u8> = word.iter().copied().cycle().take(word.len() * times).collect();
                bytes.splice(at..at, bomb);
            }
            _ => bytes.truncate((at + rng.below(64)).min(bytes.len())),
        }
    }
    bytes
}

/// Everything that reads an uploaded document, as ingestion calls it.
fn parse(media: MediaType, bytes: &[u8]) {
    let _ = loaders::embedded_metadata(media, bytes);
    if let Ok(document) = loaders::load(media, bytes) {
        let text = document.normalised_text();
        for offset in document.block_offsets() {
            assert!(
                offset <= text.len() && text.is_char_boundary(offset),
                "block offset {offset} outside the text"
            );
        }
    }
}

struct Finding {
    seed: PathBuf,
    round: usize,
    state: u64,
    problem: String,
    saved: PathBuf,
}

/// The slowest input of a run: how long it took, and which seed, round and size it was.
#[derive(Debug, Clone, Default)]
struct Slowest {
    took: Duration,
    what: String,
}

impl Slowest {
    fn keep(&mut self, other: Slowest) {
        if other.took > self.took {
            *self = other;
        }
    }
}

/// Fuzzes each seed for `rounds` rounds or until `until`, the generators started from `salt`; the
/// slowest input and the rounds run come back with the findings.
fn fuzz(
    seeds: &[PathBuf],
    rounds: usize,
    until: Option<Instant>,
    salt: u64,
) -> (Vec<Finding>, usize, Slowest) {
    let findings_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fuzz-findings");
    let mut findings = Vec::new();
    let (mut ran, mut slowest) = (0, Slowest::default());
    'seeds: for (index, seed) in seeds.iter().enumerate() {
        let Ok(media) = MediaType::detect(&seed.to_string_lossy(), None) else { continue };
        let original = std::fs::read(seed).expect("a seed file");
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1) ^ salt.rotate_left(32));
        for round in 0..rounds {
            if until.is_some_and(|until| Instant::now() >= until) {
                break 'seeds;
            }
            let state = rng.0;
            let input = mutate(&original, media, &mut rng);
            let started = Instant::now();
            let outcome = catch_unwind(AssertUnwindSafe(|| parse(media, &input)));
            slowest.keep(Slowest {
                took: started.elapsed(),
                what: format!("{} round {round} ({} bytes)", seed.display(), input.len()),
            });
            ran += 1;
            if let Err(panic) = outcome {
                let problem = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "a panic".into());
                let name = seed.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let saved = findings_dir.join(format!("{name}.{round}.bin"));
                let _ = std::fs::create_dir_all(&findings_dir);
                let _ = std::fs::write(&saved, &input);
                findings.push(Finding { seed: seed.clone(), round, state, problem, saved });
            }
        }
    }
    (findings, ran, slowest)
}

fn seeds() -> Vec<PathBuf> {
    client::collect_files(&[corpus_dir()], &WalkOptions::default()).expect("the sample corpus")
}

fn report(findings: &[Finding], ran: usize, slowest: &Slowest) {
    eprintln!(
        "fuzzed {ran} inputs; slowest {:?}: {}; {} findings",
        slowest.took,
        slowest.what,
        findings.len()
    );
    let described: Vec<String> = findings
        .iter()
        .map(|f| {
            format!(
                "{} round {} (rng state {:#x}): {} — input in {}",
                f.seed.display(),
                f.round,
                f.state,
                f.problem,
                f.saved.display()
            )
        })
        .collect();
    assert!(findings.is_empty(), "parsers panicked:\n{}", described.join("\n"));
}

#[test]
fn mutated_corpus_documents_are_loaded_or_refused_never_a_panic() {
    let rounds = std::env::var("RUDDER_FUZZ_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(20);
    let seeds = seeds();
    assert!(seeds.len() >= 10, "{} seeds", seeds.len());
    let (findings, ran, slowest) = fuzz(&seeds, rounds, None, 0);
    report(&findings, ran, &slowest);
}

/// `make fuzz`: round after round over every seed for `RUDDER_FUZZ_SECONDS` (default 600).
#[test]
#[ignore = "a long run: make fuzz"]
fn fuzz_for_a_while() {
    let seconds = std::env::var("RUDDER_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(600);
    let until = Instant::now() + Duration::from_secs(seconds);
    let seeds = seeds();
    let (mut all, mut total, mut slowest) = (Vec::new(), 0, Slowest::default());
    let mut pass = 0u64;
    while Instant::now() < until {
        // Each pass starts the seeds' generators elsewhere.
        let (findings, ran, slow) = fuzz(&seeds, 200, Some(until), pass + 1);
        all.extend(findings);
        total += ran;
        slowest.keep(slow);
        pass += 1;
    }
    report(&all, total, &slowest);
}
