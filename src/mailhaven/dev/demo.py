"""The demo account and domain that `make run` creates, and the welcome it prints."""

from __future__ import annotations

import json
from dataclasses import dataclass

from rich.console import Console
from sqlalchemy import select

from mailhaven.accounts.models import Account
from mailhaven.accounts.service import create_account, issue_key, revoke_keys
from mailhaven.config import Settings
from mailhaven.domains.models import Domain
from mailhaven.domains.service import create_domain
from mailhaven.services import Services

DEMO_DOMAIN = "demo.mailhaven.test"
DEMO_KEY = "development session"


@dataclass(frozen=True)
class Demo:
    account_id: str
    domain: str
    api_key: str


def ensure_demo(services: Services) -> Demo:
    """Create the demo account and domain once; issue a fresh key each start (keys are
    stored hashed, so the previous one cannot be shown again)."""
    marker = services.settings.data_dir / "demo.json"
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
    return Demo(account_id, DEMO_DOMAIN, api_key)


def print_welcome(settings: Settings, demo: Demo) -> None:
    base = f"http://{settings.http_host}:{settings.http_port}"
    console = Console()
    console.rule("[bold]Mailhaven (development mode)")
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
