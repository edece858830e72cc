"""Client for codex-jobs, the service that runs OpenAI Codex CLI jobs in the
background: start jobs, follow their output, wait for them, from Python.

    from codex_jobs import Client

    with Client() as jobs:
        job = jobs.start("Write the changelog", cwd="/src/app")
        print(jobs.wait(job.id).final_message)
"""

from ._aio import AsyncClient
from ._client import Client
from ._connect import default_endpoint
from ._model import (
    Applied,
    CaughtUp,
    Change,
    FileChange,
    FollowEvent,
    Job,
    JobsError,
    JobState,
    Output,
    PollResult,
    Pruned,
    StateChange,
    Usage,
    WatchedJob,
    WatchEvent,
)

__all__ = [
    "Applied",
    "AsyncClient",
    "CaughtUp",
    "Change",
    "Client",
    "FileChange",
    "FollowEvent",
    "Job",
    "JobState",
    "JobsError",
    "Output",
    "PollResult",
    "Pruned",
    "StateChange",
    "Usage",
    "WatchEvent",
    "WatchedJob",
    "default_endpoint",
]
