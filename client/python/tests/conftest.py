"""The package's tests run against a real codex-jobs-server with the fake Codex of
the repository's test fixtures. `cargo test --workspace` starts one and runs them
(server/tests/other_languages.rs); to run them by hand, start a server with
`--token` and set CODEX_JOBS_TEST_ENDPOINT (its http:// address),
CODEX_JOBS_TEST_TOKEN, CODEX_JOBS_TEST_SOCKET (unix:PATH) and CODEX_JOBS_TEST_CWD
(a directory for the jobs).

The fake Codex reads its prompt as a script, a directive a line: `say TEXT`,
`sleep SECS`, `exit N`, `fail TEXT`."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
import uuid
from typing import Callable, Iterator, List, TypeVar

import pytest

from codex_jobs import Client

T = TypeVar("T")


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: see tests/conftest.py")
    return value


@pytest.fixture
def endpoint() -> str:
    return _env("CODEX_JOBS_TEST_ENDPOINT")


@pytest.fixture
def token() -> str:
    return _env("CODEX_JOBS_TEST_TOKEN")


@pytest.fixture
def cwd() -> str:
    return _env("CODEX_JOBS_TEST_CWD")


@pytest.fixture
def socket_endpoint() -> str:
    return _env("CODEX_JOBS_TEST_SOCKET")


@pytest.fixture
def jobs(endpoint: str, token: str) -> Iterator[Client]:
    with Client(endpoint, token=token) as client:
        yield client


@pytest.fixture
def label() -> dict[str, str]:
    """A label no other test's jobs carry."""
    return {"test": uuid.uuid4().hex[:12]}


def eventually(what: str, check: Callable[[], T], timeout: float = 20.0) -> T:
    """Retries `check` until it returns something true, or fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        time.sleep(0.02)


@contextlib.contextmanager
def within(seconds: int) -> Iterator[None]:
    """Fails the test if the block takes longer, even one blocked reading a stream."""

    def expire(_signum: int, _frame: object) -> None:
        raise TimeoutError(f"still waiting after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


class CuttableProxy:
    """A TCP proxy in front of the server whose connections the test can cut, as a
    network failure or a restarting load balancer would."""

    def __init__(self, target: str) -> None:
        host, port = target.removeprefix("http://").rsplit(":", 1)
        self._target = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.connections = 0
        self._live: List[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            with self._lock:
                self.connections += 1
                self._live += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        """Drops every open connection at once."""
        with self._lock:
            live, self._live = self._live, []
        for end in live:
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            end.close()

    def close(self) -> None:
        self._listener.close()
        self.cut()


@pytest.fixture
def proxy(endpoint: str) -> Iterator[CuttableProxy]:
    proxy = CuttableProxy(endpoint)
    yield proxy
    proxy.close()


@pytest.fixture
def repository(tmp_path) -> str:  # type: ignore[no-untyped-def]
    """A git repository with one commit: `notes.txt` holding "base"."""
    import subprocess

    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "notes.txt").write_text("base\n")
    identity = ["-c", "user.name=test", "-c", "user.email=test@example.com"]
    for args in (["init", "--quiet"], ["add", "notes.txt"], [*identity, "commit", "--quiet", "-m", "start"]):
        subprocess.run(["git", *args], cwd=repo, check=True)
    return str(repo)
