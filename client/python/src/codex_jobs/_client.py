"""The blocking client."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Iterator, Mapping, Optional, Sequence, Union

import grpc

from . import _model
from ._connect import resolve
from ._follow import Follower, Watcher
from ._model import Applied, FollowEvent, Job, JobsError, JobState, PollResult, Pruned, WatchEvent
from ._proto import jobs_pb2 as pb
from ._proto.jobs_pb2_grpc import CodexJobsStub

# The server holds one long-poll for five minutes at most; a call may take that long
# and a little more.
LONG_POLL = 300.0
SLACK = 30.0


class Client:
    """A connection to a codex-jobs server.

    `endpoint` is `http://HOST:PORT`, `https://HOST:PORT` or `unix:PATH`; each
    argument left out is read from its environment variable (`CODEX_JOBS_ENDPOINT`,
    `CODEX_JOBS_TOKEN`, `CODEX_JOBS_CA_CERT`, `CODEX_JOBS_CLIENT_CERT`,
    `CODEX_JOBS_CLIENT_KEY`), and with no endpoint at all the client reaches the local
    server's socket. `ca_cert`, `client_cert` and `client_key` are PEM files.

    Calls the server refuses raise `JobsError`; arguments that cannot be sent raise
    `ValueError`.
    """

    def __init__(
        self,
        endpoint: Optional[str] = None,
        *,
        token: Optional[str] = None,
        ca_cert: Optional[str] = None,
        client_cert: Optional[str] = None,
        client_key: Optional[str] = None,
    ) -> None:
        target = resolve(endpoint, token, ca_cert, client_cert, client_key)
        if target.credentials is None:
            self._channel = grpc.insecure_channel(target.address, options=target.options)
        else:
            self._channel = grpc.secure_channel(target.address, target.credentials, options=target.options)
        self._metadata = target.metadata
        self._stub = CodexJobsStub(self._channel)  # type: ignore[no-untyped-call]

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _call(self, method, request, timeout: Optional[float] = None):  # type: ignore[no-untyped-def]
        try:
            return method(request, metadata=self._metadata, timeout=timeout)
        except grpc.RpcError as err:
            raise JobsError.from_rpc(err) from None

    def start(
        self,
        prompt: str,
        *,
        cwd: str,
        model: Optional[str] = None,
        sandbox: Optional[str] = None,
        timeout: Union[float, timedelta, None] = None,
        labels: Optional[Mapping[str, str]] = None,
        request_id: Optional[str] = None,
        resume_thread_id: Optional[str] = None,
        reasoning_effort: Optional[str] = None,
        pool: Optional[str] = None,
        host: Optional[str] = None,
        worktree: bool = False,
        base: Optional[str] = None,
    ) -> Job:
        """Starts a job running Codex on `prompt` in the directory `cwd` (absolute, on
        the server's host) and returns it at once, usually queued or running.
        `sandbox` is read-only (the default), workspace-write, danger-full-access or
        bypass; `reasoning_effort` is low, medium or high (default: Codex's own);
        `timeout` (seconds) overrides the server's default limit. `pool` (default:
        default) and `host` say which job hosts may run it, where several share the
        server's database. With `worktree`, the job runs in a git worktree of its
        own, at `base` (default: HEAD), and `diff` and `apply` take its change. A
        retry with the same `request_id` returns the job the first call started."""
        request = _model.start_request(
            prompt,
            cwd=cwd,
            model=model,
            sandbox=sandbox,
            timeout=timeout,
            labels=labels,
            request_id=request_id,
            resume_thread_id=resume_thread_id,
            reasoning_effort=reasoning_effort,
            pool=pool,
            host=host,
            worktree=worktree,
            base=base,
        )
        return _model.job_from_pb(self._call(self._stub.Start, request).job)

    def poll(
        self,
        job_id: str,
        *,
        tail_lines: Optional[int] = None,
        since_offset: Optional[int] = None,
        stream: str = "transcript",
        max_bytes: Optional[int] = None,
    ) -> PollResult:
        """The job and a window of its output: the last `tail_lines` lines, or
        everything from byte `since_offset` on (up to `max_bytes`, 256 KiB by
        default), or none. `stream` is transcript, events (Codex's JSON Lines) or
        stderr."""
        request = _model.poll_request(
            job_id, tail_lines=tail_lines, since_offset=since_offset, stream=stream, max_bytes=max_bytes
        )
        return _model.poll_from_pb(self._call(self._stub.Poll, request))

    def wait(self, job_id: str, timeout: Optional[float] = None) -> Job:
        """Blocks until the job ends, or `timeout` seconds pass, and returns it as it
        is then: `job.done` tells which."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            wait = LONG_POLL if left is None else min(left, LONG_POLL)
            # No window: the call returns when the job ends or the wait is over.
            request = _model.poll_request(job_id, tail_lines=None, since_offset=None, stream="transcript", max_bytes=None, wait=wait)
            job = _model.job_from_pb(self._call(self._stub.Poll, request, timeout=wait + SLACK).job)
            if job.done or left == 0.0:
                return job

    def cancel(self, job_id: str) -> Job:
        """Cancels the job and returns it once nothing of it runs any more."""
        return _model.job_from_pb(self._call(self._stub.Cancel, pb.CancelRequest(job_id=job_id)).job)

    def delete(self, job_id: str) -> Job:
        """Deletes a job that has ended, with its logs, and returns it as it was.
        A job that has not ended is refused (FAILED_PRECONDITION): cancel it first."""
        return _model.job_from_pb(self._call(self._stub.Delete, pb.DeleteRequest(job_id=job_id)).job)

    def start_attempts(
        self,
        prompt: str,
        attempts: int,
        *,
        cwd: str,
        base: Optional[str] = None,
        model: Optional[str] = None,
        sandbox: Optional[str] = None,
        timeout: Union[float, timedelta, None] = None,
        labels: Optional[Mapping[str, str]] = None,
        request_id: Optional[str] = None,
        reasoning_effort: Optional[str] = None,
        pool: Optional[str] = None,
        host: Optional[str] = None,
    ) -> list[Job]:
        """Best of N: starts `attempts` jobs (1-16) of one prompt, each in a git
        worktree of its own from the same `base` commit, tied by their `group`.
        Returns them oldest first; a retry with the same `request_id` returns the
        same jobs."""
        request = _model.start_request(
            prompt,
            cwd=cwd,
            model=model,
            sandbox=sandbox,
            timeout=timeout,
            labels=labels,
            request_id=request_id,
            resume_thread_id=None,
            reasoning_effort=reasoning_effort,
            pool=pool,
            host=host,
            worktree=True,
            base=base,
            attempts=attempts,
        )
        response = self._call(self._stub.Start, request)
        return [_model.job_from_pb(job) for job in response.attempts]

    def diff(self, job_id: str) -> bytes:
        """The patch of what a job in a worktree changed (`git diff --binary` from
        its base to its work), read a page at a time. Refused (FAILED_PRECONDITION)
        for a job that ran in its cwd or has not ended."""
        patch = b""
        while True:
            request = pb.DiffRequest(job_id=job_id, offset=len(patch))
            response = self._call(self._stub.Diff, request)
            patch += bytes(response.patch)
            if not response.truncated or not response.patch:
                return patch

    def apply(self, job_id: str) -> Applied:
        """Applies what a job in a worktree changed to the checkout it was started
        in, by a three-way merge with the checkout's own changes. On a conflict
        nothing changes and `JobsError` (FAILED_PRECONDITION) names the files."""
        response = self._call(self._stub.Apply, pb.ApplyRequest(job_id=job_id))
        return _model.applied_from_pb(response)

    def prune(self, older_than: timedelta, *, states: Sequence[Union[JobState, str]] = ()) -> Pruned:
        """Deletes the jobs that ended longer than `older_than` ago (only those that
        ended in one of `states`, if given), and says how many and how many bytes."""
        response = self._call(self._stub.Prune, _model.prune_request(older_than, states))
        return Pruned(deleted=response.deleted, freed_bytes=response.freed_bytes)

    def list(
        self,
        *,
        states: Sequence[Union[JobState, str]] = (),
        labels: Optional[Mapping[str, str]] = None,
        page_size: int = 100,
        group: Optional[str] = None,
    ) -> Iterator[Job]:
        """The jobs in one of `states` (all if none) that carry every one of
        `labels`, newest first, fetched a page at a time as you iterate."""
        token = ""
        while True:
            request = _model.list_request(states, labels, page_size, token, group)
            response = self._call(self._stub.List, request)
            for job in response.jobs:
                yield _model.job_from_pb(job)
            token = response.next_page_token
            if not token:
                return

    def follow(self, job_id: str, *, from_offset: int = 0, stream: str = "transcript") -> Iterator[FollowEvent]:
        """The job's output as it is written (`Output`) and its state each time it
        changes (`StateChange`), ending after the job does. A dropped connection
        is resumed at the exact byte where it broke, for up to 30 s without
        progress: the caller sees no gap and no repeat."""
        follower = Follower(job_id, from_offset, stream)
        while True:
            call = self._stub.Follow(follower.request(), metadata=self._metadata)
            try:
                for message in call:
                    event = follower.accept(message)
                    if event is not None:
                        yield event
                if follower.finished:
                    return
                pause = follower.reconnect.broke(None)
            except grpc.RpcError as err:
                pause = follower.reconnect.broke(err)
            finally:
                call.cancel()
            time.sleep(pause)

    def watch(
        self,
        *,
        states: Sequence[Union[JobState, str]] = (),
        labels: Optional[Mapping[str, str]] = None,
        job_ids: Sequence[str] = (),
        since_position: int = 0,
    ) -> Iterator[WatchEvent]:
        """The jobs that match (in one of `states`, all if none; with every one of
        `labels`; among `job_ids`, any if none) as they are (`WatchedJob`), one
        `CaughtUp`, then each change of state of a job that matches the labels and
        ids, for as long as you iterate. Each event carries a position: pass the last
        one as `since_position` to a later watch to resume after it. A dropped
        connection is resumed that way by itself (for up to 30 s without progress),
        so no change is lost; a job may come again in a state already seen."""
        watcher = Watcher(states, labels, job_ids, since_position)
        while True:
            call = self._stub.Watch(watcher.request(), metadata=self._metadata)
            try:
                for message in call:
                    event = watcher.accept(message)
                    if event is not None:
                        yield event
                pause = watcher.reconnect.broke(None)
            except grpc.RpcError as err:
                pause = watcher.reconnect.broke(err)
            finally:
                call.cancel()
            time.sleep(pause)

    def wait_any(self, job_ids: Sequence[str], timeout: Optional[float] = None) -> Optional[Job]:
        """The first of `job_ids` to end (one that has ended already counts at once),
        or None if `timeout` seconds pass first. One watch, not a poll per job."""
        if not job_ids:
            raise ValueError("wait_any needs at least one job id")
        request = _model.watch_request((), None, job_ids, 0)
        call = self._stub.Watch(request, metadata=self._metadata, timeout=timeout)
        try:
            for message in call:
                if message.WhichOneof("event") == "job" and (job := _model.job_from_pb(message.job)).done:
                    return job
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                return None
            raise JobsError.from_rpc(err) from None
        finally:
            call.cancel()
        raise JobsError(grpc.StatusCode.UNAVAILABLE, "the server ended the watch before a job did")
