//! The clients for other languages, installed as their users install them, run their
//! own test suites and their README examples against the real server.

use codex_jobs_test_support as support;

use std::{
    path::Path,
    process::{Command, Output},
};

use support::{Certs, ServerOptions, TestServer};

const TOKEN: &str = "other-languages-secret";

/// What the packages' tests read to find the server (see their test setup).
fn test_env(server: &TestServer) -> [(&'static str, String); 4] {
    [
        ("CODEX_JOBS_TEST_ENDPOINT", server.endpoint()),
        ("CODEX_JOBS_TEST_TOKEN", TOKEN.to_string()),
        (
            "CODEX_JOBS_TEST_SOCKET",
            format!("unix:{}", server.socket().display()),
        ),
        (
            "CODEX_JOBS_TEST_CWD",
            server.work_dir().display().to_string(),
        ),
    ]
}

fn assert_ran(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The first code block of `readme` in `language`, as a reader would copy it.
fn example(readme: &Path, language: &str) -> String {
    let text = std::fs::read_to_string(readme).unwrap();
    let fence = format!("```{language}\n");
    let start = text.find(&fence).expect("the README has an example") + fence.len();
    let end = start + text[start..].find("```").unwrap();
    text[start..end].to_string()
}

/// Runs `program file` in a job directory with the example's environment: the
/// endpoint and the credentials a user would export.
fn run_example(program: &Path, file: &Path, server: &TestServer, env: &[(&str, String)]) -> Output {
    Command::new(program)
        .arg(file)
        .current_dir(server.work_dir())
        .envs(env.iter().map(|(key, value)| (*key, value.as_str())))
        .output()
        .unwrap()
}

#[tokio::test]
async fn the_python_package_passes_its_tests_against_the_server() {
    let Some(python) = support::python_package() else {
        return;
    };
    let server = TestServer::with(ServerOptions::default().token(TOKEN)).await;
    let tests = support::workspace_dir().join("client/python/tests");
    let output = Command::new(python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(&tests)
        .envs(test_env(&server))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    assert_ran(&output, "the Python package's tests");
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(
        summary.contains(" passed") && !summary.contains("skipped"),
        "{summary}"
    );
}

#[test]
fn the_python_package_type_checks_strictly() {
    let Some(python) = support::python_package() else {
        return;
    };
    let package = support::workspace_dir().join("client/python");
    // From a directory of its own, so mypy checks the installed package.
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(python)
        .args(["-m", "mypy", "--no-incremental", "--config-file"])
        .arg(package.join("pyproject.toml"))
        .args(["-p", "codex_jobs"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_ran(&output, "mypy on the Python package");
}

#[tokio::test]
async fn the_python_readme_example_runs_as_written_over_tls() {
    let Some(python) = support::python_package() else {
        return;
    };
    let certs = Certs::new();
    let server =
        TestServer::with(ServerOptions::default().tls(&certs, "server").token(TOKEN)).await;
    let readme = support::workspace_dir().join("client/python/README.md");
    let file = server.work_dir().join("example.py");
    std::fs::write(&file, example(&readme, "python")).unwrap();
    let env = [
        ("CODEX_JOBS_ENDPOINT", server.endpoint()),
        ("CODEX_JOBS_TOKEN", TOKEN.to_string()),
        (
            "CODEX_JOBS_CA_CERT",
            certs.path("ca.pem").display().to_string(),
        ),
    ];
    let output = run_example(&python, &file, &server, &env);
    assert_ran(&output, "the Python README example");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.contains("echo: "), "{printed}");
    assert!(printed.trim_end().ends_with("succeeded"), "{printed}");
}

#[tokio::test]
async fn the_typescript_package_passes_its_tests_against_the_server() {
    let Some(project) = support::node_package() else {
        return;
    };
    let server = TestServer::with(ServerOptions::default().token(TOKEN)).await;
    // The tests import the package by name, so they run from the project that
    // installed it (their README test reads the README the package shipped).
    let tests = project.join("test");
    std::fs::create_dir_all(&tests).unwrap();
    let source = support::workspace_dir().join("client/typescript/test");
    for entry in std::fs::read_dir(source).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, tests.join(path.file_name().unwrap())).unwrap();
    }
    let output = Command::new("node")
        .args(["--test", "--test-reporter=spec", "test/"])
        .current_dir(&project)
        .envs(test_env(&server))
        .output()
        .unwrap();
    assert_ran(&output, "the TypeScript package's tests");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        report.contains("ℹ pass ") && report.contains("ℹ skipped 0"),
        "{report}"
    );
}
