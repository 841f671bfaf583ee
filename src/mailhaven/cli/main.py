"""The root `mailhaven` command: the process roles (serve, worker, smtp, migrate) and each
capability's group of commands, added from its own `cli.py`."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from mailhaven.accounts.cli import app as accounts_app
from mailhaven.accounts.cli import keys_app
from mailhaven.audit.cli import app as audit_app
from mailhaven.backup.cli import app as backup_app
from mailhaven.cli import common
from mailhaven.config import Settings
from mailhaven.credentials.cli import app as credentials_app
from mailhaven.dev.cli import app as mailbox_app
from mailhaven.dev.mode import is_loopback
from mailhaven.disclosures.cli import app as disclosures_app
from mailhaven.domains.cli import app as domains_app
from mailhaven.exports.cli import export
from mailhaven.notices.cli import notice_app, subprocessors_app
from mailhaven.privacy.cli import app as privacy_app
from mailhaven.retention.cli import app as retention_app
from mailhaven.site.cli import app as site_app
from mailhaven.stats.cli import app as stats_app
from mailhaven.vault.cli import app as vault_app

EX_TEMPFAIL = 75  # sysexits.h: try again later


class _Mailhaven(typer.Typer):
    """The root app: a command that meets a full disk or a database that can't be reached
    says so in one red line and exits EX_TEMPFAIL, rather than printing a traceback."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from mailhaven.storage.db import is_out_of_space, is_unavailable

        try:
            return super().__call__(*args, **kwargs)
        except Exception as exc:
            if is_out_of_space(exc):
                problem = (f"no space left ({_cause(exc)}): free some on the disk holding the "
                           f"data directory or the database, then run the command again")
            elif is_unavailable(exc):
                # SQLite says "disk I/O error", not "full", when its journal meets a full disk
                hint = ("; is its disk full?" if "disk i/o" in _cause(exc).lower() else "")
                problem = (f"the database is unavailable ({_cause(exc)}{hint}): run the "
                           f"command again when it is back")
            else:
                raise
        common.err.print(f"mailhaven: {problem}", style="red", markup=False, highlight=False)
        raise SystemExit(EX_TEMPFAIL)


def _cause(exc: BaseException) -> str:
    """The innermost error's words (SQLite's, the OS's): no SQL, no parameters."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    orig = getattr(exc, "orig", None)
    return str(orig if isinstance(orig, BaseException) else exc).splitlines()[0][:200]


app = _Mailhaven(help="Mailhaven: Mailgun-compatible email delivery.", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")
app.add_typer(keys_app, name="keys")
app.add_typer(domains_app, name="domains")
app.add_typer(mailbox_app, name="mailbox")
app.add_typer(audit_app, name="audit")
app.add_typer(privacy_app, name="privacy")
app.add_typer(disclosures_app, name="disclosures")
app.add_typer(vault_app, name="vault")
app.add_typer(backup_app, name="backup")
app.add_typer(credentials_app, name="credentials")
app.add_typer(site_app, name="site")
app.add_typer(stats_app, name="stats")
app.add_typer(notice_app, name="notice")
app.add_typer(subprocessors_app, name="subprocessors")
privacy_app.add_typer(retention_app, name="retention")
privacy_app.command("export")(export)


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-command chatter
    # uvicorn's access line carries the query string (`?address=…`): ours names the route
    # only. Its own access_log=False can be undone by any later logging set-up: not this.
    logging.getLogger("uvicorn.access").disabled = True


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema: the main database's and, split into regions,
    each region's (named in the output; their URLs are not printed: they may hold
    passwords)."""
    platform = common.platform()
    platform.close()
    if not platform.settings.split:
        common.console.print("[green]Database is at the newest schema.[/green]")
        return
    migrated = ["the main database", *(f"region {name}'s database" for name in platform.regions)]
    for name in migrated:
        common.console.print(f"[green]✓[/green] Migrated {name}.")
    common.console.print(f"[green]{len(migrated)} databases are at the newest schema.[/green]")


@app.command()
def serve(
    dev: Annotated[bool, typer.Option(
        help="Development mode: mail, webhooks and DNS stay on this machine.")] = False,
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
    region: Annotated[str | None, typer.Option(
        help="Open only this region (a site per region: its API answers only its accounts).")]
    = None,
) -> None:
    """Run the HTTP API, the SMTP submission server and the delivery worker in one process."""
    from mailhaven.config import parse_hostport
    from mailhaven.server import PortBusy, run_server
    from mailhaven.submission.tls import TlsSetupError

    _logging()
    settings = common.settings()
    settings = settings.with_(
        http_host=host or settings.http_host, http_port=port or settings.http_port,
        data_dir=data_dir or settings.data_dir,
        database_url=database_url or settings.database_url,
        relayhost=parse_hostport(relayhost) if relayhost else settings.relayhost,
        master_key_file=master_key_file or settings.master_key_file)
    if dev and not is_loopback(settings.http_host):
        common.fail("--dev serves the captured mail without a password: "
                    "it listens on loopback only.")
    common.opened(settings)
    _check_region(settings, region)
    try:
        _serve_metrics(metrics_port)
        asyncio.run(run_server(settings, dev=dev, region=region))
    except (PortBusy, TlsSetupError) as refused:
        common.fail(str(refused))


def _check_region(settings: Settings, region: str | None) -> None:
    if region is not None and region not in settings.regions:
        common.fail(f"No region {region!r}: MAILHAVEN_REGIONS is {','.join(settings.regions)}.")


@app.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(help="Attempts in flight at once.")] = None,
    metrics_port: Annotated[int | None, typer.Option(
        help="Serve Prometheus metrics on 127.0.0.1:PORT/metrics.")] = None,
    region: Annotated[str | None, typer.Option(
        help="Work for this region only (default: every region).")] = None,
) -> None:
    """Run a delivery worker; any number of them may share one PostgreSQL.

    On a data directory that `serve --dev` made, it keeps mail, webhooks and DNS on this
    machine as dev mode does."""
    from mailhaven.server import PortBusy, run_worker

    _logging()
    settings = common.opened(common.settings())
    _check_region(settings, region)
    try:
        _serve_metrics(metrics_port)
        asyncio.run(run_worker(settings, concurrency=concurrency, region=region))
    except PortBusy as busy:
        common.fail(str(busy))


@app.command()
def smtp(
    metrics_port: Annotated[int | None, typer.Option(
        help="Serve Prometheus metrics on 127.0.0.1:PORT/metrics.")] = None,
) -> None:
    """Run the SMTP submission server alone: STARTTLS on MAILHAVEN_SMTP_PORT, implicit TLS
    on MAILHAVEN_SMTPS_PORT (`serve` runs it too)."""
    from mailhaven.server import PortBusy, run_smtp
    from mailhaven.submission.tls import TlsSetupError

    _logging()
    settings = common.opened(common.settings())
    try:
        _serve_metrics(metrics_port)
        asyncio.run(run_smtp(settings))
    except (PortBusy, TlsSetupError) as refused:
        common.fail(str(refused))


def _serve_metrics(port: int | None) -> None:
    """This process's metrics on a loopback port of their own, with no token: whoever can
    reach 127.0.0.1 is on this machine."""
    if port is not None:
        from prometheus_client import start_http_server

        from mailhaven.server import listening

        with listening("--metrics-port", port):
            start_http_server(port, addr="127.0.0.1")
