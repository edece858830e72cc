"""The asyncio client, on grpc.aio: the same calls as `Client`, awaited."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import AsyncIterator, Mapping, Optional, Sequence, Union

import grpc
import grpc.aio

from . import _model
from ._client import LONG_POLL, SLACK
from ._connect import resolve
from ._follow import Follower, Watcher
from ._model import Applied, FollowEvent, Job, JobsError, JobState, PollResult, Pruned, WatchEvent
from ._proto import jobs_pb2 as pb
from ._proto.jobs_pb2_grpc import CodexJobsStub


class AsyncClient:
    """`Client` for asyncio: the same arguments, the same calls as coroutines, and
    `list` and `follow` as async iterators. Use it with `async with`."""

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
            self._channel = grpc.aio.insecure_channel(target.address, options=target.options)
        else:
            self._channel = grpc.aio.secure_channel(target.address, target.credentials, options=target.options)
        self._metadata = target.metadata
        self._stub = CodexJobsStub(self._channel)  # type: ignore[no-untyped-call]

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def _call(self, method, request, timeout: Optional[float] = None):  # type: ignore[no-untyped-def]
        try:
            return await method(request, metadata=self._metadata, timeout=timeout)
        except grpc.RpcError as err:
            raise JobsError.from_rpc(err) from None

    async def start(
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
        """See `Client.start`."""
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
        return _model.job_from_pb((await self._call(self._stub.Start, request)).job)

    async def poll(
        self,
        job_id: str,
        *,
        tail_lines: Optional[int] = None,
        since_offset: Optional[int] = None,
        stream: str = "transcript",
        max_bytes: Optional[int] = None,
    ) -> PollResult:
        """See `Client.poll`."""
        request = _model.poll_request(
            job_id, tail_lines=tail_lines, since_offset=since_offset, stream=stream, max_bytes=max_bytes
        )
        return _model.poll_from_pb(await self._call(self._stub.Poll, request))

    async def wait(self, job_id: str, timeout: Optional[float] = None) -> Job:
        """See `Client.wait`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            wait = LONG_POLL if left is None else min(left, LONG_POLL)
            request = _model.poll_request(job_id, tail_lines=None, since_offset=None, stream="transcript", max_bytes=None, wait=wait)
            job = _model.job_from_pb((await self._call(self._stub.Poll, request, timeout=wait + SLACK)).job)
            if job.done or left == 0.0:
                return job

    async def cancel(self, job_id: str) -> Job:
        """See `Client.cancel`."""
        return _model.job_from_pb((await self._call(self._stub.Cancel, pb.CancelRequest(job_id=job_id))).job)

    async def delete(self, job_id: str) -> Job:
        """See `Client.delete`."""
        return _model.job_from_pb((await self._call(self._stub.Delete, pb.DeleteRequest(job_id=job_id))).job)

    async def start_attempts(
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
        response = await self._call(self._stub.Start, request)
        return [_model.job_from_pb(job) for job in response.attempts]

    async def diff(self, job_id: str) -> bytes:
        """The patch of what a job in a worktree changed (`git diff --binary` from
        its base to its work), read a page at a time. Refused (FAILED_PRECONDITION)
        for a job that ran in its cwd or has not ended."""
        patch = b""
        while True:
            request = pb.DiffRequest(job_id=job_id, offset=len(patch))
            response = await self._call(self._stub.Diff, request)
            patch += bytes(response.patch)
            if not response.truncated or not response.patch:
                return patch

    async def apply(self, job_id: str) -> Applied:
        """Applies what a job in a worktree changed to the checkout it was started
        in, by a three-way merge with the checkout's own changes. On a conflict
        nothing changes and `JobsError` (FAILED_PRECONDITION) names the files."""
        response = await self._call(self._stub.Apply, pb.ApplyRequest(job_id=job_id))
        return _model.applied_from_pb(response)

    async def prune(self, older_than: timedelta, *, states: Sequence[Union[JobState, str]] = ()) -> Pruned:
        """See `Client.prune`."""
        response = await self._call(self._stub.Prune, _model.prune_request(older_than, states))
        return Pruned(deleted=response.deleted, freed_bytes=response.freed_bytes)

    async def list(
        self,
        *,
        states: Sequence[Union[JobState, str]] = (),
        labels: Optional[Mapping[str, str]] = None,
        page_size: int = 100,
        group: Optional[str] = None,
    ) -> AsyncIterator[Job]:
        """See `Client.list`."""
        token = ""
        while True:
            request = _model.list_request(states, labels, page_size, token, group)
            response = await self._call(self._stub.List, request)
            for job in response.jobs:
                yield _model.job_from_pb(job)
            token = response.next_page_token
            if not token:
                return

    async def follow(
        self, job_id: str, *, from_offset: int = 0, stream: str = "transcript"
    ) -> AsyncIterator[FollowEvent]:
        """See `Client.follow`."""
        follower = Follower(job_id, from_offset, stream)
        while True:
            call = self._stub.Follow(follower.request(), metadata=self._metadata)
            try:
                async for message in call:
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
            await asyncio.sleep(pause)

    async def watch(
        self,
        *,
        states: Sequence[Union[JobState, str]] = (),
        labels: Optional[Mapping[str, str]] = None,
        job_ids: Sequence[str] = (),
        since_position: int = 0,
    ) -> AsyncIterator[WatchEvent]:
        """See `Client.watch`."""
        watcher = Watcher(states, labels, job_ids, since_position)
        while True:
            call = self._stub.Watch(watcher.request(), metadata=self._metadata)
            try:
                async for message in call:
                    event = watcher.accept(message)
                    if event is not None:
                        yield event
                pause = watcher.reconnect.broke(None)
            except grpc.RpcError as err:
                pause = watcher.reconnect.broke(err)
            finally:
                call.cancel()
            await asyncio.sleep(pause)

    async def wait_any(self, job_ids: Sequence[str], timeout: Optional[float] = None) -> Optional[Job]:
        """See `Client.wait_any`."""
        if not job_ids:
            raise ValueError("wait_any needs at least one job id")
        request = _model.watch_request((), None, job_ids, 0)
        call = self._stub.Watch(request, metadata=self._metadata, timeout=timeout)
        try:
            async for message in call:
                if message.WhichOneof("event") == "job" and (job := _model.job_from_pb(message.job)).done:
                    return job
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                return None
            raise JobsError.from_rpc(err) from None
        finally:
            call.cancel()
        raise JobsError(grpc.StatusCode.UNAVAILABLE, "the server ended the watch before a job did")
