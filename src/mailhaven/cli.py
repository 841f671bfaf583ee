"""The `mailhaven` command: serve, worker, migrate, and the admin commands of the contract."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from mailhaven.audit.cli import app as audit_app
from mailhaven.backup.cli import backup_app
from mailhaven.config import Settings
from mailhaven.privacy.commands import register as register_privacy_commands
from mailhaven.privacy_cli import privacy_app
from mailhaven.services import Services
from mailhaven.wiring import wire


def _settings() -> Settings:
    """The environment's settings, or a one-line error (not a traceback) saying what's wrong."""
    try:
        return Settings.from_env()
    except ValueError as exc:  # a bad number, a bad shaping rule...
        typer.echo(f"mailhaven: configuration error: {exc}", err=True)
        raise typer.Exit(2) from None


app = typer.Typer(help="Mailhaven: Mailgun-compatible email delivery.", no_args_is_help=True)
accounts_app = typer.Typer(help="Accounts and their API keys.", no_args_is_help=True)
domains_app = typer.Typer(help="Sending domains.", no_args_is_help=True)
mailbox_app = typer.Typer(help="The development mailbox (serve --dev).", no_args_is_help=True)
vault_app = typer.Typer(help="The vault's master key.", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")
app.add_typer(domains_app, name="domains")
app.add_typer(mailbox_app, name="mailbox")
app.add_typer(audit_app, name="audit")
app.add_typer(privacy_app, name="privacy")
app.add_typer(vault_app, name="vault")
app.add_typer(backup_app, name="backup")

console = Console()
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-command chatter


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


def _services() -> Services:
    services = Services.start(_settings())
    wire()
    return services


register_privacy_commands(privacy_app, _services)


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema."""
    _services().close()
    console.print("[green]Database is at the newest schema.[/green]")


@app.command()
def serve(
    dev: Annotated[bool, typer.Option(help="Deliver to a local capture mailbox, not to MX.")]
    = False,
    host: Annotated[str | None, typer.Option(help="HTTP host (MAILHAVEN_HTTP_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (MAILHAVEN_HTTP_PORT).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="MAILHAVEN_DATA_DIR.")] = None,
    database_url: Annotated[str | None, typer.Option(help="MAILHAVEN_DATABASE_URL.")] = None,
    relayhost: Annotated[str | None, typer.Option(help="host:port (MAILHAVEN_RELAYHOST).")]
    = None,
    master_key_file: Annotated[Path | None, typer.Option(
        help="MAILHAVEN_MASTER_KEY_FILE.")] = None,
    metrics_port: Annotated[int | None, typer.Option(
        help="Serve Prometheus metrics on 127.0.0.1:PORT/metrics.")] = None,
) -> None:
    """Run the HTTP API and the delivery worker in one process."""
    from mailhaven.config import parse_hostport
    from mailhaven.server import run_server

    _logging()
    settings = _settings()
    settings = settings.with_(
        http_host=host or settings.http_host, http_port=port or settings.http_port,
        data_dir=data_dir or settings.data_dir,
        database_url=database_url or settings.database_url,
        relayhost=parse_hostport(relayhost) if relayhost else settings.relayhost,
        master_key_file=master_key_file or settings.master_key_file)
    if dev and not _is_loopback(settings.http_host):
        err.print("[red]--dev serves the captured mail without a password: "
                  "it listens on loopback only.[/red]")
        raise typer.Exit(2)
    _serve_metrics(metrics_port)
    asyncio.run(run_server(settings, dev=dev))


@app.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(help="Attempts in flight at once.")] = None,
    metrics_port: Annotated[int | None, typer.Option(
        help="Serve Prometheus metrics on 127.0.0.1:PORT/metrics.")] = None,
) -> None:
    """Run a delivery worker; any number of them may share one PostgreSQL."""
    from mailhaven.server import run_worker

    _logging()
    _serve_metrics(metrics_port)
    asyncio.run(run_worker(_settings(), concurrency=concurrency))


