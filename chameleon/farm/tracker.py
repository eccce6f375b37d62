"""Talk to a TVM RPC tracker: parse its address, check it answers, read its queue, wait for devices.

Everything here goes through TVM's own tracker client (``tvm.rpc.connect_tracker``); the only raw
socket use is a plain TCP connect with a timeout, so that an unreachable tracker fails in seconds
instead of TVM's 60 s connect-retry loop.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from chameleon.errors import ChameleonError, UsageError

logger = logging.getLogger(__name__)

DEFAULT_TRACKER_PORT = 9190
"""The port ``python -m tvm.exec.rpc_tracker`` listens on by default."""

ENV_HOST = "TVM_TRACKER_HOST"
ENV_PORT = "TVM_TRACKER_PORT"
ENV_KEY = "TVM_TRACKER_KEY"

_T = TypeVar("_T")


def parse_tracker(text: str) -> tuple[str, int]:
    """Parse ``HOST:PORT`` (``[::1]:9190`` for IPv6) into ``(host, port)``; UsageError if malformed."""
    value = text.strip()
    host, sep, port_text = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UsageError(f"--tracker expects HOST:PORT (for example 127.0.0.1:9190), got {text!r}")
    return host, int(port_text)


def tracker_from_env() -> tuple[str, int] | None:
    """The tracker named by TVM's own environment variables (TVM_TRACKER_HOST / _PORT), if any.

    Returns None when TVM_TRACKER_HOST is unset; the port defaults to 9190 like TVM's tools.
    """
    host = os.environ.get(ENV_HOST, "").strip()
    if not host:
        return None
    port_text = os.environ.get(ENV_PORT, "").strip() or str(DEFAULT_TRACKER_PORT)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UsageError(f"{ENV_PORT} must be a port number, got {port_text!r}")
    return host, int(port_text)


def key_from_env() -> str | None:
    """The device key named by TVM_TRACKER_KEY, if set."""
    key = os.environ.get(ENV_KEY, "").strip()
    return key or None


def connect_host(host: str) -> str:
    """The address to connect to for a process bound to ``host`` (a wildcard bind means loopback)."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def _unreachable(host: str, port: int, reason: str) -> ChameleonError:
    return ChameleonError(
        f"cannot reach the RPC tracker at {host}:{port} ({reason}): "
        "start one with `chameleon farm tracker` or fix --tracker"
    )


