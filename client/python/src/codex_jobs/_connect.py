"""Reaching a server: endpoints and credentials as the codex-jobs CLI takes them,
with the same environment variables as defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Tuple

import grpc

# Long-polls and follows sit idle for minutes: keepalive pings find a dead network
# path within a minute, as the Rust client does. A Poll window (up to 4 MiB) plus its
# job (a prompt up to 1 MiB) exceeds grpc's default 4 MiB limit on what it receives.
CHANNEL_OPTIONS: Sequence[Tuple[str, object]] = (
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
)


def default_endpoint() -> str:
    """The local server's Unix socket: `$XDG_DATA_HOME/codex-jobs/codex-jobs.sock`,
    with `$XDG_DATA_HOME` defaulting to `~/.local/share`."""
    data_home = os.environ.get("XDG_DATA_HOME") or None
    if data_home is None and os.environ.get("HOME"):
        data_home = str(Path(os.environ["HOME"]) / ".local" / "share")
    state_dir = Path(data_home) / "codex-jobs" if data_home else Path("codex-jobs-state")
    return f"unix:{state_dir / 'codex-jobs.sock'}"


def _env(value: Optional[str], name: str) -> Optional[str]:
    return value if value is not None else (os.environ.get(name) or None)


@dataclass(frozen=True)
class Target:
    """Where and how to connect: grpc's target string, TLS credentials (None for
    plain text) and the metadata every call carries."""

    address: str
    credentials: Optional[grpc.ChannelCredentials]
    metadata: Tuple[Tuple[str, str], ...]
    options: Sequence[Tuple[str, object]] = CHANNEL_OPTIONS


def resolve(
    endpoint: Optional[str],
    token: Optional[str],
    ca_cert: Optional[str],
    client_cert: Optional[str],
    client_key: Optional[str],
) -> Target:
    endpoint = _env(endpoint, "CODEX_JOBS_ENDPOINT") or default_endpoint()
    token = _env(token, "CODEX_JOBS_TOKEN")
    ca_cert = _env(ca_cert, "CODEX_JOBS_CA_CERT")
    client_cert = _env(client_cert, "CODEX_JOBS_CLIENT_CERT")
    client_key = _env(client_key, "CODEX_JOBS_CLIENT_KEY")
    metadata = (("authorization", f"Bearer {token}"),) if token else ()

    tls = endpoint.startswith("https://")
    if not tls and (ca_cert or client_cert or client_key):
        raise ValueError(f"ca_cert, client_cert and client_key need an https:// endpoint, not {endpoint}")
    if endpoint.startswith("unix:"):
        # grpc would send the socket's path as the HTTP/2 authority, which is no
        # host name, and the server's HTTP/2 stack refuses the stream.
        return Target(endpoint, None, metadata, (*CHANNEL_OPTIONS, ("grpc.default_authority", "localhost")))
    if not tls and not endpoint.startswith("http://"):
        raise ValueError(f"bad endpoint {endpoint!r}: use http://HOST:PORT, https://HOST:PORT or unix:PATH")
    address = endpoint.split("://", 1)[1].rstrip("/")
    if not address:
        raise ValueError(f"bad endpoint {endpoint!r}: it names no host")
    if not tls:
        return Target(address, None, metadata)
    if bool(client_cert) != bool(client_key):
        raise ValueError("client_cert and client_key go together: give both or neither")

    def read(what: str, path: Optional[str]) -> Optional[bytes]:
        if path is None:
            return None
        try:
            return Path(path).read_bytes()
        except OSError as err:
            raise ValueError(f"cannot read {what} {path}: {err.strerror}") from None

    credentials = grpc.ssl_channel_credentials(
        root_certificates=read("ca_cert", ca_cert),
        private_key=read("client_key", client_key),
        certificate_chain=read("client_cert", client_cert),
    )
    return Target(address, credentials, metadata)