def _serve_metrics(port: int | None) -> None:
    """This process's metrics on a loopback port of their own, with no token: whoever can
    reach 127.0.0.1 is on this machine."""
    if port is not None:
        from prometheus_client import start_http_server

        start_http_server(port, addr="127.0.0.1")


@accounts_app.command("create")
def accounts_create(
    name: Annotated[str, typer.Option(help="Account (company) name.")],
    email: Annotated[str, typer.Option(help="Account holder's email.")],
    region: Annotated[str, typer.Option(help="us or eu.")] = "us",
    as_json: JsonOpt = False,
) -> None:
    """Create an account and print its first API key (shown once)."""
    from mailhaven.accounts.service import create_account

    services = _services()
    try:
        with services.db.transaction() as session:
            issued = create_account(session, services.vault, name=name, email=email,
                                    region=region, clock=services.clock)
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    finally:
        services.close()
    result = {"account_id": issued.account_id, "api_key": issued.api_key}
    if as_json:
        print(json.dumps(result))
    else:
        console.print(f"Account [bold]{issued.account_id}[/bold] created.")
        console.print(f"API key (shown once): [bold yellow]{issued.api_key}[/bold yellow]")


@domains_app.command("add")
def domains_add(
    name: Annotated[str, typer.Argument(help="Domain name, e.g. mg.example.com.")],
    account: Annotated[str, typer.Option(help="Account id.")],
    dkim_algorithm: Annotated[str, typer.Option(
        help="rsa, or ed25519 to sign with an Ed25519 key beside the RSA one.")] = "rsa",
    dkim_key_size: Annotated[int, typer.Option(help="RSA key size: 1024 or 2048.")] = 2048,
    dkim_selector: Annotated[str | None, typer.Option(help="Default: mhYYYYMM.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a sending domain with fresh DKIM keys; print the DNS records to publish."""
    from mailhaven.accounts.models import Account
    from mailhaven.domains.reserved import operator_names
    from mailhaven.domains.service import add_domain, domain_response, new_domain
    from mailhaven.errors import MailhavenError

    fields = {"name": name, "dkim_algorithm": dkim_algorithm,
              "dkim_key_size": str(dkim_key_size), "dkim_selector": dkim_selector or ""}
    services = _services()
    try:
        domain = new_domain(services.vault, account, fields, services.clock,
                            reserved=operator_names(services.settings))
        with services.db.transaction() as session:
            if session.get(Account, account) is None:
                raise MailhavenError(f"Account not found: {account}")
            body = domain_response(add_domain(session, domain), services.settings.hostname)
    except MailhavenError as exc:
        err.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(2) from exc
    finally:
        services.close()
    _print_records(f"Domain [bold]{name}[/bold] added. Publish these records:", body, as_json)


@domains_app.command("rotate-dkim")
def domains_rotate_dkim(
    name: Annotated[str, typer.Argument(help="Domain name.")],
    algorithm: Annotated[str, typer.Option(help="Key to rotate: rsa or ed25519.")] = "rsa",
    key_size: Annotated[int, typer.Option(help="RSA key size: 1024 or 2048.")] = 2048,
    selector: Annotated[str | None, typer.Option(help="Default: mhYYYYMM.")] = None,
    account: Annotated[str | None, typer.Option(
        help="Account id: needed when several accounts have added the name.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Start a DKIM key rotation: a new key, published beside the current one, signs once
    DNS shows its record (the next verify); the old key stays published for a week."""
    from sqlalchemy import select

    from mailhaven.domains import service
    from mailhaven.domains.models import Domain
    from mailhaven.errors import MailhavenError, NotFound

    services = _services()
    try:
        pair, chosen = service.rotation_key({"dkim_algorithm": algorithm,
                                             "dkim_key_size": str(key_size),
                                             "dkim_selector": selector or ""})
        with services.db.transaction() as session:
            if account is None:  # unverified copies of a name may be in several accounts
                holders = session.scalars(select(Domain.account_id).where(
                    Domain.name == name.strip().lower()).limit(2)).all()
                if len(holders) > 1:
                    raise MailhavenError(f"Several accounts have added {name}: name one "
                                         f"with --account")
                account = holders[0] if holders else None
            if account is None:
                raise NotFound("Domain not found")
            domain = service.rotate_dkim(session, services.vault, account, name, pair, chosen,
                                         services.clock)
            body = {"dkim_keys": service.dkim_keys_json(domain),
                    **service.domain_response(domain, services.settings.hostname)}
    except MailhavenError as exc:
        err.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(2) from exc
    finally:
        services.close()
    _print_records(f"New DKIM key for [bold]{name}[/bold]. Publish these records; the new key "
                   "signs once verification sees it:", body, as_json)


def _print_records(title: str, body: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(body))
        return
    console.print(title)
    table = Table("type", "name", "value")
    for record in body["sending_dns_records"] + body["receiving_dns_records"]:
        table.add_row(record["record_type"], record["name"], record["value"])
    console.print(table)


@vault_app.command("rotate-master-key")
def vault_rotate_master_key(
    add_key_only: Annotated[bool, typer.Option(
        "--add-key-only", help="Only add the new key to the key file (to copy it to every "
        "machine first); run again without this flag to finish.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Re-wrap every data key and sealed secret under a new master key (KEK). Safe to
    interrupt: the key file keeps the old KEK until the end, and a rerun finishes."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

    from mailhaven.models import metadata
    from mailhaven.vault import rotation

    settings = _settings()
    key_file = settings.resolved_master_key_file
    if not key_file.exists():
        err.print(f"[red]No master key file at {key_file}[/red]")
        raise typer.Exit(2)
    services = Services.start(settings)
    columns = rotation.wrapped_columns(metadata)
    try:
        keyring = rotation.begin(key_file)
        if add_key_only:
            result = {"state": "key added", "kek_versions": sorted(keyring.keks)}
        else:
            totals = rotation.count(services.db, columns)
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          console=err, disable=as_json) as bar:
                tasks: dict[tuple[int, str], TaskID] = {}

                def advance(number: int, wrapped: rotation.WrappedColumn, rows: int) -> None:
                    if (number, wrapped.name) not in tasks:
                        step = "re-wrap" if number == 1 else f"check (pass {number})"
                        tasks[number, wrapped.name] = bar.add_task(
                            f"{step} {wrapped.name}", total=totals[wrapped.name])
                    bar.advance(tasks[number, wrapped.name], rows)

                done = rotation.rotate(services.db, services.vault, key_file, columns,
                                       progress=advance)
            result = {"state": "rotated", "kek_versions": [keyring.current],
                      "rows_rewrapped": done.rewrapped}
    except rotation.RotationError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    finally:
        services.close()
    if as_json:
        print(json.dumps(result))
    elif add_key_only:
        console.print(f"New master key added to {key_file}. Copy the file to every machine, "
                      "then run this command again without --add-key-only.")
    else:
        console.print(f"Master key rotated: {result['rows_rewrapped']} wrapped keys and "
                      f"secrets moved to key version {keyring.current}; the old key is gone "
                      f"from {key_file}. The blind-index key is unchanged.")


def _mailbox_folder() -> Path:
    return _settings().data_dir / "dev-mailbox"


@mailbox_app.command("list")
def mailbox_list(as_json: JsonOpt = False) -> None:
    """List the messages the development mailbox captured, newest first."""
    from mailhaven.dev.mailbox import list_captured

    messages = list_captured(_mailbox_folder())
    if as_json:
        print(json.dumps([{"id": m.id, "to": m.rcpt_tos, "subject": m.subject,
                           "received_at": m.received_at} for m in messages]))
        return
    table = Table("id", "to", "subject")
    for m in messages:
        table.add_row(m.id, ", ".join(m.rcpt_tos), m.subject)
    console.print(table)


@mailbox_app.command("show")
def mailbox_show(message_id: str) -> None:
    """Print one captured message as received."""
    from mailhaven.dev.mailbox import read_captured

    captured = read_captured(_mailbox_folder(), message_id)
    if captured is None:
        err.print(f"[red]No captured message {message_id}[/red]")
        raise typer.Exit(1)
    sys.stdout.write(captured.data.decode("utf-8", "replace"))
