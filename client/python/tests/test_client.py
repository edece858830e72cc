"""The blocking client against a real server."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest
from conftest import CuttableProxy, eventually, within

from codex_jobs import CaughtUp, Client, JobsError, JobState, Output, StateChange, WatchedJob

UNKNOWN_ID = "0192f0c4-6a35-7b21-9c1e-3f0a5d2e8b47"


def test_a_job_is_started_followed_to_its_end_and_polled(jobs: Client, cwd: str, label: dict) -> None:
    job = jobs.start("say hello from python\nsleep 0.2\nsay goodbye", cwd=cwd, labels=label)
    assert job.state in (JobState.QUEUED, JobState.RUNNING)
    assert job.prompt.startswith("say hello") and job.cwd == cwd and job.labels == label
    assert job.created_by.startswith("token ") and job.created_at is not None

    events = list(jobs.follow(job.id))
    text = "".join(event.text for event in events if isinstance(event, Output))
    assert text.startswith("hello from python\ngoodbye\n"), text
    last = events[-1]
    assert isinstance(last, StateChange) and last.job.state == JobState.SUCCEEDED
    assert last.job.final_message == "goodbye" and last.job.exit_code == 0 and last.job.done

    whole = jobs.poll(job.id, since_offset=0)
    assert whole.text == text and whole.next_offset == len(text.encode()) == whole.size
    tail = jobs.poll(job.id, tail_lines=1)
    assert tail.next_offset == whole.size and tail.start_offset > 0
    assert text.encode()[tail.start_offset :] == tail.output
    events_log = jobs.poll(job.id, since_offset=0, stream="events")
    assert b'"type":"thread.started"' in events_log.output


def test_follow_resumes_at_the_exact_byte_after_the_connection_is_cut(
    proxy: CuttableProxy, token: str, jobs: Client, cwd: str
) -> None:
    prompt = "say one\nsleep 1\nsay two é\nsleep 1\nsay three"
    job = jobs.start(prompt, cwd=cwd)
    received = b""
    states = []
    with Client(proxy.endpoint, token=token) as through_proxy:
        for event in through_proxy.follow(job.id):
            if isinstance(event, Output):
                assert event.offset == len(received), "chunks follow each other"
                if not received:
                    proxy.cut()
                received += event.data
            else:
                states.append(event.job.state)
    assert proxy.connections >= 2, "the stream was resumed on a new connection"
    assert received == jobs.poll(job.id, since_offset=0).output
    assert received.decode().startswith("one\ntwo é\nthree\n")
    # The server resends the job on every resume; a state is reported once.
    assert states[-1] == JobState.SUCCEEDED and len(states) == len(set(states))


def test_follow_from_an_offset_gets_only_what_follows(jobs: Client, cwd: str) -> None:
    job = jobs.start("say first\nsay second", cwd=cwd)
    assert jobs.wait(job.id).state == JobState.SUCCEEDED
    rest = b"".join(e.data for e in jobs.follow(job.id, from_offset=len("first\n")) if isinstance(e, Output))
    assert rest.startswith(b"second\n")


def test_wait_returns_at_its_deadline_then_when_the_job_ends(jobs: Client, cwd: str) -> None:
    job = jobs.start("sleep 3\nsay done", cwd=cwd)
    early = jobs.wait(job.id, timeout=0.5)
    assert not early.done and early.state in (JobState.QUEUED, JobState.RUNNING)
    finished = jobs.wait(job.id)
    assert finished.state == JobState.SUCCEEDED and finished.final_message == "done"
    assert finished.finished_at is not None and finished.started_at is not None


def test_a_cancelled_job_is_cancelled(jobs: Client, cwd: str) -> None:
    job = jobs.start("sleep 60", cwd=cwd)
    eventually("the job runs", lambda: jobs.poll(job.id).job.state == JobState.RUNNING)
    cancelled = jobs.cancel(job.id)
    assert cancelled.state == JobState.CANCELLED and cancelled.error


def test_list_pages_through_every_job_newest_first(jobs: Client, cwd: str, label: dict) -> None:
    started = [jobs.start(f"say {n}", cwd=cwd, labels=label).id for n in range(5)]
    listed = [job.id for job in jobs.list(labels=label, page_size=2)]
    assert listed == list(reversed(started))
    for job_id in started:
        jobs.wait(job_id)
    succeeded = [job.id for job in jobs.list(states=["succeeded"], labels=label, page_size=2)]
    assert sorted(succeeded) == sorted(started)
    assert list(jobs.list(states=[JobState.RUNNING], labels=label)) == []


def test_a_start_retried_with_its_request_id_returns_the_same_job(jobs: Client, cwd: str) -> None:
    first = jobs.start("say once", cwd=cwd, request_id="python-retry-1")
    again = jobs.start("say once", cwd=cwd, request_id="python-retry-1")
    assert again.id == first.id and again.request_id == "python-retry-1"


def test_a_server_with_a_token_refuses_a_client_without_it(endpoint: str, cwd: str) -> None:
    with Client(endpoint) as anonymous:
        with pytest.raises(JobsError) as refused:
            anonymous.start("say hi", cwd=cwd)
    assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED
    with Client(endpoint, token="not-the-token") as wrong:
        with pytest.raises(JobsError) as refused:
            list(wrong.list())
    assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED


def test_unknown_and_malformed_job_ids_are_clear_errors(jobs: Client) -> None:
    with pytest.raises(JobsError) as unknown:
        jobs.poll(UNKNOWN_ID)
    assert unknown.value.code == grpc.StatusCode.NOT_FOUND
    assert UNKNOWN_ID in unknown.value.message
    with pytest.raises(JobsError) as malformed:
        list(jobs.follow("not-a-job"))
    assert malformed.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "not-a-job" in str(malformed.value)


def test_the_server_explains_what_it_refuses(jobs: Client) -> None:
    with pytest.raises(JobsError) as refused:
        jobs.start("say hi", cwd="relative/dir")
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "cwd" in refused.value.message


def test_arguments_that_cannot_be_sent_are_refused_before_sending(jobs: Client, cwd: str) -> None:
    with pytest.raises(ValueError, match="read-only, workspace-write"):
        jobs.start("say hi", cwd=cwd, sandbox="anything-goes")
    with pytest.raises(ValueError, match="not both"):
        jobs.poll(UNKNOWN_ID, tail_lines=5, since_offset=0)
    with pytest.raises(ValueError, match="more than zero"):
        jobs.start("say hi", cwd=cwd, timeout=0)
    with pytest.raises(ValueError, match="queued, running"):
        list(jobs.list(states=["finished"]))
    with pytest.raises(ValueError, match="http://HOST:PORT"):
        Client("localhost:50051")
    with pytest.raises(ValueError, match="https://"):
        Client("http://localhost:50051", ca_cert="ca.pem")
    with pytest.raises(ValueError, match="both or neither"):
        Client("https://localhost:50051", client_cert="cert.pem")


def test_the_unix_socket_endpoint_works(socket_endpoint: str, token: str, cwd: str) -> None:
    with Client(socket_endpoint, token=token) as local:
        job = local.start("say over the socket", cwd=cwd, sandbox="workspace-write", timeout=60)
        assert job.sandbox == "workspace-write" and job.timeout is not None
        assert local.wait(job.id).final_message == "over the socket"


def test_the_environment_names_the_server_and_the_token(
    monkeypatch: pytest.MonkeyPatch, endpoint: str, token: str
) -> None:
    monkeypatch.setenv("CODEX_JOBS_ENDPOINT", endpoint)
    monkeypatch.setenv("CODEX_JOBS_TOKEN", token)
    with Client() as configured:
        list(configured.list(states=["failed"]))


def test_watch_starts_with_the_jobs_as_they_are_then_yields_each_change(
    jobs: Client, cwd: str, label: dict
) -> None:
    done = jobs.start("say done", cwd=cwd, labels=label)
    jobs.wait(done.id)
    other = jobs.start("say unlabelled", cwd=cwd)
    seen: list = []
    with within(30):
        for event in jobs.watch(labels=label):
            seen.append(event)
            if isinstance(event, CaughtUp):
                late = jobs.start("sleep 0.2\nsay late", cwd=cwd, labels=label)
            elif event.job.id != done.id and event.job.state == JobState.SUCCEEDED:
                break
    first = seen[0]
    assert isinstance(first, WatchedJob) and first.job.id == done.id and first.job.done
    assert isinstance(seen[1], CaughtUp)
    changes = [event for event in seen[2:] if isinstance(event, WatchedJob)]
    assert {event.job.id for event in changes} == {late.id}, "only jobs with the label"
    assert other.id not in {event.job.id for event in changes}
    assert changes[-1].job.final_message == "late"
    positions = [event.position for event in seen]
    assert positions == sorted(positions)


def test_watch_resumes_after_the_connection_is_cut_without_losing_a_change(
    proxy: CuttableProxy, token: str, jobs: Client, cwd: str, label: dict
) -> None:
    caught_up = 0
    with within(60), Client(proxy.endpoint, token=token) as through_proxy:
        for event in through_proxy.watch(labels=label):
            if isinstance(event, CaughtUp):
                caught_up += 1
                proxy.cut()
                # A change while the watcher is cut off.
                missed = jobs.start("say missed", cwd=cwd, labels=label)
                jobs.wait(missed.id)
            elif event.job.id == missed.id and event.job.done:
                break
    assert proxy.connections >= 2, "the watch was resumed on a new connection"
    assert caught_up == 1


def test_wait_any_returns_the_first_job_to_end(jobs: Client, cwd: str) -> None:
    slow = jobs.start("sleep 30", cwd=cwd)
    quick = jobs.start("sleep 0.3\nsay quick", cwd=cwd)
    ended = jobs.wait_any([slow.id, quick.id], timeout=20)
    assert ended is not None and ended.id == quick.id and ended.final_message == "quick"
    assert jobs.wait_any([slow.id], timeout=0.3) is None
    with pytest.raises(ValueError, match="at least one"):
        jobs.wait_any([])
    with pytest.raises(JobsError) as unknown:
        jobs.wait_any([UNKNOWN_ID])
    assert unknown.value.code == grpc.StatusCode.NOT_FOUND
    jobs.cancel(slow.id)


def test_a_reasoning_effort_stays_with_the_job(jobs: Client, cwd: str) -> None:
    job = jobs.start("say thought", cwd=cwd, reasoning_effort="high")
    assert job.reasoning_effort == "high"
    assert jobs.start("say quick", cwd=cwd).reasoning_effort is None
    with pytest.raises(ValueError, match="low, medium, high"):
        jobs.start("say hi", cwd=cwd, reasoning_effort="max")


def test_jobs_that_ended_are_deleted_one_by_one_or_by_age(jobs: Client, cwd: str, label: dict) -> None:
    ended = jobs.wait(jobs.start("say delete me", cwd=cwd, labels=label).id)
    assert ended.disk_bytes > 0
    running = jobs.start("sleep 60", cwd=cwd, labels=label)
    eventually("the job runs", lambda: jobs.poll(running.id).job.state == JobState.RUNNING)
    with pytest.raises(JobsError) as refused:
        jobs.delete(running.id)
    assert refused.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "cancel it first" in refused.value.message
    assert jobs.delete(ended.id).id == ended.id
    with pytest.raises(JobsError) as gone:
        jobs.poll(ended.id)
    assert gone.value.code == grpc.StatusCode.NOT_FOUND

    jobs.cancel(running.id)
    pruned = jobs.prune(timedelta(0), states=["cancelled"])
    assert pruned.deleted >= 1 and pruned.freed_bytes > 0
    assert list(jobs.list(labels=label)) == []
    with pytest.raises(ValueError):
        jobs.prune(timedelta(seconds=-1))


def test_attempts_in_worktrees_are_diffed_and_one_is_applied(jobs: Client, repository: str) -> None:
    attempts = jobs.start_attempts("run echo $$ >> notes.txt\nsay noted", 2, cwd=repository)
    assert len(attempts) == 2
    group = attempts[0].group
    assert group is not None and all(job.group == group for job in attempts)
    assert attempts[0].worktree_base is not None and len(attempts[0].worktree_base) == 40
    ended = [jobs.wait(job.id, timeout=30) for job in attempts]
    for job in ended:
        assert job.state == JobState.SUCCEEDED
        assert job.change is not None and job.change.stat == "1 file, +1 -0"
        assert job.change.files[0].path == "notes.txt"
    assert sorted(job.id for job in jobs.list(group=group)) == sorted(job.id for job in attempts)

    patch = jobs.diff(attempts[0].id)
    assert b"+++ b/notes.txt" in patch and len(patch) == ended[0].change.patch_size  # type: ignore[union-attr]
    applied = jobs.apply(attempts[0].id)
    assert applied.files == ["notes.txt"]
    with open(f"{repository}/notes.txt") as notes:
        taken = notes.read()
    assert taken.startswith("base\n") and taken.count("\n") == 2
    # The other attempt appended another line at the same place: a conflict.
    with pytest.raises(JobsError) as refused:
        jobs.apply(attempts[1].id)
    assert refused.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "notes.txt" in refused.value.message
    with open(f"{repository}/notes.txt") as notes:
        assert notes.read() == taken


def test_a_worktree_needs_a_repository_and_base_needs_a_worktree(jobs: Client, cwd: str) -> None:
    with pytest.raises(JobsError) as refused:
        jobs.start("say hi", cwd=cwd, worktree=True)
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "not in a git repository" in refused.value.message
    with pytest.raises(ValueError, match="worktree=True"):
        jobs.start("say hi", cwd=cwd, base="main")
    with pytest.raises(ValueError, match="between 1 and 16"):
        jobs.start_attempts("say hi", 17, cwd=cwd)
