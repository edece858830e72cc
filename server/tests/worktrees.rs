//! Jobs in git worktrees of their own, in real repositories made in temp dirs: they
//! do not see each other's edits, their change is summed up and read as a patch,
//! applied to the checkout by a three-way merge (or refused, changing nothing),
//! started as several attempts of one prompt, and removed with the job.

use codex_jobs_test_support as support;

use std::path::{Path, PathBuf};

use support::{ServerOptions, TestServer, git, pb};

/// Everything a person would see of a checkout: HEAD, the index and the working
/// tree's status and contents.
fn snapshot(repo: &Path) -> String {
    let mut seen = git(repo, &["rev-parse", "HEAD"]);
    seen += &git(repo, &["status", "--porcelain=v1", "--untracked-files=all"]);
    seen += &git(repo, &["diff", "--cached"]);
    seen += &git(repo, &["diff"]);
    let mut files: Vec<_> = walk(repo);
    files.sort();
    for file in files {
        seen += &format!(
            "{}:{}\n",
            file.display(),
            std::fs::read_to_string(&file).unwrap()
        );
    }
    seen
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|entry| entry.file_name() != ".git")
        .flat_map(|entry| match entry.file_type().unwrap().is_dir() {
            true => walk(&entry.path()),
            false => vec![entry.path()],
        })
        .collect()
}

fn worktree_spec(server: &TestServer, cwd: &Path, prompt: &str) -> pb::JobSpec {
    pb::JobSpec {
        cwd: cwd.display().to_string(),
        isolation: pb::Isolation::Worktree.into(),
        ..server.spec(prompt)
    }
}

/// The whole patch of a job, read `page` bytes at a time.
async fn patch_in_pages(server: &TestServer, job_id: &str, page: u32) -> Vec<u8> {
    let mut client = server.client().await;
    let mut patch = Vec::new();
    loop {
        let window = client
            .diff(pb::DiffRequest {
                job_id: job_id.into(),
                offset: patch.len() as u64,
                max_bytes: page,
            })
            .await
            .unwrap();
        assert_eq!(window.start_offset, patch.len() as u64);
        patch.extend_from_slice(&window.patch);
        if !window.truncated {
            assert_eq!(patch.len() as u64, window.size);
            return patch;
        }
    }
}

