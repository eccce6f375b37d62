"""Start and stop TVM's RPC tracker and RPC servers as subprocesses, and a local farm of both.

Each process runs TVM's own entry point (``python -m tvm.exec.rpc_tracker`` /
``python -m tvm.exec.rpc_server``) in a session of its own, so that stopping it signals its whole
process group: TVM's ``tvm.exec.popen_worker`` children and per-session server children go with it
instead of lingering as orphans.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from chameleon.errors import ChameleonError
from chameleon.farm.tracker import connect_host, query_summary, status_from_summary

logger = logging.getLogger(__name__)

_START_ATTEMPTS = 3
"""Tries with a fresh free port when an automatically picked port was taken in the meantime."""


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def warn_if_exposed(host: str, what: str) -> None:
    """Log a warning when ``what`` is about to listen on a non-loopback address."""
    if not is_loopback(host):
        logger.warning(
            "%s binds %s, not loopback: TVM RPC has no authentication and runs any code it is sent; "
            "use a trusted network or an SSH tunnel",
            what,
            host,
        )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host or "0.0.0.0", 0))
        return int(sock.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    """True if ``port`` cannot be bound on ``host`` now (another process listens there)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as TVM binds
        try:
            sock.bind((host or "0.0.0.0", port))
        except OSError:
            return True
    return False


@dataclass
class FarmProcess:
    """A TVM RPC process (tracker or server) started by us, leader of its own process group."""

    name: str
    """What it is, for messages: "tracker" or "server 0"."""
    popen: subprocess.Popen[bytes]
    """The process handle."""
    host: str
    """The address it binds."""
    port: int
    """The port it listens on."""
    log_path: Path | None
    """Where its output goes; None when it inherits ours."""

    @property
    def pid(self) -> int:
        """Its process id, also its process-group id."""
        return self.popen.pid

    def alive(self) -> bool:
        """True while the process (the group leader) is running."""
        return self.popen.poll() is None

    def _signal_group(self, sig: signal.Signals) -> None:
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _descendants(self) -> list:
        import psutil

        try:
            return psutil.Process(self.pid).children(recursive=True)
        except psutil.Error:
            return []

    def kill(self) -> None:
        """SIGKILL the whole process group at once, as if the device died."""
        descendants = self._descendants()
        self._signal_group(signal.SIGKILL)
        self.popen.wait()
        _reap(descendants)

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM the process group, wait up to ``timeout_s``, then SIGKILL whatever is left.
        Returns once the process and every descendant it had are gone."""
        descendants = self._descendants()
        if self.alive():
            self._signal_group(signal.SIGTERM)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                logger.warning("%s (pid %d) ignored SIGTERM; killing it", self.name, self.pid)
        self._signal_group(signal.SIGKILL)  # children that outlived the leader
        self.popen.wait()
        _reap(descendants)

    def failure(self, doing: str) -> ChameleonError:
        """A one-line error for a process that exited or stalled while ``doing``."""
        code = self.popen.poll()
        state = f"exited with code {code}" if code is not None else "did not become ready"
        where = f"; see {self.log_path}" if self.log_path else ""
        return ChameleonError(f"the RPC {self.name} {state} while {doing}{where}")


def _reap(processes: list, timeout_s: float = 10.0) -> None:
    """SIGKILL what is left of ``processes`` (psutil handles, e.g. children that left the process
    group) and wait until they are gone: a stopped farm leaves nothing running behind it."""
    import psutil

    for proc in processes:
        try:
            proc.kill()
        except psutil.Error:
            pass
    deadline = time.monotonic() + timeout_s
    while processes := [p for p in processes if _running(p)]:
        if time.monotonic() > deadline:
            logger.warning("processes %s did not exit after SIGKILL", [p.pid for p in processes])
            return
        time.sleep(0.05)


def _running(proc) -> bool:
    """Running and not a zombie (a zombie is dead; only its parent or init can reap it)."""
    import psutil

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _port_args(port: int) -> list[str]:
    """Bind exactly ``port`` (TVM would silently move on to the next free port up to 9199)."""
    return ["--port", str(port), "--port-end", str(port + 1)]


def _spawn(name: str, args: Sequence[str], host: str, port: int, log_path: Path | None) -> FarmProcess:
    cmd = [sys.executable, *args]
    logger.debug("starting %s: %s", name, " ".join(cmd))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if log_path is None:
        popen = subprocess.Popen(cmd, start_new_session=True, env=env, stdin=subprocess.DEVNULL)
    else:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            popen = subprocess.Popen(
                cmd, start_new_session=True, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
    return FarmProcess(name=name, popen=popen, host=host, port=port, log_path=log_path)


def _wait_tracker(proc: FarmProcess, timeout_s: float) -> bool:
    """Poll until the tracker answers a summary; False if it exited first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            return False
        try:
            query_summary(proc.host, proc.port, timeout_s=2.0)
            return True
        except (OSError, TimeoutError, RuntimeError):
            time.sleep(0.2)
    error = proc.failure(f"starting on {proc.host}:{proc.port}")
    proc.stop()
    raise error


