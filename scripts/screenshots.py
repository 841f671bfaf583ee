"""`make screenshots`: PNGs of the main pages in docs/screenshots/, taken in Debian's
chromium (Playwright) from a real `mailhaven serve --dev` on a throwaway data directory.

What a newcomer sees after `make run`: the demo account, a few messages sent through the
API with the printed key and delivered to the dev mailbox, then each page of the panel
and of the public site, on a desktop-sized window (and the overview on a phone)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright
from rich.console import Console
from rich.progress import Progress

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PUBLIC = [("home", "/"), ("signup", "/signup"), ("login", "/login"), ("privacy", "/privacy"),
          ("privacy-center", "/privacy-center"), ("contact", "/contact")]
PANEL = [("overview", "/app"), ("domains", "/app/domains"),
         ("domain", "/app/domains/demo.mailhaven.test"), ("keys", "/app/keys"),
         ("smtp", "/app/smtp"), ("logs", "/app/logs"), ("suppressions", "/app/suppressions"),
         ("webhooks", "/app/webhooks"), ("templates", "/app/templates"),
         ("routes", "/app/routes"), ("team", "/app/team"), ("settings", "/app/settings"),
         ("panel-privacy", "/app/privacy"), ("mailbox", "/dev/mailbox")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(data_dir: Path) -> tuple[subprocess.Popen[str], str, dict[str, str]]:
    """`serve --dev` and what it printed: the base URL, the key, the panel login."""
    port = free_port()
    env = {**os.environ, "MAILHAVEN_DATA_DIR": str(data_dir), "MAILHAVEN_HTTP_PORT": str(port),
           "MAILHAVEN_DEV_CAPTURE_PORT": str(free_port()), "MAILHAVEN_MX_PORT": str(free_port()),
           "MAILHAVEN_SMTP_PORT": str(free_port()), "MAILHAVEN_SMTPS_PORT": "0",
           "COLUMNS": "400"}
    env.pop("MAILHAVEN_DATABASE_URL", None)
    command = [str(Path(sys.executable).parent / "mailhaven"), "serve", "--dev"]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,  # noqa: S603 (ours)
                              stderr=subprocess.DEVNULL, text=True)
    assert server.stdout is not None
    output, deadline = "", time.monotonic() + 60
    while "curl" not in output:
        if time.monotonic() > deadline or server.poll() is not None:
            raise SystemExit(f"serve --dev did not start:\n{output}")
        output += server.stdout.readline()
    # Keep reading what it prints, so a full pipe never stops it.
    threading.Thread(target=server.stdout.read, daemon=True).start()
    key = re.search(r"API key:\s+(\S+)", output)
    login = re.search(r"log in as (\S+) with (\S+)", output)
    if key is None or login is None:
        raise SystemExit(f"no key or login in the welcome:\n{output}")
    base = f"http://127.0.0.1:{port}"
    while True:
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    return server, base, {"key": key.group(1), "user": login.group(1),
                          "password": login.group(2)}


def send_some(base: str, key: str) -> None:
    with httpx.Client(base_url=base, auth=("api", key)) as api:
        for i, who in enumerate(["ann@example.org", "bob@example.org", "cleo@example.org"]):
            api.post("/v3/demo.mailhaven.test/messages", data={
                "from": "Demo Shop <shop@demo.mailhaven.test>", "to": who,
                "subject": f"Your order #{1041 + i} has shipped", "o:tag": "orders",
                "text": "It is on its way.",
                "html": "<h1>It is on its way</h1><p>Thank you for your order.</p>"})
        api.post("/v3/demo.mailhaven.test/bounces",
                 data={"address": "gone@example.org", "code": "550", "error": "No such user"})
    time.sleep(3)  # delivered to the dev mailbox meanwhile


def shoot(page: Page, base: str, name: str, path: str) -> None:
    page.goto(base + path)
    page.wait_for_load_state("load")
    page.wait_for_timeout(300)  # charts and copy buttons settle (the logs page streams: never idle)
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)


def main() -> None:
    console = Console()
    if not Path(CHROMIUM).exists():
        raise SystemExit("chromium is not installed: `make browser` installs Debian's package")
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        server, base, demo = start(Path(tmp) / "var")
        try:
            send_some(base, demo["key"])
            with sync_playwright() as playwright, Progress(console=console) as progress:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS,
                                                     env={**os.environ, "HOME": tmp})
                task = progress.add_task("screenshots", total=len(PUBLIC) + len(PANEL) + 1)
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                for name, path in PUBLIC:  # the first with the cookie banner, then chosen
                    shoot(page, base, name, path)
                    banner = page.get_by_role("button", name="Essential only")
                    if banner.count():
                        banner.click()
                    progress.advance(task)
                page.goto(f"{base}/login")
                page.get_by_label("E-mail address").fill(demo["user"])
                page.get_by_label("Password").fill(demo["password"])
                page.get_by_role("button", name="Log in").click()
                page.wait_for_load_state()
                for name, path in PANEL:
                    shoot(page, base, name, path)
                    progress.advance(task)
                phone = browser.new_page(viewport={"width": 390, "height": 844},
                                         device_scale_factor=2)
                phone.context.add_cookies(page.context.cookies())
                shoot(phone, base, "overview-phone", "/app")
                progress.advance(task)
                browser.close()
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
    console.print(f"[green]wrote {len(PUBLIC) + len(PANEL) + 1} PNGs to {OUT}")


if __name__ == "__main__":
    main()
