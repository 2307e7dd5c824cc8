//! `rudder ask`: one question to a running server, the answer streamed to the terminal as it is
//! generated, then the passages it cited and the request's stats.

use std::io::Write;

use rudder_proto::v1::{
    GenerateRequest, Grounding, SamplingParams, generate_event::Event,
    generation_service_client::GenerationServiceClient,
};

#[derive(Debug, Clone, clap::Args)]
pub struct AskArgs {
    /// The customer's question.
    pub question: String,
    /// Region whose bundle and documents answer it (e.g. us, uk, eu).
    #[arg(long)]
    pub region: String,
    /// Brand within the region.
    #[arg(long, default_value = "")]
    pub brand: String,
    /// The server's URL.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    pub server: String,
    /// Maximum answer tokens (default: the bundle's).
    #[arg(long)]
    pub max_tokens: Option<u32>,
}

/// Streams one answer; returns the stats line for callers that tabulate several.
pub async fn ask(args: &AskArgs) -> anyhow::Result<String> {
    let channel = crate::status::connect(&args.server).await?;
    let request = GenerateRequest {
        question: args.question.clone(),
        region: args.region.clone(),
        brand: args.brand.clone(),
        sampling: Some(SamplingParams { max_tokens: args.max_tokens, ..Default::default() }),
        ..Default::default()
    };
    let mut stream = GenerationServiceClient::new(channel)
        .generate(crate::status::authorized(request)?)
        .await?
        .into_inner();
    let mut stdout = std::io::stdout();
    let mut summary = String::new();
    while let Some(event) = stream.message().await? {
        match event.event {
            Some(Event::Started(started)) => {
                let bundle =
                    started.bundle.map(|b| format!("{}@{}", b.region, b.version)).unwrap_or_default();
                println!("[{}] {} — {} passages", args.region, bundle, started.passages.len());
            }
            Some(Event::Delta(delta)) => {
                print!("{}", delta.text);
                stdout.flush()?;
            }
            Some(Event::Citations(citations)) => {
                println!();
                for c in citations.citations {
                    let version = c.document.map(|d| d.version).unwrap_or_default();
                    println!("  [{}] {} § {} (version {version})", c.marker, c.title, c.section);
                }
                for e in citations.evidence {
                    println!(
                        "  evidence [{}] chars {}..{}: \"{}\"",
                        e.passage, e.char_start, e.char_end, e.text
                    );
                }
            }
            Some(Event::Stats(stats)) => {
                let bundle = stats.bundle.map(|b| format!("{}@{}", b.region, b.version)).unwrap_or_default();
                let grounding = Grounding::try_from(stats.grounding)
                    .map(|g| g.as_str_name().trim_start_matches("GROUNDING_").to_lowercase())
                    .unwrap_or_default();
                for note in &stats.grounding_notes {
                    println!("  note: {note}");
                }
                summary = format!(
                    "{bundle:<8} {grounding:<10} ttft {:>6} ms  {:>5.1} tok/s  {:>3} prompt tokens ({} cached)  {} output tokens",
                    stats.time_to_first_token_ms,
                    stats.tokens_per_second,
                    stats.prompt_tokens,
                    stats.cached_prompt_tokens,
                    stats.output_tokens
                );
                println!("  {summary}\n");
            }
            None => {}
        }
    }
    Ok(summary)
}
