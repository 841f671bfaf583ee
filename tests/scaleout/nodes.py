"""Mailhaven processes of their own (`mailhaven serve`, `mailhaven worker`) on the test's
database, each with a data directory of its own as on a machine of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from mailhaven.services import Services
from tests.support import free_port

START_SECONDS = 90  # importing everything on a loaded 2-core machine is slow


class Node:
    """One process; `http` and `mx` are its ports when it serves."""

    def __init__(self, services: Services, folder: Path, role: str = "serve", *,
                 relay: int | None = None, **env: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.role, self.folder = role, folder
        self.http, self.mx = free_port(), free_port()
        settings = services.settings
        self.env = {**os.environ,
                    "MAILHAVEN_DATABASE_URL": settings.resolved_database_url,
                    "MAILHAVEN_DATA_DIR": str(folder),
                    "MAILHAVEN_MASTER_KEY_FILE": str(settings.resolved_master_key_file),
                    "MAILHAVEN_HTTP_PORT": str(self.http),
                    "MAILHAVEN_SMTP_PORT": str(free_port()),
                    "MAILHAVEN_SMTPS_PORT": "0",
                    "MAILHAVEN_MX_PORT": str(self.mx),
                    "MAILHAVEN_HOSTNAME": "mx.mailhaven.test",
                    "MAILHAVEN_REQUIRE_VERIFIED_DOMAINS": "0",
                    "MAILHAVEN_ALLOW_PRIVATE_MX": "1",
                    "MAILHAVEN_LEASE_SECONDS": "30",
                    "MAILHAVEN_WORKER_CONCURRENCY": "10",
                    **({"MAILHAVEN_RELAYHOST": f"127.0.0.1:{relay}"} if relay else {}),
                    **{f"MAILHAVEN_{k.upper()}": v for k, v in env.items()}}
        self.log = folder / f"{role}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http}"

    def start(self) -> Node:
        with open(self.log, "wb") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-c", "from mailhaven.cli import app; app()", self.role],
                env=self.env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def wait_ready(self) -> None:
        """Until the API answers (serve) or the process has logged that it started."""
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, self.output()
            if self.role == "serve":
                try:
                    if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
            elif b'"state": "started"' in self.log.read_bytes():
                return
            time.sleep(0.1)
        raise AssertionError(f"{self.role} did not start: {self.output()}")

    def client(self, api_key: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=("api", api_key), timeout=30)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Cluster:
    """Several nodes started together (their imports overlap) and stopped together."""

    def __init__(self, *nodes: Node) -> None:
        self.nodes = nodes

    def __enter__(self) -> Cluster:
        try:
            for node in self.nodes:
                node.start()
            for node in self.nodes:
                node.wait_ready()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.send_signal(signal.SIGTERM)
        for node in self.nodes:
            node.stop()
