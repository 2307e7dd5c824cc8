//! The `rudder` binary as a user runs it: a real process, real signals, real files.
// A test binary: a panic here is a failing test, including in helpers outside #[test] functions.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::{
    path::Path,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

const RUDDER: &str = env!("CARGO_BIN_EXE_rudder");

/// `rudder ARGS` with no `RUDDER__*` overrides leaking in from the caller's environment.
fn rudder(args: &[&str]) -> Command {
    let mut command = Command::new(RUDDER);
    command.args(args).env("RUST_LOG", "info");
    for (key, _) in std::env::vars() {
        if key.starts_with("RUDDER__") {
            command.env_remove(key);
        }
    }
    command
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Waits for `rudder serve --addr-file` to publish its address.
fn wait_for_addr(path: &Path, child: &mut Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(addr) = std::fs::read_to_string(path) {
            return addr;
        }
        assert!(child.try_wait().unwrap().is_none(), "rudder serve exited before listening");
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("rudder serve did not publish its address within 30 s");
}

#[test]
fn serve_on_port_zero_publishes_its_address_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let addr_file = dir.path().join("addr");
    let data_dir = dir.path().join("data");
    let mut child = rudder(&["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data_dir)
        .arg("--addr-file")
        .arg(&addr_file)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = wait_for_addr(&addr_file, &mut child);
    assert!(!addr.ends_with(":0") && addr.starts_with("127.0.0.1:"), "{addr}");
    assert!(data_dir.is_dir(), "serve creates its data directory");

    let status = rudder(&["status", "--server", &format!("http://{addr}")]).output().unwrap();
    let report = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{}", stderr_of(&status));
    assert!(report.contains("rudder.v1.PromptService") && report.contains("SERVING"), "{report}");

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let output = child.wait_with_output().unwrap();
    let log = stderr_of(&output);
    assert!(output.status.success(), "exit after SIGTERM: {:?}\n{log}", output.status);
    assert!(log.contains(&format!("listening on {addr}")), "the chosen address is logged: {log}");
    assert!(log.contains("rudder stopped"), "{log}");
}

#[test]
fn a_missing_models_dir_is_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-models-here");
    let output = rudder(&["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("RUDDER_MODELS_DIR", &missing)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr_of(&output);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("no-models-here") && err.contains("make models"), "{err}");
}

#[test]
fn a_malformed_config_file_is_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rudder.toml");
    std::fs::write(&config, "[server\nlisten = 1\n").unwrap();
    let output = rudder(&["config", "show", "--config"]).arg(&config).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr_of(&output);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("rudder.toml") && err.contains("line 1"), "{err}");
}

#[test]
fn config_show_prints_the_layers_merged_with_secrets_redacted() {
    let output = rudder(&["config", "show", "--listen", "127.0.0.1:7777"])
        .env("RUDDER__STORE__QDRANT__API_KEY", "top-secret-key")
        .env("RUDDER__LOG__FORMAT", "json")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(shown.contains("listen = \"127.0.0.1:7777\""), "{shown}");
    assert!(shown.contains("format = \"json\""), "{shown}");
    assert!(!shown.contains("top-secret-key") && shown.contains("[redacted]"), "{shown}");
}

#[test]
fn an_unknown_env_key_names_the_variable() {
    let output = rudder(&["config", "show"]).env("RUDDER__SERVER__LISTN", "127.0.0.1:1").output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr_of(&output);
    assert!(err.contains("RUDDER__SERVER__LISTN") && err.contains("listn"), "{err}");
}

#[test]
fn prompts_train_reports_a_malformed_line_then_trains_exports_and_imports_a_soft_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let system = dir.path().join("system.txt");
    std::fs::write(&system, "You are a shop assistant.").unwrap();
    let line = |item: &str| {
        format!(
            r#"{{"messages":[{{"role":"user","content":"Which colour is the {item}?"}},{{"role":"assistant","content":"The {item} is teal."}}]}}"#
        )
    };
    let data = dir.path().join("train.jsonl");
    std::fs::write(&data, format!("{}\n{{oops\n{}\n{}\n", line("tent"), line("boots"), line("lamp")))
        .unwrap();
    let out = dir.path().join("soft");
    let train = |extra: &[&str]| {
        let mut command = rudder(&["prompts", "train", "soft", "--virtual-tokens", "2", "--steps", "2"]);
        command.args(["--batch-size", "2", "--eval-every", "1", "--validation-fraction", "0.3"]);
        command.arg("--data").arg(&data).arg("--out").arg(&out).arg("--system-file").arg(&system);
        command.args(extra).output().unwrap()
    };

    let refused = train(&[]);
    assert!(!refused.status.success());
    assert!(stderr_of(&refused).contains("train.jsonl:2:"), "{}", stderr_of(&refused));
    assert!(!out.join("manifest.json").exists(), "nothing written for refused data");

    let trained = train(&["--skip-bad-lines"]);
    assert!(trained.status.success(), "{}", stderr_of(&trained));
    assert!(stderr_of(&trained).contains("skipped") && stderr_of(&trained).contains("train.jsonl:2:"));
    assert!(out.join("manifest.json").is_file() && out.join("loss.svg").is_file());

    let peft = dir.path().join("peft");
    let exported = rudder(&["prompts", "export-peft"]).arg(&out).arg("--out").arg(&peft).output().unwrap();
    assert!(exported.status.success(), "{}", stderr_of(&exported));
    let back = dir.path().join("back");
    let imported = rudder(&["prompts", "import-peft"]).arg(&peft).arg("--out").arg(&back).output().unwrap();
    assert!(imported.status.success(), "{}", stderr_of(&imported));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(back.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["kind"], "soft-prompt");
    assert_eq!(manifest["tensors"]["prompt_embeddings"], serde_json::json!([2, 576]));
}

