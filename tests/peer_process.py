"""A third-party server run for a test on 127.0.0.1: started on a free port (another is tried if it was taken
meanwhile), waited for, and stopped by PID, with its log in a private temp directory."""
from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from pathlib import Path

STOP_TIMEOUT = 5.0


def stop_process(process: subprocess.Popen | None) -> None:
    """SIGTERM a process by PID, SIGKILL it if it lingers, and reap it."""
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


class PeerProcess:
    """Context manager base: subclasses give `name`, `launch(root, attempt)` and `wait_ready()`; `.url` is the
    peer's base URL and `.log_text` the end of what it wrote."""

    name = "peer"
    log_name = "peer.log"

    def __init__(self, port: int | None = None, attempts: int = 3):
        self.port = port or 0
        self.fixed_port = port
        self.attempts = attempts if port is None else 1
        self.process: subprocess.Popen | None = None
        self._dir: tempfile.TemporaryDirectory | None = None

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT"""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path | None:
        """Where the peer's output goes (None before start)."""
        return None if self._dir is None else Path(self._dir.name) / self.log_name

    @property
    def log_text(self) -> str:
        """The end of what the peer wrote so far (for failure messages)."""
        path = self.log_path
        return path.read_text(errors="replace")[-3000:] if path is not None and path.exists() else ""

    def launch(self, root: Path, attempt: int) -> subprocess.Popen:
        """Start the peer on self.port, its output to self.log_path."""
        raise NotImplementedError

    def wait_ready(self) -> str:
        """'' once the peer serves; else why not."""
        raise NotImplementedError

    def wait_http_ready(self, path: str, timeout: float) -> str:
        """'' once GET `path` answers 200; else why not (the process exited, or `timeout` seconds passed)."""
        import time

        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return f"process exited with {self.process and self.process.returncode}"
            try:
                if requests.get(self.url + path, timeout=1.0).status_code == 200:
                    return ""
            except requests.RequestException:
                pass
            time.sleep(0.05)
        return f"no 200 from {path} within {timeout:g} s"

    def __enter__(self):
        from helpers_net import free_port

        self._dir = tempfile.TemporaryDirectory(prefix=f"tray-alerts-{self.name}-")
        problem = ""
        try:
            for attempt in range(self.attempts):
                self.port = self.fixed_port or free_port()
                self.process = self.launch(Path(self._dir.name), attempt)
                problem = self.wait_ready()
                if not problem:
                    return self
                self._stop()  # e.g. the picked port was taken meanwhile: try another
        except BaseException:
            self._cleanup()
            raise
        log_text = self.log_text
        self._cleanup()
        raise RuntimeError(f"{self.name} did not start: {problem}\n{log_text}")

    def __exit__(self, *exc: object) -> None:
        self._cleanup()

    def _stop(self) -> None:
        process, self.process = self.process, None
        stop_process(process)

    def _cleanup(self) -> None:
        try:
            self._stop()
        finally:
            if self._dir is not None:
                self._dir.cleanup()
                self._dir = None
