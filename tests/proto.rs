//! The proto as a product: `buf lint` finds nothing in it, and `buf breaking` holds
//! it to the API as last released, so a change that would break the code generated
//! from it fails here.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use codex_jobs_test_support as support;

/// The API as released: what generated clients in the field were built from. A
/// release replaces it with `buf build --exclude-source-info -o proto/released/vX.Y.Z.binpb`.
const RELEASED: &str = "proto/released/v0.1.0.binpb";

fn buf() -> Option<PathBuf> {
    support::npm_tool("buf", "buf", "@bufbuild/buf@1.75.0")
}

fn run(buf: &Path, dir: &Path, args: &[&str]) -> Output {
    Command::new(buf)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("buf runs")
}

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn assert_clean(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} found problems:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn buf_lint_finds_nothing() {
    let Some(buf) = buf() else { return };
    assert_clean(&run(&buf, workspace(), &["lint"]), "buf lint");
}

#[test]
fn the_proto_keeps_every_promise_of_the_released_api() {
    let Some(buf) = buf() else { return };
    let output = run(&buf, workspace(), &["breaking", "--against", RELEASED]);
    assert_clean(&output, "buf breaking");
}

#[test]
fn a_change_that_would_break_generated_clients_is_caught() {
    let Some(buf) = buf() else { return };
    let copy = tempfile::tempdir().unwrap();
    let proto = copy.path().join("proto/codex/jobs/v1");
    std::fs::create_dir_all(&proto).unwrap();
    std::fs::copy(workspace().join("buf.yaml"), copy.path().join("buf.yaml")).unwrap();
    let source =
        std::fs::read_to_string(workspace().join("proto/codex/jobs/v1/jobs.proto")).unwrap();
    // A renamed field (same number, same wire) and a renumbered one.
    let changed = source
        .replacen("string cwd = 2;", "string working_dir = 2;", 1)
        .replacen("string model = 3;", "string model = 30;", 1);
    assert_ne!(
        changed, source,
        "the proto still has the fields this test changes"
    );
    std::fs::write(proto.join("jobs.proto"), changed).unwrap();

    let against = workspace().join(RELEASED);
    let output = run(
        &buf,
        copy.path(),
        &["breaking", "--against", against.to_str().unwrap()],
    );
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        !output.status.success(),
        "buf breaking let it pass:\n{report}"
    );
    assert!(
        report.contains(r#"changed name from "cwd" to "working_dir""#),
        "{report}"
    );
    assert!(
        report.contains(r#"Previously present field "3" with name "model""#),
        "{report}"
    );
}
