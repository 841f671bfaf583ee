"""The admin CLI of the contract, and the first start that `make run` gives a newcomer."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time

import httpx

from tests.support import free_port
from tests.web.helpers import http_log_in

CLI = [sys.executable, "-c", "from mailhaven.cli import app; app()"]


def _cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=120)


def test_accounts_create_and_domains_add_print_json_the_api_accepts(settings, services) -> None:
    env = {"MAILHAVEN_DATABASE_URL": settings.database_url,
           "MAILHAVEN_DATA_DIR": str(settings.data_dir), "MAILHAVEN_HOSTNAME": "mx.test"}
    made = _cli(env, "accounts", "create", "--name", "Initech", "--email", "it@initech.test",
                "--json")
    assert made.returncode == 0, made.stderr
    account = json.loads(made.stdout)
    assert set(account) == {"account_id", "api_key"}

    added = _cli(env, "domains", "add", "--account", account["account_id"], "mg.initech.test",
                 "--json")
    assert added.returncode == 0, added.stderr
    body = json.loads(added.stdout)
    assert body["domain"]["name"] == "mg.initech.test"
    types = [r["record_type"] for r in body["sending_dns_records"]]
    assert types == ["TXT", "TXT", "CNAME"]

    again = _cli(env, "domains", "add", "--account", account["account_id"], "mg.initech.test")
    assert again.returncode == 2 and "already taken" in again.stderr

    from tests.support import LiveServer
    with LiveServer(services) as live, live.client(account["api_key"]) as api:
        listed = api.get("/v3/domains").json()
    assert [d["name"] for d in listed["items"]] == ["mg.initech.test"]


def test_domains_add_with_ed25519_and_rotate_dkim(settings, services, account) -> None:
    env = {"MAILHAVEN_DATABASE_URL": settings.database_url,
           "MAILHAVEN_DATA_DIR": str(settings.data_dir), "MAILHAVEN_HOSTNAME": "mx.test"}
    added = _cli(env, "domains", "add", "--account", account[0], "ed.initech.test",
                 "--dkim-algorithm", "ed25519", "--dkim-key-size", "1024", "--json")
    assert added.returncode == 0, added.stderr
    values = [r["value"] for r in json.loads(added.stdout)["sending_dns_records"]
              if "._domainkey." in r["name"]]
    assert [v.split(" p=")[0] for v in values] == ["k=rsa;", "v=DKIM1; k=ed25519;"]

    rotated = _cli(env, "domains", "rotate-dkim", "ed.initech.test", "--key-size", "1024",
                   "--selector", "next", "--json")
    assert rotated.returncode == 0, rotated.stderr
    keys = json.loads(rotated.stdout)["dkim_keys"]
    assert [(k["algorithm"], k["state"]) for k in keys] == [
        ("rsa-sha256", "active"), ("ed25519-sha256", "active"), ("rsa-sha256", "pending")]
    assert keys[2]["dns_record"]["name"] == "next._domainkey.ed.initech.test"

    missing = _cli(env, "domains", "rotate-dkim", "nope.initech.test")
    assert missing.returncode == 2 and "Domain not found" in missing.stderr
    bad = _cli(env, "domains", "add", "--account", account[0], "x.initech.test",
               "--dkim-algorithm", "dsa")
    assert bad.returncode == 2 and "dkim_algorithm" in bad.stderr


def test_accounts_create_rejects_an_unknown_region(settings) -> None:
    env = {"MAILHAVEN_DATABASE_URL": settings.database_url,
           "MAILHAVEN_DATA_DIR": str(settings.data_dir)}
    made = _cli(env, "accounts", "create", "--name", "X", "--email", "x@x.test",
                "--region", "mars")
    assert made.returncode == 2 and "region" in made.stderr


def test_serve_dev_prints_a_curl_line_that_sends_a_signed_message(tmp_path) -> None:
    http_port, capture_port, metrics_port = free_port(), free_port(), free_port()
    env = {**os.environ, "MAILHAVEN_DATA_DIR": str(tmp_path / "var"),
           "MAILHAVEN_HTTP_PORT": str(http_port),
           "MAILHAVEN_DEV_CAPTURE_PORT": str(capture_port), "COLUMNS": "400",
           "MAILHAVEN_MX_PORT": str(free_port()), "MAILHAVEN_SMTP_PORT": str(free_port()),
           "MAILHAVEN_SMTPS_PORT": "0"}
    env.pop("MAILHAVEN_DATABASE_URL", None)
    with open(tmp_path / "serve.log", "wb") as log:
        server = subprocess.Popen([*CLI, "serve", "--dev", "--metrics-port", str(metrics_port)],
                                  env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        assert server.stdout is not None
        output = ""
        deadline = time.monotonic() + 60
        while "curl" not in output:
            assert time.monotonic() < deadline and server.poll() is None, output
            output += server.stdout.readline()
        curl = re.search(r"^\s*(curl .*)$", output, re.M).group(1)
        base = f"http://127.0.0.1:{http_port}"
        while True:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.1)

        sent = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=30)
        assert json.loads(sent.stdout)["message"] == "Queued. Thank you."
        # The panel's address and the demo user's login, printed beside the key
        panel = re.search(r"Panel:\s+(\S+)\s+— log in as (\S+) with (\S+)", output)
        assert panel is not None and panel.group(1) == f"{base}/app", output
        with httpx.Client(base_url=base) as browser:
            assert http_log_in(browser, panel.group(2), panel.group(3)).status_code == 303
            assert "Demo" in browser.get("/app").text

        page = ""
        while "valid signature" not in page:
            assert time.monotonic() < deadline, page
            time.sleep(0.2)
            page = httpx.get(f"{base}/dev/mailbox").text
        assert "Hello from Mailhaven" in page and "no valid signature" not in page

        listed = _cli({"MAILHAVEN_DATA_DIR": str(tmp_path / "var")}, "mailbox", "list",
                      "--json")
        captured = json.loads(listed.stdout)
        assert [m["subject"] for m in captured] == ["Hello from Mailhaven"]
        shown = _cli({"MAILHAVEN_DATA_DIR": str(tmp_path / "var")}, "mailbox", "show",
                     captured[0]["id"])
        assert "DKIM-Signature:" in shown.stdout and "It works." in shown.stdout
        # Metrics on a loopback port of their own, and (in development) on the API too
        for url in (f"http://127.0.0.1:{metrics_port}/metrics", f"{base}/metrics"):
            assert "mailhaven_messages_accepted_total 1.0" in httpx.get(url).text, url
    finally:
        server.terminate()
        server.wait(timeout=30)
        if server.stdout is not None:
            server.stdout.close()


def test_a_worker_process_delivers_and_serves_its_metrics(api, settings, domain) -> None:
    from tests.support import Sink

    assert api.post(f"/v3/{domain}/messages", data={
        "from": f"ops@{domain}", "to": "ann@example.org", "text": "hi"}).status_code == 200
    port = free_port()
    with Sink() as sink, open(settings.data_dir / "worker.log", "wb") as log:
        env = {**os.environ, "MAILHAVEN_DATABASE_URL": settings.database_url,
               "MAILHAVEN_DATA_DIR": str(settings.data_dir),
               "MAILHAVEN_RELAYHOST": f"127.0.0.1:{sink.port}"}
        worker = subprocess.Popen([*CLI, "worker", "--metrics-port", str(port)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=log)
        try:
            deadline = time.monotonic() + 60
            while not sink.received:
                assert time.monotonic() < deadline and worker.poll() is None
                time.sleep(0.1)
            metrics = ""
            while 'outcome="delivered"} 1.0' not in metrics:
                assert time.monotonic() < deadline, metrics
                time.sleep(0.1)
                metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    assert worker.returncode == 0
    assert b'"outcome": "delivered"' in (settings.data_dir / "worker.log").read_bytes()


def test_serve_dev_refuses_to_listen_beyond_loopback(tmp_path) -> None:
    for host in ("0.0.0.0", "192.0.2.7", "mail.example.com"):
        refused = _cli({"MAILHAVEN_DATA_DIR": str(tmp_path)}, "serve", "--dev", "--host", host)
        assert refused.returncode == 2 and "loopback" in refused.stderr


def test_a_bad_setting_is_one_clear_line_not_a_traceback(tmp_path) -> None:
    for env, says in [({"MAILHAVEN_HTTP_PORT": "abc"}, "MAILHAVEN_HTTP_PORT must be a whole"),
                      ({"MAILHAVEN_SHAPING": "bad rule"}, "MAILHAVEN_SHAPING, rule 1")]:
        result = _cli({"MAILHAVEN_DATA_DIR": str(tmp_path), **env}, "migrate")
        assert result.returncode == 2
        assert says in result.stderr and "Traceback" not in result.stderr


def test_rotate_dkim_asks_which_account_when_several_hold_the_name(settings, services,
                                                                   account) -> None:
    from mailhaven.accounts.service import create_account
    from mailhaven.domains.service import create_domain

    with services.db.transaction() as session:
        other = create_account(session, services.vault, name="B", email="b@b.test")
        for holder in (account[0], other.account_id):  # unverified copies, one each
            create_domain(session, services.vault, holder,
                          {"name": "twice.initech.test", "dkim_key_size": "1024"})
    env = {"MAILHAVEN_DATABASE_URL": settings.database_url,
           "MAILHAVEN_DATA_DIR": str(settings.data_dir), "MAILHAVEN_HOSTNAME": "mx.test"}
    unsure = _cli(env, "domains", "rotate-dkim", "twice.initech.test", "--key-size", "1024")
    assert unsure.returncode == 2 and "--account" in unsure.stderr
    rotated = _cli(env, "domains", "rotate-dkim", "twice.initech.test", "--key-size", "1024",
                   "--account", other.account_id, "--json")
    assert rotated.returncode == 0, rotated.stderr
    assert [k["state"] for k in json.loads(rotated.stdout)["dkim_keys"]] == ["active", "pending"]


def test_accounts_list_shows_the_ids_that_account_wants(settings, services, account,
                                                        domain) -> None:
    env = {"MAILHAVEN_DATABASE_URL": settings.database_url,
           "MAILHAVEN_DATA_DIR": str(settings.data_dir), "COLUMNS": "40"}
    listed = _cli(env, "accounts", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == [{
        "account_id": account[0], "name": "Acme", "region": "us", "deleted": False,
        "domains": [domain], "created_at": json.loads(listed.stdout)[0]["created_at"]}]
    # The CLI says where it looked: a command run from another folder opens another ./var
    assert f"data directory {settings.data_dir.resolve()}" in listed.stderr

    table = _cli(env, "accounts", "list")  # narrow: the id wraps, it is not cut
    assert table.returncode == 0, table.stderr
    assert _column(table.stdout, 0) == account[0], table.stdout


def test_the_records_table_wraps_long_values_instead_of_cutting_them(api, settings,
                                                                       account) -> None:
    env = {"MAILHAVEN_DATABASE_URL": settings.database_url,
           "MAILHAVEN_DATA_DIR": str(settings.data_dir), "COLUMNS": "80"}
    added = _cli(env, "domains", "add", "--account", account[0], "wrap.initech.test")
    assert added.returncode == 0, added.stderr
    records = api.get("/v3/domains/wrap.initech.test").json()["sending_dns_records"]
    [dkim] = [r["value"] for r in records if "._domainkey." in r["name"]]
    assert len(dkim) > 300  # a 2048-bit key: far wider than the terminal
    assert dkim.replace(" ", "") in _column(added.stdout, 2), added.stdout
    assert "--json" in added.stdout


def _column(table: str, index: int) -> str:
    """A rich table's column, its wrapped lines joined (cells separated by spaces)."""
    cells = [line.split("│")[index + 1].strip() for line in table.splitlines()
             if line.startswith("│")]
    return "".join(cells)


