//! The official OpenAI Python SDK (installed into `.venv` by `make setup`) as a real client:
//! models, a whole answer, a streamed answer with usage, the extension fields, and errors.

use std::path::PathBuf;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_python_sdk_reads_answers_and_extensions() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make setup` (it installs the OpenAI SDK)",
        python.display()
    );
    let (mut app, _dir) = crate::chat::app_with_feed("chat_feed.jsonl", 12).await;
    let base = app.base.clone();
    let script = root.join("tests/openai_sdk_client.py");
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&python)
            .arg(script)
            .arg(&base)
            .arg(crate::chat::AS_OF)
            .output()
    })
    .await
    .expect("join")
    .expect("run python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "SDK client failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.trim_end().ends_with("ok"));
    app.stop().await;
}
