//! `cairn demo` end to end: on the embedded default with no configuration, then again on the
//! data the first run left behind; bad configuration fails with a clear message.

use std::process::{Command, Output};

fn cairn(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .current_dir(dir)
        .env_remove("CAIRN_CONFIG")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn demo_runs_on_the_default_and_again_on_its_own_data() {
    let dir = tempfile::tempdir().unwrap();
    for run in 1..=2u32 {
        let output = cairn(dir.path(), &["demo", "--session-ttl-ms", "200"]);
        let text = stdout(&output);
        assert!(
            output.status.success(),
            "run {run}: {text}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(text.contains("semantic_graph     on sled"), "{text}");
        assert!(
            text.contains("as known before the move \"Lisbon\""),
            "{text}"
        );
        assert!(text.contains("refcount 2"), "{text}");
        assert!(
            text.contains(&format!("saved version {run} ")),
            "run {run}: {text}"
        );
        assert!(text.trim_end().ends_with("done"), "{text}");
    }
    assert!(dir.path().join("cairn-data/sled").is_dir());
}

#[test]
fn bad_configuration_fails_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "[storage]\nbackend = \"redis\"\n",
    )
    .unwrap();
    let output = cairn(dir.path(), &["--config", "bad.toml", "demo"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("redis") && stderr.contains("postgres"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("cairn-data").exists(),
        "nothing may be created"
    );
}