def _call_with_timeout(fn: Callable[[], _T], timeout_s: float) -> _T:
    """Run ``fn`` in a daemon thread; TimeoutError if it has not returned within ``timeout_s``."""
    box: dict[str, Any] = {}

    def _target() -> None:
        try:
            box["value"] = fn()
        except BaseException as err:  # noqa: BLE001 - handed back to the caller below
            box["error"] = err

    thread = threading.Thread(target=_target, name="chameleon-tracker-query", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {timeout_s:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def query_summary(host: str, port: int, timeout_s: float = 5.0) -> dict[str, Any]:
    """The tracker's raw summary (``{"queue_info": ..., "server_info": ...}``).

    Raises OSError when nothing listens there, TimeoutError when it does not answer in time, and
    RuntimeError when the peer is not an RPC tracker.
    """
    address = connect_host(host)
    with socket.create_connection((address, port), timeout=timeout_s):
        pass  # fail fast: TVM's own client would retry a refused connection for 60 s

    def _summary() -> dict[str, Any]:
        from tvm import rpc

        session = rpc.connect_tracker(address, port)
        try:
            return session.summary()
        finally:
            session.close()

    return _call_with_timeout(_summary, timeout_s)


def _summary_or_error(host: str, port: int, timeout_s: float) -> dict[str, Any]:
    try:
        return query_summary(host, port, timeout_s)
    except TimeoutError as err:
        raise _unreachable(host, port, f"{err}; is that port an RPC tracker?") from err
    except OSError as err:
        raise _unreachable(host, port, err.strerror or str(err) or type(err).__name__) from err
    except RuntimeError as err:
        raise _unreachable(host, port, "the peer is not an RPC tracker") from err


def check_reachable(host: str, port: int, timeout_s: float = 3.0) -> None:
    """Raise ChameleonError (within about ``timeout_s``) unless an RPC tracker answers at host:port."""
    _summary_or_error(host, port, timeout_s)


@dataclass(frozen=True)
class KeyStatus:
    """Queue state of one device key at the tracker."""

    total: int
    """Servers registered with this key."""
    free: int
    """Servers of this key waiting for work."""
    pending: int
    """Requests waiting for a server of this key."""

    @property
    def busy(self) -> int:
        """Servers of this key that are serving a session now."""
        return max(self.total - self.free, 0)


@dataclass(frozen=True)
class ServerInfo:
    """One RPC server registered with the tracker."""

    key: str
    """Its device key."""
    host: str
    """The address the tracker hands out for it."""
    port: int
    """Its RPC port."""


@dataclass(frozen=True)
class FarmStatus:
    """A snapshot of the tracker: every key with its counts, and every registered server."""

    keys: dict[str, KeyStatus] = field(default_factory=dict)
    """Per device key, sorted by key."""
    servers: list[ServerInfo] = field(default_factory=list)
    """Registered servers, sorted by key then address."""

    def devices(self, key: str) -> int:
        """Number of servers registered under ``key`` (0 if the tracker does not know it)."""
        status = self.keys.get(key)
        return status.total if status else 0


def status_from_summary(summary: dict[str, Any]) -> FarmStatus:
    """Turn the tracker's raw summary into a FarmStatus."""
    servers: list[ServerInfo] = []
    for item in summary.get("server_info", []):
        key = str(item.get("key", "")).split(":", 1)[-1]
        addr = item.get("addr") or [None, 0]
        servers.append(ServerInfo(key=key, host=str(addr[0]), port=int(addr[1] or 0)))
    servers.sort(key=lambda s: (s.key, s.host, s.port))
    totals: dict[str, int] = {}
    for server in servers:
        totals[server.key] = totals.get(server.key, 0) + 1
    queue: dict[str, Any] = summary.get("queue_info", {})
    keys: dict[str, KeyStatus] = {}
    for key in sorted(set(totals) | set(queue)):
        info = queue.get(key, {})
        status = KeyStatus(
            total=totals.get(key, 0), free=int(info.get("free", 0)), pending=int(info.get("pending", 0))
        )
        if status.total or status.free or status.pending:
            keys[key] = status
    return FarmStatus(keys=keys, servers=servers)


def farm_status(host: str, port: int, timeout_s: float = 5.0) -> FarmStatus:
    """Ask the tracker at host:port for its queue; ChameleonError if it cannot be reached."""
    return status_from_summary(_summary_or_error(host, port, timeout_s))


def wait_for_devices(host: str, port: int, key: str, *, timeout_s: float, poll_s: float = 0.5) -> FarmStatus:
    """Wait until at least one server with ``key`` is registered; return the tracker's status then.

    Raises ChameleonError right away if the tracker is unreachable, and after ``timeout_s`` if no
    device of that key has shown up (naming the keys that do have devices).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        status = farm_status(host, port, timeout_s=3.0)
        if status.devices(key) > 0:
            return status
        if time.monotonic() >= deadline:
            break
        time.sleep(min(poll_s, max(deadline - time.monotonic(), 0.0)))
    others = ", ".join(f"{k} ({s.total})" for k, s in status.keys.items() if s.total) or "none"
    raise ChameleonError(
        f"no device with key {key!r} registered at the RPC tracker {host}:{port} after {timeout_s:g} s "
        f"(keys with devices: {others}): start one with "
        f"`chameleon farm server --tracker {host}:{port} --key {key}` or fix --key"
    )