def start_tracker(
    *, host: str = "127.0.0.1", port: int | None = None, log_path: Path | None = None, timeout_s: float = 60.0
) -> FarmProcess:
    """Start ``python -m tvm.exec.rpc_tracker`` and return once it answers queries.

    ``port=None`` picks a free port. A given port that is taken is an error, not a silent move to
    the next one (TVM's own default), so the caller always knows where the tracker is.
    """
    warn_if_exposed(host, "the RPC tracker")
    if port is not None and port_in_use(host, port):
        raise ChameleonError(
            f"port {port} on {host} is in use: stop what listens there or pick another --port"
        )
    for attempt in range(_START_ATTEMPTS if port is None else 1):
        chosen = free_port(host) if port is None else port
        proc = _spawn(
            "tracker",
            ["-m", "tvm.exec.rpc_tracker", "--host", host, *_port_args(chosen)],
            host,
            chosen,
            log_path,
        )
        if _wait_tracker(proc, timeout_s):
            logger.info("RPC tracker listening on %s:%d (pid %d)", host, chosen, proc.pid)
            return proc
        proc.stop()
        logger.debug("tracker on port %d exited at start (attempt %d)", chosen, attempt + 1)
    raise ChameleonError(
        f"the RPC tracker could not listen on {host}:{port if port is not None else '(any port)'}"
        + (f"; see {log_path}" if log_path else "")
        + ": is the port in use? pick another with --port"
    )


def spawn_server(
    *,
    tracker: tuple[str, int],
    key: str,
    host: str = "127.0.0.1",
    port: int | None = None,
    log_path: Path | None = None,
    name: str = "server",
) -> FarmProcess:
    """Start ``python -m tvm.exec.rpc_server`` for ``key`` without waiting for it to register."""
    warn_if_exposed(host, f"the RPC {name}")
    if port is not None and port_in_use(host, port):
        raise ChameleonError(
            f"port {port} on {host} is in use: stop what listens there or pick another --port"
        )
    chosen = free_port(host) if port is None else port
    tracker_arg = f"{tracker[0]}:{tracker[1]}"
    args = ["-m", "tvm.exec.rpc_server", "--host", host, *_port_args(chosen)]
    return _spawn(name, [*args, "--tracker", tracker_arg, "--key", key], host, chosen, log_path)


def registered_ports(tracker: tuple[str, int], key: str) -> set[int]:
    """Ports of the servers with ``key`` that the tracker lists now (empty if it does not answer)."""
    try:
        status = status_from_summary(query_summary(*tracker, timeout_s=2.0))
    except (OSError, TimeoutError, RuntimeError):
        return set()
    return {s.port for s in status.servers if s.key == key}


def wait_registered(
    servers: Sequence[FarmProcess], *, tracker: tuple[str, int], key: str, timeout_s: float = 60.0
) -> None:
    """Poll the tracker until every server in ``servers`` is listed under ``key``.

    Raises ChameleonError naming the first server that exited or did not register in time.
    """
    deadline = time.monotonic() + timeout_s
    waiting = list(servers)
    while waiting:
        for proc in waiting:
            if not proc.alive():
                raise proc.failure(f"registering with the tracker {tracker[0]}:{tracker[1]}")
        ports = registered_ports(tracker, key)
        waiting = [p for p in waiting if p.port not in ports]
        if not waiting:
            return
        if time.monotonic() >= deadline:
            raise waiting[0].failure(f"registering with the tracker {tracker[0]}:{tracker[1]}")
        time.sleep(0.2)


