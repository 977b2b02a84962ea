"""The Prefect API a command talks to: the user's server when there is one, else a temporary one
started by the command itself, early (while the model loads), and bound to its life.

Prefect's own temporary server outlives a command killed with ``kill -9`` (it is reparented to
init and keeps listening). Ours is started with a parent-death signal (Linux ``prctl``), so the
kernel stops it when the command dies however it dies, and it is stopped on a normal exit too.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from orient_model.errors import OrientError

_PR_SET_PDEATHSIG = 1


class PrefectUnavailable(OrientError):
    """No Prefect API could be reached or started; the message says what to do."""


def die_with_parent() -> None:
    """In a child, just before exec: ask the kernel to send SIGTERM when the parent dies."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def spawn_bound(args: list[str], env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
    """Start a child process that cannot outlive this one (see :func:`die_with_parent`)."""
    return subprocess.Popen(args, env=env, preexec_fn=die_with_parent, **kwargs)  # noqa: PLW1509


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(api_url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(f"{api_url.rstrip('/')}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


class TemporaryServer:
    """A Prefect API server for one command, on a free loopback port, without the UI."""

    def __init__(self) -> None:
        import prefect

        self.port = _free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        env = {
            **os.environ,
            "PREFECT_UI_ENABLED": "0",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
        env.pop("PREFECT_API_URL", None)
        self.process = spawn_bound(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--app-dir",
                str(Path(prefect.__file__).parent.parent),
                "--factory",
                "prefect.server.api.server:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "error",
                "--lifespan",
                "on",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            # Its own session: a Ctrl-C at the terminal reaches the command, which stops the
            # server after its own shutdown, not the server first (the runner would then lose its
            # connection mid-shutdown and print a traceback).
            start_new_session=True,
        )

    def wait_until_ready(self, patience_s: float = 300.0) -> None:
        """Wait for the server to answer; it is never given up on while it is still starting,
        only if it exits or is still silent after ``patience_s`` (a busy machine is slow)."""
        deadline = time.monotonic() + patience_s
        while not healthy(self.api_url, timeout=1.0):
            if self.process.poll() is not None:
                err = (self.process.stderr.read() or b"").decode(errors="replace").strip().splitlines()
                raise PrefectUnavailable(
                    f"the temporary Prefect server exited ({err[-1] if err else self.process.returncode}); "
                    "start one with `prefect server start` and set PREFECT_API_URL"
                )
            if time.monotonic() > deadline:
                raise PrefectUnavailable(
                    f"the temporary Prefect server did not answer within {patience_s:.0f} s; start one with "
                    "`prefect server start` and set PREFECT_API_URL"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # its state is in the database already: no need to wait long
            try:
                self.process.wait(2)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def temporary_server_settings() -> dict:
    """Prefect settings for flows whose server lives only as long as the process (a command's,
    the test harness): no heartbeats. They let a lasting server mark crashed runs; here the
    server dies with the runs, and each flow run's end waits up to a second for the heartbeat
    thread to wake and stop."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY

    return {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}


@contextlib.contextmanager
def prefect_api() -> Iterator[TemporaryServer | None]:
    """The API for this command. With ``PREFECT_API_URL`` set, that server (it must answer), and
    None is yielded; else a temporary one, started now: call its ``wait_until_ready`` just before
    the first flow runs, so the model can load meanwhile."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    configured = PREFECT_API_URL.value()
    if configured:
        if not healthy(configured, timeout=10.0):
            raise PrefectUnavailable(
                f"the Prefect server at {configured} (PREFECT_API_URL) does not answer; "
                "start it, or unset PREFECT_API_URL to use a temporary one"
            )
        yield None
        return
    server = TemporaryServer()
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url, **temporary_server_settings()}):
            try:
                yield server
            finally:
                _drain_to_api()
    finally:
        server.stop()


def _drain_to_api(timeout: float = 10.0) -> None:
    """Send the logs and events still queued before the server they go to stops (else each
    would end in an 'Error logging to API' message after the command's own output)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        try:
            worker.drain_all(timeout=timeout)
        except Exception:  # noqa: BLE001 - best effort: never fail a finished command over a log line
            pass