/// What the `run` commands of a job printed, from its events.
async fn command_outputs(server: &TestServer, job_id: &str) -> Vec<String> {
    let events = server
        .client()
        .await
        .poll(pb::PollRequest {
            job_id: job_id.into(),
            window: Some(pb::poll_request::Window::SinceOffset(0)),
            stream: pb::OutputStream::Events.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .output;
    String::from_utf8(events)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|event| {
            event["type"] == "item.completed" && event["item"]["type"] == "command_execution"
        })
        .map(|event| {
            event["item"]["aggregated_output"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn two_jobs_editing_one_file_at_once_do_not_see_each_others_edits() {
    let server = TestServer::with(ServerOptions::default().args(["--max-running", "4"])).await;
    let scratch = tempfile::tempdir().unwrap();
    let repo = support::git_repository(
        &scratch.path().join("repo"),
        &[("notes.txt", "base\n"), ("sub/keep.txt", "kept\n")],
    );
    let marks = scratch.path().join("marks");
    std::fs::create_dir(&marks).unwrap();
    // Each writes, waits until the other has written too, then reads: both edits
    // are made before either looks.
    let prompt = |me: &str, other: &str| {
        format!(
            "run echo {me} >> ../notes.txt && touch {marks}/{me}\n\
             run while [ ! -e {marks}/{other} ]; do sleep 0.02; done\n\
             run cat ../notes.txt; pwd\n\
             say {me} done",
            marks = marks.display()
        )
    };
    // From a subdirectory: the job runs at the same place in its worktree.
    let a = server
        .start_spec(worktree_spec(&server, &repo.join("sub"), &prompt("A", "B")))
        .await;
    let b = server
        .start_spec(worktree_spec(&server, &repo.join("sub"), &prompt("B", "A")))
        .await;
    let (a, _) = server.wait_finished(&a.id).await;
    let (b, _) = server.wait_finished(&b.id).await;
    assert_eq!(
        a.state(),
        pb::JobState::Succeeded,
        "{a:?}\n{}",
        server.log()
    );
    assert_eq!(b.state(), pb::JobState::Succeeded, "{b:?}");

    let head = git(&repo, &["rev-parse", "HEAD"]).trim().to_string();
    for (job, me) in [(&a, "A"), (&b, "B")] {
        let seen = command_outputs(&server, &job.id).await;
        let worktree = server
            .state_dir()
            .join("jobs")
            .join(&job.id)
            .join("worktree");
        assert_eq!(
            seen[2],
            format!("base\n{me}\n{}/sub\n", worktree.display()),
            "job {me} saw another's edit, or ran elsewhere"
        );
        assert_eq!(
            job.spec.as_ref().unwrap().base,
            head,
            "the base is resolved"
        );
        let change = job
            .change
            .as_ref()
            .expect("an ended worktree job has a change");
        assert_eq!(change.base_commit, head);
        assert_eq!(change.branch, format!("codex-jobs/{}", job.id));
        assert_eq!(
            change.files,
            vec![pb::FileChange {
                path: "notes.txt".into(),
                lines_added: 1,
                lines_removed: 0,
                binary: false,
            }]
        );
        // The branch holds the work; the patch is git's own diff of it.
        assert_eq!(
            git(&repo, &["rev-parse", &change.branch]).trim(),
            change.head_commit
        );
        let expected = git(
            &repo,
            &[
                "diff",
                "--binary",
                "--no-renames",
                &head,
                &change.head_commit,
            ],
        );
        assert!(expected.contains(&format!("+{me}\n")), "{expected}");
        let whole = patch_in_pages(&server, &job.id, 4 * 1024 * 1024).await;
        assert_eq!(String::from_utf8(whole).unwrap(), expected);
        let paged = patch_in_pages(&server, &job.id, 16).await;
        assert_eq!(String::from_utf8(paged).unwrap(), expected);
        assert_eq!(change.patch_size, expected.len() as u64);
    }
    // The checkout itself never changed.
    assert_eq!(
        std::fs::read_to_string(repo.join("notes.txt")).unwrap(),
        "base\n"
    );
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");
}

#[tokio::test]
async fn apply_merges_into_a_checkout_and_refuses_a_conflicting_one_changing_nothing() {
    let server = TestServer::start().await;
    let scratch = tempfile::tempdir().unwrap();
    let lines: String = (1..=10).map(|n| format!("line {n}\n")).collect();
    let repo = support::git_repository(
        &scratch.path().join("repo"),
        &[("a.txt", &lines), ("b.txt", "b\n")],
    );
    let job = server
        .start_spec(worktree_spec(
            &server,
            &repo,
            "run sed -i 's/^line 2$/line two, by the job/' a.txt\n\
             run printf 'new\\n' > new.txt\n\
             say edited",
        ))
        .await;
    let (job, _) = server.wait_finished(&job.id).await;
    assert_eq!(job.state(), pb::JobState::Succeeded, "{job:?}");
    let mut client = server.client().await;

    // The checkout's own uncommitted edit of the same line: refused, nothing changed.
    std::fs::write(
        repo.join("a.txt"),
        lines.replace("line 2\n", "line 2, by hand\n"),
    )
    .unwrap();
    std::fs::write(repo.join("b.txt"), "b, staged\n").unwrap();
    git(&repo, &["add", "b.txt"]);
    std::fs::write(repo.join("untracked.txt"), "mine\n").unwrap();
    let before = snapshot(&repo);
    let refused = client.apply(&job.id).await.unwrap_err();
    let message = support::message(&refused);
    assert_eq!(
        support::code(refused),
        tonic::Code::FailedPrecondition,
        "{message}"
    );
    assert!(message.contains("conflict"), "{message}");
    assert!(message.contains("a.txt"), "{message}");
    assert!(!message.contains("b.txt"), "{message}");
    assert_eq!(
        snapshot(&repo),
        before,
        "a refused apply changed the checkout"
    );

    // An edit elsewhere in the same file merges; the staged one stays staged.
    std::fs::write(
        repo.join("a.txt"),
        lines.replace("line 9\n", "line 9, by hand\n"),
    )
    .unwrap();
    let applied = client.apply(&job.id).await.unwrap();
    assert_eq!(
        applied.checkout,
        repo.canonicalize().unwrap().display().to_string()
    );
    assert_eq!(
        applied.files,
        vec!["a.txt".to_string(), "new.txt".to_string()]
    );
    let merged = std::fs::read_to_string(repo.join("a.txt")).unwrap();
    assert_eq!(
        merged,
        lines
            .replace("line 2\n", "line two, by the job\n")
            .replace("line 9\n", "line 9, by hand\n")
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("new.txt")).unwrap(),
        "new\n"
    );
    assert_eq!(git(&repo, &["diff", "--cached", "--name-only"]), "b.txt\n");
    assert_eq!(
        git(&repo, &["log", "--oneline"]).lines().count(),
        1,
        "nothing committed"
    );

    // Again: the checkout has the change already, and nothing happens.
    let before = snapshot(&repo);
    let again = client.apply(&job.id).await.unwrap();
    assert!(again.files.is_empty(), "{again:?}");
    assert_eq!(snapshot(&repo), before);
}

#[tokio::test]
async fn three_attempts_make_three_changes_a_group_wait_and_one_is_applied() {
    let server = TestServer::start().await;
    let scratch = tempfile::tempdir().unwrap();
    let repo = support::git_repository(&scratch.path().join("repo"), &[("README", "hello\n")]);
    let cwd = repo.display().to_string();
    let cli = |args: &[&str]| {
        let output = server.cli(args);
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).to_string(),
            String::from_utf8_lossy(&output.stderr).to_string(),
        )
    };

    let (code, out, err) = cli(&[
        "--json",
        "start",
        "--attempts",
        "3",
        "--cwd",
        &cwd,
        "run date +%s%N > answer.txt\nsay answered",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let started: serde_json::Value = serde_json::from_str(&out).unwrap();
    let group = started["group"].as_str().unwrap().to_string();
    let ids: Vec<String> = started["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[0], started["job_id"]);
    assert!(
        started["worktree_base"].as_str().unwrap().len() == 40,
        "{started}"
    );

    let (code, out, err) = cli(&["wait", "--group", &group, "--timeout", "30"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    for (line, id) in lines.iter().zip(&ids) {
        assert!(line.starts_with(&format!("{id}  succeeded")), "{out}");
        assert!(line.ends_with("1 file, +1 -0"), "{out}");
    }
    // Waiting for the first of an ended group returns at once.
    let (code, _, err) = cli(&["wait", "--group", &group, "--any", "--timeout", "5"]);
    assert_eq!(code, Some(0), "{err}");

    let (code, out, _) = cli(&["--json", "list", "--group", &group]);
    assert_eq!(code, Some(0));
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let listed: Vec<&str> = listed["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job["job_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![&ids[2], &ids[1], &ids[0]]);
    let (_, out, _) = cli(&["list"]);
    assert_eq!(out.matches(&format!("group {group}")).count(), 3, "{out}");
    assert_eq!(out.matches("[1 file, +1 -0]").count(), 3, "{out}");

    // Three patches, each with its own answer.
    let mut answers = Vec::new();
    for id in &ids {
        let (code, patch, err) = cli(&["diff", id]);
        assert_eq!(code, Some(0), "{err}");
        assert!(patch.contains("+++ b/answer.txt"), "{patch}");
        let answer = patch
            .lines()
            .last()
            .unwrap()
            .trim_start_matches('+')
            .to_string();
        answers.push(answer);
        let (_, stat, _) = cli(&["diff", "--stat", id]);
        assert!(stat.contains(" answer.txt  +1 -0"), "{stat}");
    }
    answers.dedup();
    assert_eq!(answers.len(), 3, "{answers:?}");

    let (code, out, err) = cli(&["apply", &ids[1]]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("answer.txt"), "{out}");
    assert_eq!(
        std::fs::read_to_string(repo.join("answer.txt"))
            .unwrap()
            .trim(),
        answers[1]
    );
    // Another attempt's answer now conflicts with the one taken.
    let (code, _, err) = cli(&["apply", &ids[2]]);
    assert_eq!(code, Some(1));
    assert!(err.contains("answer.txt"), "{err}");
    assert_eq!(
        std::fs::read_to_string(repo.join("answer.txt"))
            .unwrap()
            .trim(),
        answers[1]
    );
}

#[tokio::test]
async fn a_retried_start_of_attempts_returns_the_same_group() {
    let server = TestServer::start().await;
    let scratch = tempfile::tempdir().unwrap();
    let repo = support::git_repository(&scratch.path().join("repo"), &[("README", "hello\n")]);
    let mut client = server.client().await;
    let request = pb::StartRequest {
        spec: Some(worktree_spec(&server, &repo, "say tried")),
        request_id: "best-of-two".into(),
        attempts: 2,
    };
    let first = client.start(request.clone()).await.unwrap();
    assert!(first.created);
    assert_eq!(first.attempts.len(), 2);
    let group = &first.attempts[0].group;
    assert!(!group.is_empty());
    assert!(first.attempts.iter().all(|job| &job.group == group));
    assert_eq!(first.job.as_ref().unwrap().id, first.attempts[0].id);

    let again = client.start(request).await.unwrap();
    assert!(!again.created);
    let ids = |response: &pb::StartResponse| {
        response
            .attempts
            .iter()
            .map(|job| job.id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&again), ids(&first));
    let listed = client.list(pb::ListRequest::default()).await.unwrap().jobs;
    assert_eq!(listed.len(), 2, "a retry starts nothing");
    for job in &first.attempts {
        server.wait_finished(&job.id).await;
    }
}

#[tokio::test]
async fn bad_worktree_requests_get_clear_errors() {
    let server = TestServer::start().await;
    let scratch = tempfile::tempdir().unwrap();
    let repo = support::git_repository(&scratch.path().join("repo"), &[("README", "hello\n")]);
    let plain = scratch.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    let mut client = server.client().await;
    let start = |spec: pb::JobSpec, attempts: u32| pb::StartRequest {
        spec: Some(spec),
        attempts,
        ..Default::default()
    };
    let refused = |status: codex_jobs_client::ClientError| {
        let message = support::message(&status);
        (support::code(status), message)
    };

    let (code, message) = refused(
        client
            .start(start(worktree_spec(&server, &plain, "say hi"), 0))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, tonic::Code::InvalidArgument);
    assert!(message.contains("is not in a git repository"), "{message}");

    let mut spec = worktree_spec(&server, &repo, "say hi");
    spec.base = "no-such-branch".into();
    let (code, message) = refused(client.start(start(spec, 0)).await.unwrap_err());
    assert_eq!(code, tonic::Code::InvalidArgument);
    assert!(
        message.contains("\"no-such-branch\" names no commit"),
        "{message}"
    );

    let mut spec = worktree_spec(&server, &repo, "say hi");
    spec.base = "--output=/tmp/x".into();
    let (code, message) = refused(client.start(start(spec, 0)).await.unwrap_err());
    assert_eq!(code, tonic::Code::InvalidArgument);
    assert!(message.contains("not starting with '-'"), "{message}");

    let mut spec = server.spec("say hi");
    spec.base = "main".into();
    let (code, message) = refused(client.start(start(spec, 0)).await.unwrap_err());
    assert_eq!(code, tonic::Code::InvalidArgument);
    assert!(
        message.contains("needs isolation ISOLATION_WORKTREE"),
        "{message}"
    );

    let (code, message) = refused(
        client
            .start(start(server.spec("say hi"), 2))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, tonic::Code::InvalidArgument);
    assert!(
        message.contains("2 attempts need isolation worktree"),
        "{message}"
    );

    let (code, message) = refused(
        client
            .start(start(worktree_spec(&server, &repo, "say hi"), 17))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, tonic::Code::InvalidArgument);
    assert!(message.contains("between 1 and 16, got 17"), "{message}");

    let mut spec = worktree_spec(&server, &repo, &"say a long prompt\n".repeat(40_000));
    let (code, message) = refused(client.start(start(spec.clone(), 8)).await.unwrap_err());
    assert_eq!(code, tonic::Code::InvalidArgument);
    assert!(
        message.contains("make an answer too large: at most 3 attempts"),
        "{message}"
    );
    spec.prompt = "say again".into();
    spec.resume_thread_id = "0199a213-81c0-7800-8aa1-bbab2a035a53".into();
    let (code, message) = refused(client.start(start(spec, 2)).await.unwrap_err());
    assert_eq!(code, tonic::Code::InvalidArgument);
    assert!(
        message.contains("attempts start threads of their own"),
        "{message}"
    );

    let (code, message) = refused(
        client
            .list(pb::ListRequest {
                group: "nope".into(),
                ..Default::default()
            })
            .await
            .unwrap_err(),
    );
    assert_eq!(code, tonic::Code::InvalidArgument);
    assert!(message.contains("group must be a group id"), "{message}");
    // Nothing was stored by any of them.
    assert!(
        client
            .list(pb::ListRequest::default())
            .await
            .unwrap()
            .jobs
            .is_empty()
    );

    // Diff and apply of a job without a worktree, and of one still running.
    let plain_job = server.start_job("say in place").await;
    server.wait_finished(&plain_job.id).await;
    let (code, message) = refused(client.apply(&plain_job.id).await.unwrap_err());
    assert_eq!(code, tonic::Code::FailedPrecondition);
    assert!(
        message.contains("not in a worktree of its own"),
        "{message}"
    );
    let running = server
        .start_spec(worktree_spec(&server, &repo, "sleep 30"))
        .await;
    server
        .wait_for_state(&running.id, pb::JobState::Running)
        .await;
    let (code, message) = refused(
        client
            .diff(pb::DiffRequest {
                job_id: running.id.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err(),
    );
    assert_eq!(code, tonic::Code::FailedPrecondition);
    assert!(
        message.contains("is running: its change is taken when it ends"),
        "{message}"
    );
    client.cancel(&running.id).await.unwrap();
    // A cancelled job has a change too: what it did until then.
    let cancelled = server.wait_finished(&running.id).await.0;
    assert_eq!(cancelled.state(), pb::JobState::Cancelled);
    assert!(cancelled.change.unwrap().files.is_empty());
    let (code, message) = refused(
        client
            .diff(pb::DiffRequest {
                job_id: running.id.clone(),
                offset: 1,
                ..Default::default()
            })
            .await
            .unwrap_err(),
    );
    assert_eq!(code, tonic::Code::InvalidArgument);
    assert!(message.contains("offset 1 is past the end"), "{message}");
}

#[tokio::test]
async fn deleting_a_job_removes_its_worktree_and_branch() {
    let server = TestServer::start().await;
    let scratch = tempfile::tempdir().unwrap();
    let repo = support::git_repository(&scratch.path().join("repo"), &[("README", "hello\n")]);
    let mut ids = Vec::new();
    for _ in 0..2 {
        let job = server
            .start_spec(worktree_spec(&server, &repo, "run echo more >> README"))
            .await;
        server.wait_finished(&job.id).await;
        ids.push(job.id);
    }
    let worktrees = || git(&repo, &["worktree", "list", "--porcelain"]);
    let branches = || git(&repo, &["branch", "--list", "codex-jobs/*"]);
    for id in &ids {
        assert!(worktrees().contains(id.as_str()), "{}", worktrees());
        assert!(branches().contains(id.as_str()), "{}", branches());
    }
    let mut client = server.client().await;

    client.delete(&ids[0]).await.unwrap();
    assert!(!worktrees().contains(ids[0].as_str()), "{}", worktrees());
    assert!(!branches().contains(ids[0].as_str()), "{}", branches());
    assert!(worktrees().contains(ids[1].as_str()));

    let pruned = client
        .prune(pb::PruneRequest {
            older_than: Some(prost_types::Duration::default()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(pruned.deleted, 1);
    assert_eq!(
        worktrees()
            .lines()
            .filter(|l| l.starts_with("worktree "))
            .count(),
        1
    );
    assert_eq!(branches(), "");
    assert!(!server.state_dir().join("jobs").join(&ids[1]).exists());
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");
}

#[tokio::test]
async fn the_repositorys_hooks_and_diff_settings_change_nothing() {
    let server = TestServer::start().await;
    let scratch = tempfile::tempdir().unwrap();
    let repo = support::git_repository(
        &scratch.path().join("repo"),
        &[("old.txt", "moved\n"), ("keep.txt", "kept\n")],
    );
    // Settings that would bend a porcelain diff, and hooks that would run as the
    // server's user: the repository's own, and one the job writes in its worktree.
    // (The job's own git commands run none, so that any hook run is the server's.)
    let marks = scratch.path().join("marks");
    std::fs::create_dir(&marks).unwrap();
    let hook = format!("#!/bin/sh\ntouch {}/$(basename $0)\n", marks.display());
    std::fs::create_dir(repo.join(".hooks")).unwrap();
    for name in [
        "post-checkout",
        "post-commit",
        "post-index-change",
        "prepare-commit-msg",
    ] {
        let path = repo.join(".hooks").join(name);
        std::fs::write(&path, &hook).unwrap();
        std::process::Command::new("chmod")
            .args(["+x", path.to_str().unwrap()])
            .status()
            .unwrap();
    }
    // Committed, as husky's are, so that the worktree has them too.
    git(&repo, &["add", ".hooks"]);
    git(&repo, &["commit", "--quiet", "-m", "hooks"]);
    for (key, value) in [
        ("diff.noprefix", "true"),
        ("color.ui", "always"),
        ("diff.renames", "copies"),
        ("core.hooksPath", ".hooks"),
    ] {
        git(&repo, &["config", key, value]);
    }
    let job = server
        .start_spec(worktree_spec(
            &server,
            &repo,
            &format!(
                "run printf '#!/bin/sh\\ntouch {marks}/by-the-job\\n' > .hooks/post-commit\n\
                 run git -c core.hooksPath=/dev/null checkout --quiet -b elsewhere\n\
                 run git -c core.hooksPath=/dev/null mv old.txt new.txt\n\
                 run echo more >> keep.txt",
                marks = marks.display()
            ),
        ))
        .await;
    let (job, _) = server.wait_finished(&job.id).await;
    assert_eq!(job.state(), pb::JobState::Succeeded, "{job:?}");
    let change = job.change.unwrap();
    // The job's branch holds its work, whatever it checked out.
    assert_eq!(
        git(&repo, &["rev-parse", &change.branch]).trim(),
        change.head_commit
    );
    let paths: Vec<&str> = change.files.iter().map(|file| file.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![".hooks/post-commit", "keep.txt", "new.txt", "old.txt"]
    );
    let patch = String::from_utf8(patch_in_pages(&server, &job.id, 1 << 20).await).unwrap();
    assert!(
        patch.starts_with("diff --git a/.hooks/post-commit b/.hooks/post-commit\n"),
        "{patch}"
    );
    assert!(!patch.contains('\x1b'), "{patch}");

    let mut client = server.client().await;
    let applied = client.apply(&job.id).await.unwrap();
    assert_eq!(applied.files, paths);
    assert_eq!(
        std::fs::read_to_string(repo.join("new.txt")).unwrap(),
        "moved\n"
    );
    assert!(!repo.join("old.txt").exists());
    assert_eq!(
        std::fs::read_to_string(repo.join("keep.txt")).unwrap(),
        "kept\nmore\n"
    );
    client.delete(&job.id).await.unwrap();
    let ran: Vec<_> = std::fs::read_dir(&marks).unwrap().flatten().collect();
    assert!(ran.is_empty(), "hooks ran: {ran:?}");
}

#[tokio::test]
async fn conflicts_name_files_as_they_are_and_a_cwd_the_commit_lacks_is_explained() {
    let server = TestServer::start().await;
    let scratch = tempfile::tempdir().unwrap();
    let repo = support::git_repository(
        &scratch.path().join("repo"),
        &[
            ("é \"quoted\" name.txt", "base\n"),
            (".gitignore", "build/\n"),
        ],
    );
    let job = server
        .start_spec(worktree_spec(
            &server,
            &repo,
            "run echo by-the-job > 'é \"quoted\" name.txt'",
        ))
        .await;
    server.wait_finished(&job.id).await;
    std::fs::write(repo.join("é \"quoted\" name.txt"), "by hand\n").unwrap();
    let refused = server.client().await.apply(&job.id).await.unwrap_err();
    let message = support::message(&refused);
    assert!(
        message.contains(" in é \"quoted\" name.txt; nothing was changed"),
        "{message}"
    );

    // An ignored directory is not in the commit, so not in the worktree either.
    std::fs::create_dir(repo.join("build")).unwrap();
    let job = server
        .start_spec(worktree_spec(&server, &repo.join("build"), "say hi"))
        .await;
    let (job, _) = server.wait_finished(&job.id).await;
    assert_eq!(job.state(), pb::JobState::Failed);
    assert_eq!(job.failure_reason(), pb::FailureReason::StartFailed);
    assert!(
        job.error
            .contains("the cwd is build in the repository, which its commit"),
        "{}",
        job.error
    );
}
