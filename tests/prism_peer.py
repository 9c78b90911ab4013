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
import socket
import subprocess
from pathlib import Path

from peer_process import PeerProcess
from polling import wait_until

PEERS = Path(__file__).resolve().parent.parent / ".ci" / "peers"
PRISM = PEERS / "node_modules" / ".bin" / "prism"
# Twilio's own OpenAPI 3 spec of api.twilio.com 2010-04-01, as the Twilio CLI ships it
TWILIO_API_SPEC = PEERS / "node_modules" / "@twilio" / "cli-core" / "src" / "services" / "twilio-api" / \
    "twilio_api_v2010.json"
INSTALL_HINT = "run: npm ci --prefix .ci/peers --ignore-scripts"
READY_TIMEOUT = 30.0  # Prism parses the whole spec (1.9 MB) before it listens: about 3 s here


def prism_missing(spec: Path) -> str:
    """Why Prism cannot run on `spec` here (a skip reason), or '' when it can."""
    if shutil.which("node") is None:
        return "needs node (Prism is a Node.js program)"
    for path, what in ((PRISM, "Prism"), (spec, "the OpenAPI spec")):
        if not path.is_file():
            return f"{what} is not installed ({path.relative_to(PEERS.parent.parent)} missing): {INSTALL_HINT}"
    return ""


class PrismPeer(PeerProcess):
    """Context manager running one `prism mock --errors SPEC`; `.url` is its base URL."""

    name = "Prism"
    log_name = "prism.log"

    def __init__(self, spec: Path, attempts: int = 3):
        super().__init__(attempts=attempts)
        self.spec = spec

    def launch(self, root: Path, attempt: int) -> subprocess.Popen:
        """Launch Prism on 127.0.0.1:port, its output to the log file."""
        env = {**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0"}  # a plain log
        command = [str(PRISM), "mock", str(self.spec), "--host", "127.0.0.1", "--port", str(self.port), "--errors",
                   "--cors=false"]
        with open(self.log_path or os.devnull, "ab") as log:
            return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    cwd=PEERS, env=env)

    def wait_ready(self) -> str:
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
