"""What the client hands out: jobs, output windows and follow events as plain,
typed Python values, and the conversions from and to the generated messages."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterable, Mapping, Optional, Union

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from ._proto import jobs_pb2 as pb


class JobState(str, enum.Enum):
    """Where a job is in its life. The last three never change again."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def done(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


SANDBOXES = ("read-only", "workspace-write", "danger-full-access", "bypass")
REASONING_EFFORTS = ("low", "medium", "high")
STREAMS = ("transcript", "events", "stderr")


class JobsError(Exception):
    """A call the server refused or could not answer: its gRPC status code and the
    server's message, which says what was wrong and what is allowed."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message

    @classmethod
    def from_rpc(cls, error: grpc.RpcError) -> "JobsError":
        # Every error grpc raises for a call is also a grpc.Call with these two.
        return cls(error.code(), error.details() or "")


@dataclass(frozen=True)
class Usage:
    """Tokens Codex reported when its turn completed."""

    input_tokens: int
    cached_input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class FileChange:
    """One file a job in a worktree changed, with its lines added and removed
    (both zero for a binary file)."""

    path: str
    added: int
    removed: int
    binary: bool


@dataclass(frozen=True)
class Change:
    """What a job in a worktree changed: its work, committed on `branch`, from
    `base_commit` to `head_commit`."""

    base_commit: str
    head_commit: str
    branch: str
    files: list[FileChange]
    #: Size in bytes of the patch `diff` returns.
    patch_size: int

    @property
    def stat(self) -> str:
        """`3 files, +10 -2`: the change in a few words."""
        count = len(self.files)
        added = sum(file.added for file in self.files)
        removed = sum(file.removed for file in self.files)
        return f"{count} file{'' if count == 1 else 's'}, +{added} -{removed}"


@dataclass(frozen=True)
class Applied:
    """What `apply` did: the files it changed (left uncommitted) in the checkout
    at `checkout`."""

    job: "Job"
    checkout: str
    files: list[str]


@dataclass(frozen=True)
class Job:
    """A job and what its run produced so far."""

    id: str
    state: JobState
    prompt: str
    cwd: str
    model: str
    sandbox: str
    labels: dict[str, str]
    #: The job's wall-clock limit, if it asked for its own.
    timeout: Optional[timedelta]
    resume_thread_id: str
    #: How hard the model reasons (low, medium, high); None: Codex's default.
    reasoning_effort: Optional[str]
    #: Why a failed job failed: non_zero_exit, signaled, timed_out, start_failed,
    #: lost or disk_full.
    failure_reason: Optional[str]
    #: A sentence a person can act on when the job failed or was cancelled.
    error: Optional[str]
    exit_code: Optional[int]
    signal: Optional[int]
    created_at: Optional[datetime]
    started_at: Optional[datetime]
    finished_at: Optional[datetime]
    thread_id: Optional[str]
    #: Codex's final message, once the job has ended.
    final_message: str
    usage: Optional[Usage]
    #: Size in bytes of the transcript so far.
    output_size: int
    #: Bytes the job takes on the server's disk (its directory with every log).
    disk_bytes: int
    request_id: Optional[str]
    #: Who started the job: `token NAME`, `certificate CN`, `uid N` or `anonymous`.
    created_by: str
    #: Why the output logs stop short (the host's cap, a full disk), if they do.
    output_note: Optional[str]
    #: The pool of job hosts it runs in, and the one host it asked for, if any.
    pool: str
    target_host: Optional[str]
    #: The host that runs (or ran) it; None while it is queued.
    host: Optional[str]
    #: True while that host has stopped heartbeating: the state is as it last told.
    host_unreachable: bool
    #: For a job in a git worktree of its own: the commit (or, until a host has
    #: checked the job, the ref) it starts at; None for a job run in its cwd.
    worktree_base: Optional[str] = None
    #: The id shared by the attempts started together with it, if any.
    group: Optional[str] = None
    #: What a job in a worktree changed, once it has ended.
    change: Optional[Change] = None

    @property
    def done(self) -> bool:
        """True once the job is in a state that never changes again."""
        return self.state.done


@dataclass(frozen=True)
class Pruned:
    """What a prune deleted."""

    deleted: int
    freed_bytes: int


@dataclass(frozen=True)
class PollResult:
    """A job and the window of its output that was read: bytes
    [start_offset, next_offset) of the log."""

    job: Job
    output: bytes
    start_offset: int
    #: Pass as `since_offset` to read on without a gap or a repeat.
    next_offset: int
    #: True when the window was cut to its size limit.
    truncated: bool
    #: The log's size when it was read.
    size: int

    @property
    def text(self) -> str:
        return self.output.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Output:
    """A piece of a log as `follow` yields it: `data` is bytes
    [offset, offset + len(data)); `text` is it decoded, a character split across
    pieces coming whole with the later one."""

    offset: int
    data: bytes
    text: str


@dataclass(frozen=True)
class StateChange:
    """The job, each time `follow` sees its state change."""

    job: Job


FollowEvent = Union[Output, StateChange]


@dataclass(frozen=True)
class WatchedJob:
    """A job as `watch` yields it: first each that matches as it is, then each time
    the state of one changes. Every change up to `position` has been yielded."""

    job: Job
    position: int


@dataclass(frozen=True)
class CaughtUp:
    """Yielded once by `watch`, after the jobs it started with: what follows are
    changes as they happen."""

    position: int


WatchEvent = Union[WatchedJob, CaughtUp]


def _time(message: pb.Job, field: str) -> Optional[datetime]:
    if not message.HasField(field):
        return None
    timestamp: Timestamp = getattr(message, field)
    return timestamp.ToDatetime(tzinfo=timezone.utc)


def job_from_pb(message: pb.Job) -> Job:
    spec = message.spec
    # JOB_STATE_QUEUED -> queued; SANDBOX_READ_ONLY -> read-only.
    state = JobState(pb.JobState.Name(message.state).removeprefix("JOB_STATE_").lower())
    sandbox = pb.Sandbox.Name(spec.sandbox).removeprefix("SANDBOX_").lower().replace("_", "-")
    reason = pb.FailureReason.Name(message.failure_reason).removeprefix("FAILURE_REASON_").lower()
    effort = pb.ReasoningEffort.Name(spec.reasoning_effort).removeprefix("REASONING_EFFORT_").lower()
    timeout = spec.timeout.ToTimedelta() if spec.HasField("timeout") else None
    usage = message.usage if message.HasField("usage") else None
    return Job(
        id=message.id,
        state=state,
        prompt=spec.prompt,
        cwd=spec.cwd,
        model=spec.model,
        sandbox="read-only" if sandbox == "unspecified" else sandbox,
        labels=dict(spec.labels),
        timeout=timeout or None,
        resume_thread_id=spec.resume_thread_id,
        reasoning_effort=None if effort == "unspecified" else effort,
        failure_reason=None if reason == "unspecified" else reason,
        error=message.error or None,
        exit_code=message.exit_code if message.HasField("exit_code") else None,
        signal=message.signal if message.HasField("signal") else None,
        created_at=_time(message, "created_at"),
        started_at=_time(message, "started_at"),
        finished_at=_time(message, "finished_at"),
        thread_id=message.thread_id or None,
        final_message=message.final_message,
        usage=None if usage is None else Usage(usage.input_tokens, usage.cached_input_tokens, usage.output_tokens),
        output_size=message.output_size,
        disk_bytes=message.disk_bytes,
        request_id=message.request_id or None,
        created_by=message.created_by,
        output_note=message.output_note or None,
        pool=spec.pool or "default",
        target_host=spec.host or None,
        host=message.host or None,
        host_unreachable=message.host_unreachable,
        worktree_base=spec.base if spec.isolation == pb.ISOLATION_WORKTREE else None,
        group=message.group or None,
        change=_change(message.change) if message.HasField("change") else None,
    )


def _change(message: pb.Change) -> Change:
    return Change(
        base_commit=message.base_commit,
        head_commit=message.head_commit,
        branch=message.branch,
        files=[FileChange(f.path, f.lines_added, f.lines_removed, f.binary) for f in message.files],
        patch_size=message.patch_size,
    )


def applied_from_pb(response: pb.ApplyResponse) -> Applied:
    return Applied(job=job_from_pb(response.job), checkout=response.checkout, files=list(response.files))


def poll_from_pb(response: pb.PollResponse) -> PollResult:
    return PollResult(
        job=job_from_pb(response.job),
        output=response.output,
        start_offset=response.start_offset,
        next_offset=response.next_offset,
        truncated=response.truncated,
        size=response.size,
    )


def _named(value: str, allowed: Iterable[str], what: str) -> str:
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}: use one of {', '.join(allowed)}")
    return value


def _enum(value: str, prefix: str) -> str:
    return prefix + value.upper().replace("-", "_")


def _seconds(value: Union[float, timedelta], what: str) -> Duration:
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds <= 0:
        raise ValueError(f"{what} must be more than zero seconds, not {seconds}")
    duration = Duration()
    duration.FromTimedelta(timedelta(seconds=seconds))
    return duration


def start_request(
    prompt: str,
    *,
    cwd: str,
    model: Optional[str],
    sandbox: Optional[str],
    timeout: Union[float, timedelta, None],
    labels: Optional[Mapping[str, str]],
    request_id: Optional[str],
    resume_thread_id: Optional[str],
    reasoning_effort: Optional[str] = None,
    pool: Optional[str] = None,
    host: Optional[str] = None,
    worktree: bool = False,
    base: Optional[str] = None,
    attempts: int = 1,
) -> pb.StartRequest:
    if base and not worktree:
        raise ValueError("base is the commit a worktree starts at: pass worktree=True too")
    if not 1 <= attempts <= 16:
        raise ValueError(f"attempts must be between 1 and 16, not {attempts}")
    spec = pb.JobSpec(
        prompt=prompt,
        cwd=str(cwd),
        model=model or "",
        sandbox=_enum(_named(sandbox, SANDBOXES, "sandbox"), "SANDBOX_") if sandbox else None,
        reasoning_effort=(
            _enum(_named(reasoning_effort, REASONING_EFFORTS, "reasoning effort"), "REASONING_EFFORT_")
            if reasoning_effort
            else None
        ),
        labels=dict(labels or {}),
        pool=pool or "",
        host=host or "",
        isolation=pb.ISOLATION_WORKTREE if worktree else pb.ISOLATION_UNSPECIFIED,
        base=base or "",
    )
    if timeout is not None:
        spec.timeout.CopyFrom(_seconds(timeout, "timeout"))
    if resume_thread_id:
        spec.resume_thread_id = resume_thread_id
    return pb.StartRequest(spec=spec, request_id=request_id or "", attempts=attempts)


def poll_request(
    job_id: str,
    *,
    tail_lines: Optional[int],
    since_offset: Optional[int],
    stream: str,
    max_bytes: Optional[int],
    wait: Optional[float] = None,
) -> pb.PollRequest:
    if tail_lines is not None and since_offset is not None:
        raise ValueError("give tail_lines or since_offset, not both")
    request = pb.PollRequest(
        job_id=job_id,
        stream=_enum(_named(stream, STREAMS, "stream"), "OUTPUT_STREAM_"),
        max_bytes=max_bytes or 0,
    )
    if tail_lines is not None:
        request.tail_lines = tail_lines
    if since_offset is not None:
        request.since_offset = since_offset
    if wait is not None:
        request.wait.FromTimedelta(timedelta(seconds=wait))
    return request


def _states(states: Iterable[Union[JobState, str]]) -> list[str]:
    """The enum names of `states`, each checked."""
    known = [state.value for state in JobState]
    names = [_named(state.value if isinstance(state, JobState) else state, known, "state") for state in states]
    return [_enum(name, "JOB_STATE_") for name in names]


def prune_request(older_than: timedelta, states: Iterable[Union[JobState, str]]) -> pb.PruneRequest:
    if older_than < timedelta(0):
        raise ValueError(f"older_than must not be negative, got {older_than}")
    request = pb.PruneRequest(states=_states(states))
    request.older_than.FromTimedelta(older_than)
    return request


def list_request(
    states: Iterable[Union[JobState, str]],
    labels: Optional[Mapping[str, str]],
    page_size: int,
    page_token: str,
    group: Optional[str] = None,
) -> pb.ListRequest:
    return pb.ListRequest(
        states=_states(states),
        labels=dict(labels or {}),
        page_size=page_size,
        page_token=page_token,
        group=group or "",
    )


def watch_request(
    states: Iterable[Union[JobState, str]],
    labels: Optional[Mapping[str, str]],
    job_ids: Iterable[str],
    since_position: int,
) -> pb.WatchRequest:
    if since_position < 0:
        raise ValueError(f"since_position must be zero or more, not {since_position}")
    return pb.WatchRequest(
        states=_states(states), labels=dict(labels or {}), job_ids=list(job_ids), since_position=since_position
    )


def follow_request(job_id: str, offset: int, stream: str) -> pb.FollowRequest:
    return pb.FollowRequest(
        job_id=job_id,
        from_offset=offset,
        stream=_enum(_named(stream, STREAMS, "stream"), "OUTPUT_STREAM_"),
    )
