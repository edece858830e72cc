"""What `follow` remembers across reconnects, shared by the two clients: the next
byte to hand out and the last state handed out, so that a resumed stream yields
neither a gap nor a repeat."""

from __future__ import annotations

import codecs
import time
from typing import Optional

import grpc

from ._model import FollowEvent, JobsError, Output, StateChange, follow_request, job_from_pb
from ._proto import jobs_pb2 as pb

# Errors a reconnect may cure: the server or the connection went away.
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNKNOWN)
# How long to keep reconnecting without getting a byte or a state further, and how
# long to pause between tries (the Rust CLI's follow does the same).
RECONNECT_FOR = 30.0
RETRY_EVERY = 0.5


class Follower:
    def __init__(self, job_id: str, offset: int, stream: str) -> None:
        if offset < 0:
            raise ValueError(f"from_offset must be zero or more, not {offset}")
        self.job_id = job_id
        self.offset = offset
        self.stream = stream
        self.finished = False
        self._state: Optional[str] = None
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._broken_since: Optional[float] = None

    def request(self) -> pb.FollowRequest:
        return follow_request(self.job_id, self.offset, self.stream)

    def accept(self, message: pb.FollowResponse) -> Optional[FollowEvent]:
        """The event to hand out for `message`, if any."""
        self._broken_since = None
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

    def broke(self, error: Optional[grpc.RpcError]) -> float:
        """The stream broke (`error`) or ended before the job did (None): how long
        to pause before resuming it. Raises when resuming is pointless."""
        if error is not None and error.code() not in RETRYABLE:
            raise JobsError.from_rpc(error) from None
        now = time.monotonic()
        if self._broken_since is None:
            self._broken_since = now
        elif now - self._broken_since > RECONNECT_FOR:
            reason = "the stream ended before the job did"
            if error is not None:
                reason = error.details() or reason
            raise JobsError(
                grpc.StatusCode.UNAVAILABLE,
                f"lost the stream of job {self.job_id} and could not resume it for {RECONNECT_FOR:.0f} s: {reason}",
            )
        return RETRY_EVERY