def test_a_busy_port_is_one_line_naming_the_setting_to_change(tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = str(taken.getsockname()[1])
        settings = ("MAILHAVEN_HTTP_PORT", "MAILHAVEN_DEV_CAPTURE_PORT", "MAILHAVEN_MX_PORT",
                    "MAILHAVEN_SMTP_PORT", "MAILHAVEN_SMTPS_PORT")
        for setting in settings:
            ports = {name: str(free_port()) for name in settings}
            result = _cli({"MAILHAVEN_DATA_DIR": str(tmp_path / "var"),
                           "MAILHAVEN_DATABASE_URL": "", **ports, setting: busy},
                          "serve", "--dev")
            assert result.returncode == 2, result.stderr
            assert f"Port {busy} is already in use" in result.stderr
            assert f"set {setting} to a free port" in result.stderr
            assert "Traceback" not in result.stderr


def test_a_worker_on_a_dev_data_directory_keeps_mail_and_webhooks_here(api, services,
                                                                      settings, domain) -> None:
    """`serve --dev` runs beside a `mailhaven worker` (docs/delivery.md): the worker must
    not deliver to the recipients' MX hosts nor POST to the customer's webhook URL."""
    from mailhaven.dev.demo import ensure_demo
    from tests.support import Sink

    ensure_demo(services)  # what the first `serve --dev` on this data directory does
    assert api.post(f"/v3/domains/{domain}/webhooks", data={
        "id": "delivered", "url": "https://hooks.example.com/mailhaven"}).status_code == 200
    assert api.post(f"/v3/{domain}/messages", data={
        "from": f"ops@{domain}", "to": "ann@example.org", "text": "hi"}).status_code == 200
    captured = settings.data_dir / "dev-webhooks"
    with Sink() as mailbox, open(settings.data_dir / "worker.log", "wb") as log:
        env = {**os.environ, "MAILHAVEN_DATABASE_URL": settings.database_url,
               "MAILHAVEN_DATA_DIR": str(settings.data_dir),
               "MAILHAVEN_DEV_CAPTURE_PORT": str(mailbox.port)}
        env.pop("MAILHAVEN_RELAYHOST", None)
        worker = subprocess.Popen([*CLI, "worker"], env=env, stdout=subprocess.DEVNULL,
                                  stderr=log)
        try:
            deadline = time.monotonic() + 60
            while not (mailbox.received and captured.exists() and any(captured.iterdir())):
                assert time.monotonic() < deadline and worker.poll() is None
                time.sleep(0.1)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    assert [r.rcpt_tos for r in mailbox.received] == [["ann@example.org"]]
    [hook] = [json.loads(p.read_text()) for p in captured.iterdir()]
    assert hook["url"] == "https://hooks.example.com/mailhaven"
    assert json.loads(hook["body"])["event-data"]["event"] == "delivered"
