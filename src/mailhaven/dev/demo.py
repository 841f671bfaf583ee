"""The demo account and domain that `make run` creates, and the welcome it prints."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from rich.console import Console
from sqlalchemy import select

from mailhaven.accounts.models import Account
from mailhaven.accounts.service import create_account, issue_key, revoke_keys
from mailhaven.config import Settings
from mailhaven.domains.models import Domain
from mailhaven.domains.service import create_domain
from mailhaven.services import Services
from mailhaven.users.service import create_user, find_by_email, hash_password
from mailhaven.users.sessions import end_user_sessions

DEMO_DOMAIN = "demo.mailhaven.test"
DEMO_KEY = "development session"
DEMO_USER = "demo@mailhaven.test"


@dataclass(frozen=True)
class Demo:
    account_id: str
    domain: str
    api_key: str
    user: str  # the panel's login
    password: str  # new each start, like the key


def ensure_demo(services: Services) -> Demo:
    """Create the demo account, domain and panel user once; issue a fresh key and password
    each start (both are stored hashed, so the previous ones cannot be shown again)."""
    marker = services.settings.data_dir / "demo.json"
    password = secrets.token_urlsafe(12)
    password_hash = hash_password(password)  # before the transaction: argon2id is slow
    with services.db.transaction() as session:
        account_id = json.loads(marker.read_text())["account_id"] if marker.exists() else None
        if account_id is None or session.get(Account, account_id) is None:
            account_id = create_account(session, services.vault, name="Demo",
                                        email="demo@mailhaven.test").account_id
            marker.write_text(json.dumps({"account_id": account_id}))
        if session.scalar(select(Domain).where(Domain.name == DEMO_DOMAIN,
                                               Domain.account_id == account_id)) is None:
            create_domain(session, services.vault, account_id, {"name": DEMO_DOMAIN},
                          services.clock)
        revoke_keys(session, account_id, description=DEMO_KEY)
        api_key = issue_key(session, account_id, description=DEMO_KEY)
        user = find_by_email(session, services.vault, DEMO_USER)
        if user is None:
            create_user(session, services.vault, account_id=account_id, name="Demo",
                        email=DEMO_USER, password_hash=password_hash, role="admin",
                        clock=services.clock, confirmed=True)
        elif user.account_id == account_id:
            user.password_hash = password_hash
            end_user_sessions(session, user.id)
    return Demo(account_id, DEMO_DOMAIN, api_key, DEMO_USER, password)


def print_welcome(settings: Settings, demo: Demo) -> None:
    base = f"http://{settings.http_host}:{settings.http_port}"
    console = Console()
    console.rule("[bold]Mailhaven (development mode)")
    console.print(f"Panel:    {base}/app  — log in as [bold]{demo.user}[/bold] with "
                  f"[bold yellow]{demo.password}[/bold yellow]  (new each start)",
                  highlight=False)
    console.print(f"API:      {base}  (Mailgun-compatible; OpenAPI at {base}/docs)")
    console.print(f"Mailbox:  {base}/dev/mailbox  — outbound mail is captured here, "
                  "nothing leaves this machine")
    console.print(f"Account:  {demo.account_id}  (the CLI's --account; "
                  "`mailhaven accounts list`)", highlight=False)
    console.print(f"API key:  [bold yellow]{demo.api_key}[/bold yellow]  (new each start)")
    console.print("Send a message:")
    console.print(
        f"  curl -s --user 'api:{demo.api_key}' {base}/v3/{demo.domain}/messages "
        f"-F from='Demo <demo@{demo.domain}>' -F to='you@example.com' "
        f"-F subject='Hello from Mailhaven' -F text='It works.'",
        soft_wrap=True, highlight=False)
    console.rule()
