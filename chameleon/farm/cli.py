"""``chameleon farm ...``: run TVM's RPC tracker and servers, and show what a tracker holds.

The only module of ``chameleon.farm`` that prints. ChameleonError propagates to the caller, which
turns it into a one-line message and an exit code.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from chameleon.errors import UsageError
from chameleon.farm.processes import FarmProcess, LocalFarm, is_loopback, start_server, start_tracker
from chameleon.farm.tracker import (
    DEFAULT_TRACKER_PORT,
    FarmStatus,
    check_reachable,
    farm_status,
    parse_tracker,
    tracker_from_env,
)

app = typer.Typer(
    help="Run TVM's RPC tracker and servers (a farm of devices to measure on) and inspect it.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()

_AUTH_NOTE = "TVM RPC has no authentication: use a trusted network or an SSH tunnel."

TrackerOpt = Annotated[
    str | None,
    typer.Option(
        "--tracker",
        help="HOST:PORT of the RPC tracker "
        "[default: $TVM_TRACKER_HOST:$TVM_TRACKER_PORT, else 127.0.0.1:9190]",
        show_default=False,
    ),
]
HostOpt = Annotated[
    str,
    typer.Option("--host", help="Address to bind. Anything but loopback exposes it: " + _AUTH_NOTE),
]


def _tracker_address(text: str | None) -> tuple[str, int]:
    if text:
        return parse_tracker(text)
    return tracker_from_env() or ("127.0.0.1", DEFAULT_TRACKER_PORT)


def _check_port(port: int) -> None:
    if not 0 < port < 65536:
        raise UsageError(f"--port must be between 1 and 65535, got {port}")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextmanager
def _stop_signals_interrupt() -> Iterator[None]:
    """Treat SIGTERM (e.g. from ``make`` or ``kill``) like Ctrl-C, so that cleanup runs; and make
    SIGINT raise KeyboardInterrupt even when this process was started with it ignored (a
    background job of a non-interactive shell is, and Python then keeps ignoring it)."""
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _wait_while_alive(procs: Sequence[FarmProcess]) -> None:
    """Block until Ctrl-C (KeyboardInterrupt) or until one of ``procs`` exits (ChameleonError)."""
    while True:
        for proc in procs:
            if not proc.alive():
                raise proc.failure("running")
        time.sleep(0.5)


def _warn_exposed(host: str) -> None:
    if not is_loopback(host):
        console.print(f"[yellow]warning:[/] binding {host}. {_AUTH_NOTE}")


def print_status(status: FarmStatus, tracker: tuple[str, int]) -> None:
    """Print a tracker's keys and servers as two tables."""
    title = f"RPC tracker {tracker[0]}:{tracker[1]}"
    if not status.keys:
        console.print(f"{title}: no devices registered")
        return
    keys = Table(title=title)
    for column in ("key", "total", "free", "busy", "pending"):
        keys.add_column(column, justify="left" if column == "key" else "right")
    for key, item in status.keys.items():
        keys.add_row(key, str(item.total), str(item.free), str(item.busy), str(item.pending))
    console.print(keys)
    servers = Table(title="servers")
    servers.add_column("key")
    servers.add_column("address")
    for server in status.servers:
        servers.add_row(server.key, f"{server.host}:{server.port}")
    console.print(servers)


@app.command()
def tracker(
    host: HostOpt = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = DEFAULT_TRACKER_PORT,
) -> None:
    """Run TVM's RPC tracker in the foreground until Ctrl-C."""
    _check_port(port)
    _warn_exposed(host)
    with _stop_signals_interrupt():
        proc = start_tracker(host=host, port=port)
        try:
            console.print(f"RPC tracker on {host}:{port} (pid {proc.pid}); Ctrl-C stops it")
            _wait_while_alive([proc])
        except KeyboardInterrupt:
            console.print("stopping the tracker")
        finally:
            proc.stop()


@app.command()
def server(
    key: Annotated[str, typer.Option("--key", help="Device key to register under, e.g. jetson-orin-nano.")],
    tracker: TrackerOpt = None,
    host: HostOpt = "127.0.0.1",
    port: Annotated[
        int | None, typer.Option("--port", help="Port to listen on [default: a free one].")
    ] = None,
) -> None:
    """Run TVM's RPC server for KEY, registered with the tracker, until Ctrl-C."""
    address = _tracker_address(tracker)
    if port is not None:
        _check_port(port)
    if not key.strip():
        raise UsageError("--key must not be empty")
    _warn_exposed(host)
    if is_loopback(host) and not is_loopback(address[0]):
        console.print(
            f"[yellow]warning:[/] this server listens on {host} only, so clients of the tracker at "
            f"{address[0]} on other machines cannot reach it: pass --host 0.0.0.0 (trusted network) "
            "or tunnel the port"
        )
    check_reachable(*address)
    with _stop_signals_interrupt():
        proc = start_server(tracker=address, key=key, host=host, port=port)
        try:
            console.print(
                f"RPC server for key {key!r} on {host}:{proc.port} registered with "
                f"{address[0]}:{address[1]} (pid {proc.pid}); Ctrl-C stops it"
            )
            _wait_while_alive([proc])
        except KeyboardInterrupt:
            console.print("stopping the server")
        finally:
            proc.stop()


@app.command()
def status(tracker: TrackerOpt = None) -> None:
    """Show each device key of the tracker (total, free, busy, pending) and its servers."""
    address = _tracker_address(tracker)
    print_status(farm_status(*address), address)


@app.command()
def local(
    servers: Annotated[int, typer.Option("--servers", help="Number of CPU servers.")] = 2,
    key: Annotated[str, typer.Option("--key", help="Device key of the servers.")] = "local-cpu",
    port: Annotated[int, typer.Option("--port", help="Tracker port.")] = DEFAULT_TRACKER_PORT,
    host: HostOpt = "127.0.0.1",
    log_dir: Annotated[
        Path | None, typer.Option("--log-dir", help="Where server logs go [default: a new temp dir].")
    ] = None,
) -> None:
    """Run a local farm (tracker + N CPU servers) in the foreground until Ctrl-C."""
    if servers < 1:
        raise UsageError(f"--servers must be at least 1, got {servers}")
    _check_port(port)
    _warn_exposed(host)
    with _stop_signals_interrupt():
        farm = LocalFarm(n_servers=servers, key=key, host=host, port=port, log_dir=log_dir)
        try:
            farm.start()
            tracker_host, tracker_port = farm.tracker
            console.print(
                f"local farm: tracker {tracker_host}:{tracker_port}, {servers} server(s) with key {key!r}, "
                f"logs in {farm.log_dir}"
            )
            console.print(
                f"tune with --tracker {tracker_host}:{tracker_port} --key {key}; Ctrl-C stops the farm"
            )
            _wait_while_alive(farm.processes)
        except KeyboardInterrupt:
            console.print("stopping the farm")
        finally:
            farm.stop()


__all__ = ["app", "print_status"]
