"""Stoplight Prism (from .ci/peers, `npm ci`) mocking an OpenAPI spec on 127.0.0.1, killed by PID.

    reason = prism_missing(TWILIO_API_SPEC)     # '' when Prism, node and the spec are all there
    with PrismPeer(TWILIO_API_SPEC) as prism:
        requests.post(prism.url + "/2010-04-01/Accounts/AC…/Messages.json", ...)

It runs `prism mock --errors`: a request that breaks the spec (its parameters, body schema, content type or
security) gets Prism's 4xx (422, 415, 401) instead of a made-up 2xx. The log lives in a private temp directory.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

from helpers_net import free_port
from polling import wait_until

PEERS = Path(__file__).resolve().parent.parent / ".ci" / "peers"
PRISM = PEERS / "node_modules" / ".bin" / "prism"
# Twilio's own OpenAPI 3 spec of api.twilio.com 2010-04-01, as the Twilio CLI ships it
TWILIO_API_SPEC = PEERS / "node_modules" / "@twilio" / "cli-core" / "src" / "services" / "twilio-api" / \
    "twilio_api_v2010.json"
INSTALL_HINT = "run: npm ci --prefix .ci/peers --ignore-scripts"
READY_TIMEOUT = 30.0  # Prism parses the whole spec (1.9 MB) before it listens: about 3 s here
STOP_TIMEOUT = 5.0


def prism_missing(spec: Path) -> str:
    """Why Prism cannot run on `spec` here (a skip reason), or '' when it can."""
    if shutil.which("node") is None:
        return "needs node (Prism is a Node.js program)"
    for path, what in ((PRISM, "Prism"), (spec, "the OpenAPI spec")):
        if not path.is_file():
            return f"{what} is not installed ({path.relative_to(PEERS.parent.parent)} missing): {INSTALL_HINT}"
    return ""


class PrismPeer:
    """Context manager running one `prism mock --errors SPEC`; `.url` is its base URL."""

    def __init__(self, spec: Path, attempts: int = 3):
        self.spec = spec
        self.attempts = attempts
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT"""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_text(self) -> str:
        """The end of what Prism wrote so far (for failure messages)."""
        path = self._log_path()
        return path.read_text(errors="replace")[-3000:] if path is not None and path.exists() else ""

    def __enter__(self) -> PrismPeer:
        self._dir = tempfile.TemporaryDirectory(prefix="tray-alerts-prism-")
        problem = ""
        try:
            for _ in range(self.attempts):
                self._start(free_port())
                problem = self._wait_listening()
                if not problem:
                    return self
                self._stop_process()  # e.g. the picked port was taken meanwhile: try another
        except BaseException:
            self._cleanup()
            raise
        log_text = self.log_text
        self._cleanup()
        raise RuntimeError(f"Prism did not start: {problem}\n{log_text}")

    def __exit__(self, *exc: object) -> None:
        self._cleanup()

    def _log_path(self) -> Path | None:
        return None if self._dir is None else Path(self._dir.name) / "prism.log"

    def _start(self, port: int) -> None:
        """Launch Prism on 127.0.0.1:port, its output to the log file."""
        self.port = port
        env = {**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0"}  # a plain log
        command = [str(PRISM), "mock", str(self.spec), "--host", "127.0.0.1", "--port", str(port), "--errors",
                   "--cors=false"]
        with open(self._log_path() or os.devnull, "ab") as log:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                            cwd=PEERS, env=env)

    def _wait_listening(self) -> str:
        """'' once the port accepts connections; else why not (Prism exited, or it timed out)."""
        process = self.process
        assert process is not None
        try:
            wait_until(lambda: process.poll() is not None or self._listening(), "Prism listening", READY_TIMEOUT)
        except AssertionError as error:
            return str(error)
        return "" if process.poll() is None else f"Prism exited with {process.returncode}"

    def _listening(self) -> bool:
        """Whether something accepts a TCP connection on the port."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
                return True
        except OSError:
            return False

    def _stop_process(self) -> None:
        """SIGTERM Prism by PID, SIGKILL it if it lingers, and reap it."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.kill(process.pid, signal.SIGTERM)
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT)
        except ProcessLookupError:
            process.wait(timeout=STOP_TIMEOUT)

    def _cleanup(self) -> None:
        try:
            self._stop_process()
        finally:
            if self._dir is not None:
                self._dir.cleanup()
                self._dir = None
