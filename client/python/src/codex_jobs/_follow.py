"""What `follow` and `watch` remember across reconnects, shared by the two clients:
for follow, the next byte to hand out and the last state handed out; for watch, the
last position; for both, how long the stream has been broken. A resumed stream
yields neither a gap nor a repeat."""

from __future__ import annotations

import codecs
import time
from typing import Iterable, Mapping, Optional, Union

import grpc

from ._model import (
    CaughtUp,
    FollowEvent,
    JobsError,
    JobState,
    Output,
    StateChange,
    WatchedJob,
    WatchEvent,
    follow_request,
    job_from_pb,
    watch_request,
)
from ._proto import jobs_pb2 as pb

# Errors a reconnect may cure: the server or the connection went away.
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNKNOWN)
# How long to keep reconnecting without getting anywhere, and how long to pause
# between tries (the Rust CLI does the same).
RECONNECT_FOR = 30.0
RETRY_EVERY = 0.5


class Reconnect:
    """When a broken stream is worth resuming, and for how long."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._broken_since: Optional[float] = None

    def progress(self) -> None:
        self._broken_since = None

    def broke(self, error: Optional[grpc.RpcError]) -> float:
        """The stream broke (`error`) or ended early (None): how long to pause before
        resuming it. Raises when resuming is pointless."""
        if error is not None and error.code() not in RETRYABLE:
            raise JobsError.from_rpc(error) from None
        now = time.monotonic()
        if self._broken_since is None:
            self._broken_since = now
        elif now - self._broken_since > RECONNECT_FOR:
            reason = "the stream ended early"
            if error is not None:
                reason = error.details() or reason
            raise JobsError(
                grpc.StatusCode.UNAVAILABLE,
                f"lost {self._what} and could not resume it for {RECONNECT_FOR:.0f} s: {reason}",
            )
        return RETRY_EVERY


class Follower:
    def __init__(self, job_id: str, offset: int, stream: str) -> None:
        if offset < 0:
            raise ValueError(f"from_offset must be zero or more, not {offset}")
        self.job_id = job_id
        self.offset = offset
        self.stream = stream
        self.finished = False
        self.reconnect = Reconnect(f"the stream of job {job_id}")
        self._state: Optional[str] = None
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def request(self) -> pb.FollowRequest:
        return follow_request(self.job_id, self.offset, self.stream)

    def accept(self, message: pb.FollowResponse) -> Optional[FollowEvent]:
        """The event to hand out for `message`, if any."""
        self.reconnect.progress()
        if message.WhichOneof("event") == "output":
            chunk = message.output
            # A resumed stream starts at self.offset; never hand out a byte twice.
            data = chunk.data[max(0, self.offset - chunk.offset) :]
            if not data:
                return None
            offset = max(chunk.offset, self.offset)
            self.offset = offset + len(data)
            return Output(offset, data, self._decoder.decode(data))
        job = job_from_pb(message.job)
        self.finished = job.done
        if job.state == self._state:
            return None  # the job a resumed stream starts with
        self._state = job.state
        return StateChange(job)


class Watcher:
    def __init__(
        self,
        states: Iterable[Union[JobState, str]],
        labels: Optional[Mapping[str, str]],
        job_ids: Iterable[str],
        since_position: int,
    ) -> None:
        self._request = watch_request(states, labels, job_ids, since_position)
        self.reconnect = Reconnect("the watch")
        self._caught_up = False

    def request(self) -> pb.WatchRequest:
        return self._request

    def accept(self, message: pb.WatchResponse) -> Optional[WatchEvent]:
        """The event to hand out for `message`, if any."""
        self.reconnect.progress()
        # Resume after what was handed out, and only once start with the jobs as
        # they are.
        self._request.since_position = message.position
        if message.WhichOneof("event") == "caught_up":
            if self._caught_up:
                return None
            self._caught_up = True
            return CaughtUp(message.position)
        return WatchedJob(job_from_pb(message.job), message.position)
