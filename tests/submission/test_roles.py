"""`mailhaven smtp` runs the submission server alone; `mailhaven serve` runs it beside the
API."""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from mailhaven.submission.tls import SELF_SIGNED_FILE
from tests.submission.conftest import LOGIN, PASSWORD
from tests.support import free_port

CLI = [sys.executable, "-c", "from mailhaven.cli import app; app()"]


@contextmanager
def _running(args: list[str], env: dict[str, str], log: Path,
             port: int) -> Iterator[subprocess.Popen[bytes]]:
    """The command, once it has its certificate and `port` takes connections; stopped as a
    service manager stops it."""
    with open(log, "wb") as out:
        process = subprocess.Popen([*CLI, *args], env={**os.environ, **env},
                                   stdout=subprocess.DEVNULL, stderr=out)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:  # the ports are bound first; the certificate may still be in the making
                if (Path(env["MAILHAVEN_DATA_DIR"]) / SELF_SIGNED_FILE).exists():
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def test_mailhaven_smtp_takes_submissions_on_both_ports(settings, credential, api) -> None:
    ports = {"MAILHAVEN_SMTP_PORT": free_port(), "MAILHAVEN_SMTPS_PORT": free_port()}
    env = {"MAILHAVEN_DATABASE_URL": settings.database_url,
           "MAILHAVEN_DATA_DIR": str(settings.data_dir), "MAILHAVEN_HOSTNAME": "127.0.0.1",
           "MAILHAVEN_REQUIRE_VERIFIED_DOMAINS": "0",
           **{name: str(port) for name, port in ports.items()}}
    with _running(["smtp"], env, settings.data_dir / "smtp.log",
                  ports["MAILHAVEN_SMTPS_PORT"]) as process:
        context = ssl.create_default_context(cafile=str(settings.data_dir / SELF_SIGNED_FILE))
        message = ("From: news@mg.acme.test\r\nTo: ann@example.org\r\nSubject: Hi\r\n"
                   "X-Mailgun-Tag: role\r\n\r\nHello\r\n")
        with smtplib.SMTP_SSL("127.0.0.1", ports["MAILHAVEN_SMTPS_PORT"], timeout=60,
                              context=context) as client:
            client.login(LOGIN, PASSWORD)
            client.sendmail("news@mg.acme.test", ["ann@example.org"], message)
        with smtplib.SMTP("127.0.0.1", ports["MAILHAVEN_SMTP_PORT"], timeout=60) as client:
            client.starttls(context=context)
            client.login(LOGIN, PASSWORD)
            client.sendmail("news@mg.acme.test", ["bob@example.org"], message)
    assert process.returncode == 0
    events = api.get("/v3/mg.acme.test/events", params={"event": "accepted"}).json()["items"]
    assert sorted(e["recipient"] for e in events) == ["ann@example.org", "bob@example.org"]
    assert {(e["method"], tuple(e["tags"])) for e in events} == {("smtp", ("role",))}
    log = (settings.data_dir / "smtp.log").read_text()
    assert '"kind": "smtp-session"' in log and '"status": 250' in log
    assert "ann@example.org" not in log and LOGIN not in log  # no address in a log line


def test_serve_listens_for_submissions_beside_the_api(tmp_path) -> None:
    http, smtp = free_port(), free_port()
    env = {"MAILHAVEN_DATA_DIR": str(tmp_path / "var"), "MAILHAVEN_DATABASE_URL": "",
           "MAILHAVEN_HTTP_PORT": str(http), "MAILHAVEN_MX_PORT": str(free_port()),
           "MAILHAVEN_SMTP_PORT": str(smtp), "MAILHAVEN_SMTPS_PORT": "0"}
    with _running(["serve"], env, tmp_path / "serve.log", smtp):
        deadline = time.monotonic() + 60
        while True:
            try:
                assert httpx.get(f"http://127.0.0.1:{http}/healthz").status_code == 200
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        with smtplib.SMTP("127.0.0.1", smtp, timeout=60) as client:
            client.ehlo()
            assert "starttls" in client.esmtp_features
            assert client.mail("news@mg.acme.test")[0] == 530
    assert (tmp_path / "var" / SELF_SIGNED_FILE).exists()