def start_server(
    *,
    tracker: tuple[str, int],
    key: str,
    host: str = "127.0.0.1",
    port: int | None = None,
    log_path: Path | None = None,
    timeout_s: float = 60.0,
    name: str = "server",
) -> FarmProcess:
    """Start an RPC server for ``key`` and return once the tracker lists it; stops it on failure."""
    proc = spawn_server(tracker=tracker, key=key, host=host, port=port, log_path=log_path, name=name)
    try:
        wait_registered([proc], tracker=tracker, key=key, timeout_s=timeout_s)
    except BaseException:
        proc.stop()
        raise
    logger.info("RPC %s for key %r listening on %s:%d (pid %d)", name, key, host, proc.port, proc.pid)
    return proc


class LocalFarm:
    """A tracker and ``n_servers`` CPU servers on this machine, stopped on exit whatever happens.

    >>> with LocalFarm(n_servers=2) as farm:   # doctest: +SKIP
    ...     host, port = farm.tracker
    """

    def __init__(
        self,
        *,
        n_servers: int = 2,
        key: str = "local-cpu",
        host: str = "127.0.0.1",
        port: int | None = None,
        log_dir: Path | None = None,
        timeout_s: float = 120.0,
    ) -> None:
        if n_servers < 0:
            raise ValueError("n_servers must be >= 0")
        self.key = key
        self.host = host
        self.n_servers = n_servers
        self.log_dir = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix="chameleon-farm-"))
        self._port = port
        self._timeout_s = timeout_s
        self._tracker: FarmProcess | None = None
        self.servers: list[FarmProcess] = []
        self._started: list[FarmProcess] = []

    @property
    def tracker(self) -> tuple[str, int]:
        """(host, port) to connect to the tracker."""
        if self._tracker is None:
            raise RuntimeError("the farm is not running")
        return connect_host(self.host), self._tracker.port

    @property
    def processes(self) -> list[FarmProcess]:
        """The tracker and the servers, as started (killed ones included)."""
        return list(self._started)

    @property
    def process_groups(self) -> list[int]:
        """Process-group ids of every process this farm started (stopped ones included)."""
        return [p.pid for p in self._started]

    def start(self) -> LocalFarm:
        """Start the tracker and the servers; on any failure stop what was started and re-raise."""
        try:
            self._tracker = start_tracker(
                host=self.host,
                port=self._port,
                log_path=self.log_dir / "tracker.log",
                timeout_s=self._timeout_s,
            )
            self._started.append(self._tracker)
            spawned = [self._spawn_one() for _ in range(self.n_servers)]
            wait_registered(spawned, tracker=self.tracker, key=self.key, timeout_s=self._timeout_s)
        except BaseException:
            self.stop()
            raise
        logger.info("local farm: tracker %s:%d, %d servers, key %r", *self.tracker, self.n_servers, self.key)
        return self

    def _spawn_one(self) -> FarmProcess:
        index = len(self.servers)
        proc = spawn_server(
            tracker=self.tracker,
            key=self.key,
            host=self.host,
            log_path=self.log_dir / f"server-{index}.log",
            name=f"server {index}",
        )
        self.servers.append(proc)
        self._started.append(proc)
        return proc

    def kill(self, index: int) -> None:
        """SIGKILL server ``index`` and its children, to simulate a device dying."""
        logger.info("killing RPC server %d (pid %d)", index, self.servers[index].pid)
        self.servers[index].kill()

    def stop(self) -> None:
        """Stop every server, then the tracker. Safe to call more than once."""
        interrupted: BaseException | None = None
        for proc in reversed(self._started):
            try:
                proc.stop()
            except Exception:
                logger.exception("could not stop %s (pid %d)", proc.name, proc.pid)
            except BaseException as err:  # a second Ctrl-C: stop the others first, then re-raise
                interrupted = interrupted or err
                proc.kill()
        self._tracker = None
        if interrupted is not None:
            raise interrupted

    def __enter__(self) -> LocalFarm:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
