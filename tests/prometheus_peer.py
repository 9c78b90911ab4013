"""A real Prometheus server (Debian's `prometheus`) run for a test: it scrapes the targets it is given every
second, and `.query()` asks its HTTP API what it scraped."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from peer_process import PeerProcess

READY_TIMEOUT = 30.0
CONFIG = """global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
{jobs}
"""
JOB = """  - job_name: {name}
    static_configs: [{{targets: ['{target}']}}]
    authorization: {{type: Bearer, credentials_file: '{token_file}'}}
"""


def skip_unless_prometheus() -> str:
    """The prometheus binary, or skip the test saying what to install."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("needs Prometheus (apt: prometheus)")
    return binary


class PrometheusPeer(PeerProcess):
    """Prometheus scraping `jobs` (name -> (host:port, token)) every second, its storage in a temp dir."""

    name = "Prometheus"
    log_name = "prometheus.log"

    def __init__(self, jobs: dict[str, tuple[str, str]]):
        super().__init__()
        self.jobs = jobs

    def __enter__(self) -> PrometheusPeer:
        self.binary = skip_unless_prometheus()
        return super().__enter__()

    def launch(self, root: Path, attempt: int) -> subprocess.Popen:
        jobs = []
        for name, (target, token) in self.jobs.items():
            token_file = root / f"{name}.token"
            token_file.write_text(token)
            jobs.append(JOB.format(name=name, target=target, token_file=token_file))
        config = root / "prometheus.yml"
        config.write_text(CONFIG.format(jobs="".join(jobs)))
        storage = root / f"data-{attempt}"
        with open(root / self.log_name, "ab") as log:
            return subprocess.Popen(
                [self.binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{self.port}",
                 f"--storage.tsdb.path={storage}", "--log.level=warn"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=root)

    def wait_ready(self) -> str:
        """'' once GET /-/ready answers 200; else why not."""
        return self.wait_http_ready("/-/ready", READY_TIMEOUT)

    def query(self, expression: str) -> dict[tuple[tuple[str, str], ...], float]:
        """An instant query: each series' labels (without __name__) -> its value."""
        response = requests.get(self.url + "/api/v1/query", params={"query": expression}, timeout=5.0)
        response.raise_for_status()
        return {tuple(sorted((k, v) for k, v in result["metric"].items() if k != "__name__")):
                float(result["value"][1]) for result in response.json()["data"]["result"]}