#[test]
fn ingest_local_stores_documents_without_a_server_and_a_second_run_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs");
    std::fs::create_dir_all(docs.join("help")).unwrap();
    std::fs::write(
        docs.join("returns.md"),
        "+++\ndoc_id = \"returns-test\"\ntitle = \"Returns\"\nregions = [\"uk\"]\nversion = \"1\"\n+++\n\n# Returns\n\n## Window\n\nReturn items within 28 days.\n",
    )
    .unwrap();
    std::fs::write(
        docs.join("help/index.md"),
        "---\ntitle: Help\nlayout: page\nregions: [uk]\n---\n# Help\n\nAsk [us]({{ site.email }}).\n",
    )
    .unwrap();
    std::fs::write(docs.join("notes.txt"), "No metadata anywhere.").unwrap();
    std::fs::write(docs.join("LICENSE.md"), "# License\n\nNot policy.\n").unwrap();
    let data_dir = dir.path().join("data");
    let ingest = |extra: &[&str]| {
        rudder(&["ingest", "--local"])
            .args(extra)
            .arg(&docs)
            .arg("--data-dir")
            .arg(&data_dir)
            .output()
            .unwrap()
    };

    // A dry run shows ids, titles and chunk counts, and what would fail, and stores nothing.
    let dry = ingest(&["--dry-run", "--allow-partial"]);
    let table = String::from_utf8_lossy(&dry.stdout).into_owned();
    assert!(dry.status.success(), "{}", stderr_of(&dry));
    let help_row = table.lines().find(|l| l.starts_with("help ")).unwrap_or_else(|| panic!("{table}"));
    assert!(
        help_row.contains(" 1  Help") && help_row.contains("ignored front matter keys: layout"),
        "{table}"
    );
    assert!(table.contains("returns-test") && table.contains("nothing was stored"), "{table}");

    // A failed document makes the exit status non-zero, and leads the table.
    let failed = ingest(&[]);
    let first = String::from_utf8_lossy(&failed.stdout).into_owned();
    assert!(!failed.status.success(), "exit {:?}\n{first}", failed.status);
    let error = stderr_of(&failed);
    assert!(error.contains("1 of 3 documents failed") && error.contains("notes.txt"), "{error}");
    assert!(error.contains("--allow-partial"), "{error}");
    assert!(first.contains("skipped as boilerplate") && first.contains("LICENSE.md"), "{first}");
    let rows: Vec<&str> = first.lines().skip_while(|l| !l.starts_with("DOCUMENT")).skip(1).collect();
    assert!(
        rows[0].starts_with("notes.txt") && rows[0].contains("FAILED") && rows[0].contains("regions"),
        "{first}"
    );
    assert!(first.contains("returns-test") && first.contains("ingested"), "{first}");
    assert!(first.lines().any(|l| l.starts_with("help ") && l.contains("ingested")), "{first}");

    // Partial success allowed: exit 0; the same content again is a no-op.
    let second = ingest(&["--allow-partial"]);
    assert!(second.status.success(), "{}", stderr_of(&second));
    let second = String::from_utf8_lossy(&second.stdout).into_owned();
    assert!(
        second.contains("unchanged") && !second.contains("ingested "),
        "the same content again is a no-op: {second}"
    );
}

#[test]
fn prompts_eval_writes_every_answer_of_the_variants_asked_for() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::tempdir().unwrap();
    let heldout = dir.path().join("heldout.jsonl");
    let lines: Vec<String> = std::fs::read_to_string(root.join("prompts/data/uk/heldout.jsonl"))
        .unwrap()
        .lines()
        .take(2)
        .map(|line| format!("{line}\n"))
        .collect();
    std::fs::write(&heldout, lines.concat()).unwrap();
    let answers = dir.path().join("answers.jsonl");
    let eval = |variants: &str| {
        let mut command = rudder(&["prompts", "eval", "--region", "uk", "--max-new-tokens", "4"]);
        command.arg("--variants").arg(variants).arg("--heldout").arg(&heldout).arg("--answers").arg(&answers);
        command.current_dir(&root).output().unwrap()
    };

    let refused = eval("a,z");
    assert_eq!(refused.status.code(), Some(2), "a usage error");
    assert!(stderr_of(&refused).contains("\"z\" is not a variant"), "{}", stderr_of(&refused));

    let evaluated = eval("a");
    assert!(evaluated.status.success(), "{}", stderr_of(&evaluated));
    let written: Vec<serde_json::Value> = std::fs::read_to_string(&answers)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(written.len(), 2, "one line per held-out example, of variant (a) only");
    for (answer, line) in written.iter().zip([1, 2]) {
        assert_eq!((answer["variant"].as_str(), answer["line"].as_u64()), (Some("(a) untuned"), Some(line)));
        assert!(answer["score"]["apologises"].is_boolean() && answer["answer"].is_string(), "{answer}");
    }
}
