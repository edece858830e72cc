//! Start, Poll and List against the real server, and how each bad request is
//! refused.

use codex_jobs_test_support as support;

use support::{ServerOptions, TestServer, code, pb};
use tonic::Code;

fn tail(job_id: &str, lines: u32) -> pb::PollRequest {
    pb::PollRequest {
        job_id: job_id.into(),
        window: Some(pb::poll_request::Window::TailLines(lines)),
        ..Default::default()
    }
}

fn since(job_id: &str, offset: u64) -> pb::PollRequest {
    pb::PollRequest {
        job_id: job_id.into(),
        window: Some(pb::poll_request::Window::SinceOffset(offset)),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_job_runs_and_reports_what_codex_said() {
    let server = TestServer::start().await;
    let job = server
        .start_job("say looking around\nrun echo from-the-shell\nsay all done")
        .await;
    assert!(job.id.parse::<uuid::Uuid>().unwrap().get_version_num() == 7);
    assert!(matches!(
        job.state(),
        pb::JobState::Queued | pb::JobState::Running
    ));

    let (job, transcript) = server.wait_finished(&job.id).await;
    assert_eq!(job.state(), pb::JobState::Succeeded, "{job:?}");
    assert_eq!(job.exit_code, Some(0));
    assert_eq!(job.final_message, "all done");
    assert!(!job.thread_id.is_empty());
    let usage = job.usage.expect("usage from turn.completed");
    assert!(usage.input_tokens > 0 && usage.output_tokens > 0);
    assert!(job.started_at.is_some() && job.finished_at.is_some());
    assert_eq!(
        transcript,
        format!(
            "looking around\n$ echo from-the-shell\nall done\n\
             -- turn completed: {} input tokens (0 cached), {} output tokens\n",
            usage.input_tokens, usage.output_tokens
        )
    );
    assert_eq!(job.output_size, transcript.len() as u64);

    // The flags are those of the real CLI, and the job ran where it was told.
    let argv = std::fs::read_to_string(server.argv_log()).unwrap();
    let cwd = server.work_dir().display().to_string();
    assert!(
        argv.starts_with("exec --json --skip-git-repo-check -o "),
        "{argv}"
    );
    assert!(argv.contains(&format!(" -C {cwd} -s read-only ")), "{argv}");
}

#[tokio::test]
async fn poll_tails_lines_and_reads_on_from_an_offset() {
    let server = TestServer::start().await;
    let job = server.start_job("lines 500 row").await;
    server.wait_finished(&job.id).await;
    let mut client = server.client().await;

    let last = client.poll(tail(&job.id, 3)).await.unwrap();
    let text = String::from_utf8(last.output.clone()).unwrap();
    assert!(
        text.starts_with("row 499\nrow 500\n-- turn completed"),
        "{text}"
    );
    assert_eq!(last.next_offset, last.size);
    assert!(!last.truncated);

    // Reading on from an offset in small windows returns every byte exactly once.
    let mut offset = 0;
    let mut all = Vec::new();
    loop {
        let mut request = since(&job.id, offset);
        request.max_bytes = 1000;
        let window = client.poll(request).await.unwrap();
        assert_eq!(window.start_offset, offset);
        all.extend_from_slice(&window.output);
        offset = window.next_offset;
        if !window.truncated {
            break;
        }
        assert!(
            window.output.ends_with(b"\n"),
            "cut windows end at a line end"
        );
    }
    let whole = std::fs::read(
        server
            .state_dir()
            .join("jobs")
            .join(&job.id)
            .join("transcript.log"),
    )
    .unwrap();
    assert_eq!(all, whole);

    // At the end there is nothing new, and nothing is returned twice.
    let end = client.poll(since(&job.id, offset)).await.unwrap();
    assert!(end.output.is_empty());
    assert_eq!(end.next_offset, offset);

    // The raw events are there too.
    let mut events = tail(&job.id, 1);
    events.stream = pb::OutputStream::Events.into();
    let last_event = client.poll(events).await.unwrap();
    let event: serde_json::Value = serde_json::from_slice(&last_event.output).unwrap();
    assert_eq!(event["type"], "turn.completed");
}

#[tokio::test]
async fn a_long_poll_returns_when_output_arrives_or_the_job_ends() {
    let server = TestServer::start().await;
    let job = server.start_job("sleep 1\nsay late news\nsleep 1").await;
    let mut client = server.client().await;

    let mut first = since(&job.id, 0);
    first.wait = Some(prost_types::Duration {
        seconds: 30,
        nanos: 0,
    });
    let news = client.poll(first).await.unwrap();
    assert!(
        String::from_utf8_lossy(&news.output).contains("late news"),
        "the wait ended with the new output: {news:?}"
    );
    assert!(!support::pb::JobState::Succeeded.eq(&news.job.as_ref().unwrap().state()));

    let mut rest = since(&job.id, news.next_offset);
    rest.wait = Some(prost_types::Duration {
        seconds: 30,
        nanos: 0,
    });
    let mut ended = client.poll(rest).await.unwrap();
    while !codex_jobs_client::is_finished(ended.job.as_ref().unwrap()) {
        let mut again = since(&job.id, ended.next_offset);
        again.wait = Some(prost_types::Duration {
            seconds: 30,
            nanos: 0,
        });
        ended = client.poll(again).await.unwrap();
    }
    assert_eq!(ended.job.unwrap().state(), pb::JobState::Succeeded);

    // A wait on a job that is still silent returns when the wait is over.
    let quiet = server.start_job("sleep 30").await;
    let mut request = since(&quiet.id, 0);
    request.wait = Some(prost_types::Duration {
        seconds: 0,
        nanos: 300_000_000,
    });
    let timed_out = client.poll(request).await.unwrap();
    assert!(timed_out.output.is_empty());
    assert_eq!(timed_out.job.unwrap().state(), pb::JobState::Running);
    client.cancel(&quiet.id).await.unwrap();
}

#[tokio::test]
async fn the_same_request_id_returns_the_same_job() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let request = pb::StartRequest {
        spec: Some(server.spec("say once")),
        request_id: "retry-me".into(),
        ..Default::default()
    };
    let first = client.start(request.clone()).await.unwrap();
    let second = client.start(request).await.unwrap();
    assert!(first.created);
    assert!(!second.created);
    assert_eq!(first.job.unwrap().id, second.job.as_ref().unwrap().id);
    assert_eq!(second.job.unwrap().request_id, "retry-me");
    let list = client.list(pb::ListRequest::default()).await.unwrap();
    assert_eq!(list.jobs.len(), 1, "a retry starts no second job");
}

#[tokio::test]
async fn list_pages_newest_first_and_filters_by_state_and_label() {
    let server = TestServer::start().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut spec = server.spec(if i == 2 { "exit 3" } else { "say ok" });
        spec.labels.insert(
            "batch".into(),
            if i % 2 == 0 { "even" } else { "odd" }.into(),
        );
        ids.push(server.start_spec(spec).await.id);
    }
    for id in &ids {
        server.wait_finished(id).await;
    }
    let mut client = server.client().await;

    let first = client
        .list(pb::ListRequest {
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    let listed: Vec<_> = first.jobs.iter().map(|job| job.id.clone()).collect();
    assert_eq!(listed, vec![ids[4].clone(), ids[3].clone()]);
    let rest = client
        .list(pb::ListRequest {
            page_size: 10,
            page_token: first.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let listed: Vec<_> = rest.jobs.iter().map(|job| job.id.clone()).collect();
    assert_eq!(listed, vec![ids[2].clone(), ids[1].clone(), ids[0].clone()]);
    assert!(rest.next_page_token.is_empty());

    let failed = client
        .list(pb::ListRequest {
            states: vec![pb::JobState::Failed.into()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(failed.jobs.len(), 1);
    assert_eq!(failed.jobs[0].id, ids[2]);

    let even = client
        .list(pb::ListRequest {
            labels: [("batch".to_string(), "even".to_string())].into(),
            states: vec![pb::JobState::Succeeded.into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let listed: Vec<_> = even.jobs.iter().map(|job| job.id.clone()).collect();
    assert_eq!(listed, vec![ids[4].clone(), ids[0].clone()]);
}

#[tokio::test]
async fn bad_requests_are_refused_with_a_reason_and_disturb_nothing() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let survivor = server.start_job("sleep 1\nsay still here").await;

    let start = |spec: pb::JobSpec| pb::StartRequest {
        spec: Some(spec),
        ..Default::default()
    };
    let cases: Vec<(pb::StartRequest, &str)> = vec![
        (start(server.spec("")), "prompt must not be empty"),
        (
            start(server.spec(&"x".repeat(1024 * 1024 + 1))),
            "at most 1048576 bytes",
        ),
        (
            start(pb::JobSpec {
                cwd: "relative/dir".into(),
                ..server.spec("hi")
            }),
            "must be the absolute path",
        ),
        (
            start(pb::JobSpec {
                cwd: "/no/such/dir".into(),
                ..server.spec("hi")
            }),
            "not an existing directory",
        ),
        (
            start(pb::JobSpec {
                sandbox: 99,
                ..server.spec("hi")
            }),
            "unknown sandbox 99",
        ),
        (
            start(pb::JobSpec {
                labels: [("bad key!".to_string(), "v".to_string())].into(),
                ..server.spec("hi")
            }),
            "label key",
        ),
        (
            pb::StartRequest {
                spec: None,
                ..Default::default()
            },
            "spec is required",
        ),
        (
            start(pb::JobSpec {
                resume_thread_id: "--dangerously-bypass-approvals-and-sandbox".into(),
                ..server.spec("hi")
            }),
            "resume_thread_id must be a Codex thread id (a UUID)",
        ),
        (
            start(pb::JobSpec {
                model: "--full-auto".into(),
                ..server.spec("hi")
            }),
            "not starting with '-'",
        ),
        (
            start(pb::JobSpec {
                timeout: Some(prost_types::Duration {
                    seconds: i64::MAX,
                    nanos: 0,
                }),
                ..server.spec("hi")
            }),
            "timeout must be between 1 and 604800 seconds",
        ),
        (start(server.spec("nul\0byte")), "NUL"),
        // A huge value is refused in a message that quotes only its start.
        (
            start(pb::JobSpec {
                labels: [("k".repeat(100_000), "v".into())].into(),
                ..server.spec("hi")
            }),
            "... (100000 bytes) must be 1-64 characters",
        ),
        (
            start(pb::JobSpec {
                cwd: format!("/{}", "d".repeat(100_000)),
                ..server.spec("hi")
            }),
            "cwd must be the absolute path (at most 4096 bytes)",
        ),
    ];
    for (request, expected) in cases {
        let err = client.start(request).await.unwrap_err();
        let text = err.to_string();
        assert_eq!(support::code(err), Code::InvalidArgument, "{text}");
        assert!(text.contains(expected), "{text:?} should say {expected:?}");
    }

    for bad_id in [
        "",
        "../../etc/passwd",
        "not-a-uuid",
        "0192f0c4-6a35-4b21-9c1e-3f0a5d2e8b47",
    ] {
        let err = client.poll(tail(bad_id, 1)).await.unwrap_err();
        assert!(
            err.to_string().contains("job id must be a UUID v7"),
            "{err}"
        );
        assert_eq!(code(err), Code::InvalidArgument);
        let err = client.cancel(bad_id).await.unwrap_err();
        assert_eq!(code(err), Code::InvalidArgument);
    }
    let unknown = uuid::Uuid::now_v7().to_string();
    let err = client.poll(tail(&unknown, 1)).await.unwrap_err();
    assert!(err.to_string().contains(&unknown));
    assert_eq!(code(err), Code::NotFound);
    assert_eq!(
        code(client.cancel(&unknown).await.unwrap_err()),
        Code::NotFound
    );

    let err = client.poll(tail(&survivor.id, 20_000)).await.unwrap_err();
    assert!(
        err.to_string().contains("between 0 and 10000, got 20000"),
        "{err}"
    );
    let err = client.poll(since(&survivor.id, 1 << 40)).await.unwrap_err();
    assert!(err.to_string().contains("past the end"), "{err}");
    assert_eq!(code(err), Code::InvalidArgument);
    let mut bad_stream = tail(&survivor.id, 1);
    bad_stream.stream = 7;
    assert_eq!(
        code(client.poll(bad_stream).await.unwrap_err()),
        Code::InvalidArgument
    );
    let mut long_wait = tail(&survivor.id, 1);
    long_wait.wait = Some(prost_types::Duration {
        seconds: 3600,
        nanos: 0,
    });
    assert_eq!(
        code(client.poll(long_wait).await.unwrap_err()),
        Code::InvalidArgument
    );
    let err = client
        .list(pb::ListRequest {
            page_size: 5000,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("page_size must be between 1 and 1000")
    );
    let err = client
        .list(pb::ListRequest {
            states: vec![42],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(code(err), Code::InvalidArgument);
    let err = client
        .list(pb::ListRequest {
            page_token: "garbage".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(code(err), Code::InvalidArgument);

    // Nothing of that touched the job that was running meanwhile.
    let (job, transcript) = server.wait_finished(&survivor.id).await;
    assert_eq!(job.state(), pb::JobState::Succeeded);
    assert!(transcript.contains("still here"));
    let jobs = client.list(pb::ListRequest::default()).await.unwrap().jobs;
    assert_eq!(jobs.len(), 1, "no refused request created a job");
}

#[tokio::test]
async fn host_policy_is_the_servers_to_enforce() {
    let allowed = tempfile::tempdir().unwrap();
    let server = TestServer::with(
        ServerOptions::default()
            .args(["--max-sandbox", "workspace-write", "--allow-cwd"])
            .arg(allowed.path().display().to_string()),
    )
    .await;
    let mut client = server.client().await;
    let start = |spec: pb::JobSpec| pb::StartRequest {
        spec: Some(spec),
        ..Default::default()
    };
    let inside = allowed.path().display().to_string();

    let err = client
        .start(start(pb::JobSpec {
            cwd: inside.clone(),
            sandbox: pb::Sandbox::DangerFullAccess.into(),
            ..server.spec("hi")
        }))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("above the highest level this host allows (workspace-write)"),
        "{err}"
    );
    assert_eq!(code(err), Code::PermissionDenied);

    let err = client.start(start(server.spec("hi"))).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("outside the directories this host allows"),
        "{err}"
    );
    assert_eq!(code(err), Code::PermissionDenied);

    let ok = client
        .start(start(pb::JobSpec {
            cwd: inside,
            sandbox: pb::Sandbox::WorkspaceWrite.into(),
            ..server.spec("say fine")
        }))
        .await
        .unwrap();
    let (job, _) = server.wait_finished(&ok.job.unwrap().id).await;
    assert_eq!(job.state(), pb::JobState::Succeeded);
    let argv = std::fs::read_to_string(server.argv_log()).unwrap();
    assert!(argv.contains("-s workspace-write"), "{argv}");
}

#[tokio::test]
async fn a_full_queue_refuses_new_jobs() {
    let server = TestServer::with(ServerOptions::default().args([
        "--max-running",
        "1",
        "--max-queued",
        "1",
    ]))
    .await;
    let mut client = server.client().await;
    let running = server.start_job("sleep 30").await;
    server
        .wait_for_state(&running.id, pb::JobState::Running)
        .await;
    let queued = client
        .start(pb::StartRequest {
            spec: Some(server.spec("say waiting")),
            request_id: "queued-once".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .job
        .unwrap();
    assert_eq!(queued.state(), pb::JobState::Queued);
    let err = client
        .start(pb::StartRequest {
            spec: Some(server.spec("say one too many")),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("the queue is full"), "{err}");
    assert_eq!(code(err), Code::ResourceExhausted);
    // A retry of a Start that got through gets its job back, full queue or not.
    let retried = client
        .start(pb::StartRequest {
            spec: Some(server.spec("say waiting")),
            request_id: queued.request_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!retried.created);
    assert_eq!(retried.job.unwrap().id, queued.id);
    client.cancel(&running.id).await.unwrap();
    let (job, _) = server.wait_finished(&queued.id).await;
    assert_eq!(job.state(), pb::JobState::Succeeded);
}

#[tokio::test]
async fn a_long_poll_on_a_tail_wakes_on_output_and_one_without_a_window_on_the_end() {
    let server = TestServer::start().await;
    let job = server.start_job("sleep 1\nsay fresh line\nsleep 1").await;
    server.wait_for_state(&job.id, pb::JobState::Running).await;
    let mut client = server.client().await;
    let wait = Some(prost_types::Duration {
        seconds: 30,
        nanos: 0,
    });

    let mut request = tail(&job.id, 5);
    request.wait = wait;
    let woken = client.poll(request).await.unwrap();
    assert!(
        String::from_utf8_lossy(&woken.output).contains("fresh line"),
        "{woken:?}"
    );
    assert_eq!(woken.job.unwrap().state(), pb::JobState::Running);

    // No window: only a change of state ends the wait, and output does not.
    let request = pb::PollRequest {
        job_id: job.id.clone(),
        wait,
        ..Default::default()
    };
    let ended = client.poll(request).await.unwrap();
    assert!(ended.output.is_empty());
    assert_eq!(ended.job.unwrap().state(), pb::JobState::Succeeded);
}

#[tokio::test]
async fn oversized_requests_are_refused_in_the_servers_words_on_every_transport() {
    let server = TestServer::start().await;
    let socket = format!("unix:{}", server.socket().display());
    for endpoint in [server.endpoint(), socket] {
        let mut client = support::Client::connect(&endpoint, None).await.unwrap();
        for (size, expected) in [
            // Over the prompt's limit: the field's own check.
            (
                1_500_000,
                "prompt must be at most 1048576 bytes, got 1500000",
            ),
            // Over the request's: refused before it is decoded.
            (5_000_000, "a prompt must be at most 1048576 bytes (1 MiB)"),
        ] {
            let err = client
                .start(pb::StartRequest {
                    spec: Some(server.spec(&"x".repeat(size))),
                    ..Default::default()
                })
                .await
                .unwrap_err();
            let text = err.to_string();
            assert_eq!(support::code(err), Code::InvalidArgument, "{text}");
            assert!(text.contains(expected), "{endpoint}: {text}");
        }
        // The connection is fine afterwards.
        assert!(client.list(pb::ListRequest::default()).await.is_ok());
    }
}

#[tokio::test]
async fn a_reasoning_effort_reaches_codex_and_stays_with_the_job() {
    let mut server = TestServer::start().await;
    let job = server
        .start_spec(pb::JobSpec {
            reasoning_effort: pb::ReasoningEffort::High.into(),
            ..server.spec("say thought hard")
        })
        .await;
    assert_eq!(
        job.spec.unwrap().reasoning_effort(),
        pb::ReasoningEffort::High
    );
    let (finished, _) = server.wait_finished(&job.id).await;
    assert_eq!(finished.final_message, "thought hard");
    let argv = std::fs::read_to_string(server.argv_log()).unwrap();
    assert!(argv.contains(" -c model_reasoning_effort=high "), "{argv}");

    // Stored with the job: a restarted server still has it.
    server.kill9();
    server.launch().await;
    let stored = server
        .client()
        .await
        .poll(pb::PollRequest {
            job_id: job.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .job
        .unwrap();
    assert_eq!(
        stored.spec.unwrap().reasoning_effort(),
        pb::ReasoningEffort::High
    );

    let err = server
        .client()
        .await
        .start(pb::StartRequest {
            spec: Some(pb::JobSpec {
                reasoning_effort: 42,
                ..server.spec("say hi")
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let message = support::message(&err);
    assert_eq!(support::code(err), tonic::Code::InvalidArgument);
    assert!(message.contains("LOW, MEDIUM, HIGH"), "{message}");
}
