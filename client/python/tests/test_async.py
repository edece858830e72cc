"""The asyncio client against a real server: the same calls, awaited."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from conftest import CuttableProxy

from codex_jobs import AsyncClient, CaughtUp, JobsError, JobState, Output, StateChange, WatchedJob


def test_the_async_client_starts_follows_across_a_cut_waits_lists_and_cancels(
    endpoint: str, proxy: CuttableProxy, token: str, cwd: str, label: dict
) -> None:
    async def scenario() -> None:
        async with AsyncClient(endpoint, token=token) as jobs, AsyncClient(proxy.endpoint, token=token) as cut:
            job = await jobs.start("say one\nsleep 1\nsay two", cwd=cwd, labels=label)
            received = b""
            last = None
            async for event in cut.follow(job.id):
                if isinstance(event, Output):
                    assert event.offset == len(received)
                    if not received:
                        proxy.cut()
                    received += event.data
                else:
                    assert isinstance(event, StateChange)
                    last = event.job
            assert proxy.connections >= 2
            assert received == (await jobs.poll(job.id, since_offset=0)).output
            assert last is not None and last.state == JobState.SUCCEEDED

            sleeper = await jobs.start("sleep 60", cwd=cwd, labels=label)
            assert not (await jobs.wait(sleeper.id, timeout=0.3)).done
            listed = [listed.id async for listed in jobs.list(labels=label, page_size=1)]
            assert listed == [sleeper.id, job.id]
            ended = await jobs.wait_any([sleeper.id, job.id], timeout=10)
            assert ended is not None and ended.id == job.id
            watched = []
            async for event in jobs.watch(labels=label):
                if isinstance(event, CaughtUp):
                    break
                assert isinstance(event, WatchedJob)
                watched.append(event.job.id)
            assert watched == [job.id, sleeper.id], "oldest change first"
            assert (await jobs.cancel(sleeper.id)).state == JobState.CANCELLED
            assert (await jobs.wait(sleeper.id)).state == JobState.CANCELLED

            with pytest.raises(JobsError) as unknown:
                await jobs.cancel("0192f0c4-6a35-7b21-9c1e-3f0a5d2e8b47")
            assert unknown.value.code == grpc.StatusCode.NOT_FOUND

    asyncio.run(scenario())


def test_the_async_client_diffs_and_applies_a_worktree_job(endpoint: str, token: str, repository: str) -> None:
    async def scenario() -> None:
        async with AsyncClient(endpoint, token=token) as jobs:
            (job,) = await jobs.start_attempts("run echo async >> notes.txt", 1, cwd=repository)
            job = await jobs.wait(job.id, timeout=30)
            assert job.change is not None and job.change.stat == "1 file, +1 -0"
            assert b"+async\n" in await jobs.diff(job.id)
            applied = await jobs.apply(job.id)
            assert applied.files == ["notes.txt"] and applied.job.id == job.id

    asyncio.run(scenario())
    with open(f"{repository}/notes.txt") as notes:
        assert notes.read() == "base\nasync\n"
