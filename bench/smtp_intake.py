"""SMTP submission intake against Postfix's smtpd: messages per second accepted and queued.

The same load, Postfix's `smtp-source -s 20 -m N -l 1024` (20 sessions in parallel, ~1 KB of
payload, one recipient each, a sequence number prepended to each recipient: -N), goes into:

  mailhaven        `mailhaven smtp`, the submission role alone (no delivery worker runs, so
                   the time is intake only), configured by the environment as an operator
                   runs it. smtp-source speaks neither STARTTLS nor AUTH, so 127.0.0.0/8 is
                   a trusted network bound to the bench domain (MAILHAVEN_SMTP_TRUSTED_NETWORKS,
                   Postfix's `mynetworks`). Each message's `250` comes after its commit: the
                   message sealed, one queued copy, its `accepted` event;
  postfix          Postfix 3.x from Debian's packages, a private instance (bench/mta.py): its
                   smtpd listener that puts every message on hold, so that it is queued (its
                   `250` after the queue file is written and fsynced, as always) and not
                   delivered — intake only, as on Mailhaven's side;
  *-reuse          the same with -d: one connection per session for all its messages (a
                   mailer that keeps its connection), instead of one per message.

The time runs from smtp-source's start to its exit (it exits once every message has had its
`250`). Printed per phase: messages/s, CPU ms per message of the server side (the `mailhaven
smtp` process; the whole Postfix instance, master and every daemon) and of the PostgreSQL
backends serving Mailhaven, and the ratio mailhaven / postfix (median over rounds; rounds
alternate the order of the phases).

Checks: Mailhaven holds exactly one queued copy per message sent, Postfix's hold queue one
file per message sent (emptied between phases).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from common import (
    DOMAIN,
    HOSTNAME,
    Column,
    Figure,
    backend_name,
    backends_cpu,
    backends_cpu_since,
    bench_arguments,
    bench_settings,
    free_port,
    median,
    process_cpu_seconds,
    ratio,
    record,
    run_rounds,
    seed,
    stop_child,
    table,
    throwaway_database,
    wait_for_port,
)
from mailhaven.delivery.models import Delivery
from mailhaven.services import Services
from mta import PostfixInstance, missing_tools, smtp_source

SESSIONS = 20
PHASES = ("mailhaven", "postfix", "mailhaven-reuse", "postfix-reuse")
SENDER = f"orders@{DOMAIN}"


@dataclass(frozen=True)
class Phase:
    name: str
    messages: int
    seconds: float
    cpu: float  # the server side: `mailhaven smtp`, or the whole Postfix instance
    db_cpu: float  # PostgreSQL backends serving `mailhaven smtp`
    source_cpu: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


class Bench:
    sender = SENDER
    recipient = "user@d0.example"  # -N numbers it: 1user@d0.example, 2user@…

    def __init__(self, services: Services, postfix: PostfixInstance, smtp_port: int,
                 smtp: subprocess.Popen, args: argparse.Namespace) -> None:
        self.services = services
        self.postfix = postfix
        self.smtp_port = smtp_port
        self.smtp = smtp
        self.args = args
        self.deadline = time.monotonic() + args.max_seconds
        self.queued = 0  # copies Mailhaven should hold

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("--max-seconds reached")
        return left

    def run(self, name: str, count: int) -> Phase:
        reuse = name.endswith("-reuse")
        if name.startswith("mailhaven"):
            return self.mailhaven_phase(name, count, reuse=reuse)
        return self.postfix_phase(name, count, reuse=reuse)

    def source(self, port: int, count: int, *, reuse: bool,
               recipient: str | None = None) -> tuple[float, float]:
        """smtp-source into `port`: (seconds, its CPU)."""
        t0 = time.monotonic()
        run = smtp_source(port, count, sessions=SESSIONS, reuse=reuse, sender=self.sender,
                          recipient=recipient or self.recipient, helo=HOSTNAME,
                          timeout=self.remaining(), numbered=True)
        return time.monotonic() - t0, run.cpu

    def mailhaven_phase(self, name: str, count: int, *, reuse: bool) -> Phase:
        cpu0, db0 = process_cpu_seconds(self.smtp.pid), backends_cpu(self.services.db.engine)
        seconds, source_cpu = self.source(self.smtp_port, count, reuse=reuse)
        cpu = process_cpu_seconds(self.smtp.pid) - cpu0
        db = backends_cpu_since(self.services.db.engine, db0)
        self.queued += count
        held = self.copies()
        if held != self.queued:
            raise RuntimeError(f"Mailhaven holds {held} copies, not {self.queued}")
        return Phase(name, count, seconds, cpu, db, source_cpu)

    def postfix_phase(self, name: str, count: int, *, reuse: bool) -> Phase:
        cpu0 = self.postfix.cpu()
        seconds, source_cpu = self.source(self.postfix.hold_port, count, reuse=reuse)
        cpu = self.postfix.cpu() - cpu0
        held = self.postfix.queued("hold")
        if held != count:
            raise RuntimeError(f"Postfix holds {held} messages, not {count}")
        self.postfix.delete_held()
        return Phase(name, count, seconds, cpu, 0.0, source_cpu)

    def copies(self) -> int:
        with self.services.db.sessions() as session:
            return int(session.scalar(select(func.count()).select_from(Delivery)) or 0)

def smtp_env(settings_dir: Path, database_url: str | None, port: int) -> dict[str, str]:
    """`mailhaven smtp` as an operator runs it, smtp-source's loopback trusted."""
    return {**os.environ, "MAILHAVEN_DATA_DIR": str(settings_dir),
            "MAILHAVEN_DATABASE_URL": database_url or "", "MAILHAVEN_HOSTNAME": HOSTNAME,
            "MAILHAVEN_SMTP_HOST": "127.0.0.1", "MAILHAVEN_SMTP_PORT": str(port),
            "MAILHAVEN_SMTPS_PORT": "0",
            "MAILHAVEN_SMTP_TRUSTED_NETWORKS": f"127.0.0.0/8={DOMAIN}",
            "MAILHAVEN_DNS_NAMESERVER": f"127.0.0.1:{free_port()}"}




def reference_of(name: str) -> str:
    return name.replace("mailhaven", "postfix")


def phases_table(rounds: list[dict[str, Phase]], names: tuple[str, ...],
                 reference_of: Callable[[str], str]) -> str:
    """Each phase's medians over the rounds; a Mailhaven phase's rate against its Postfix
    phase's (`reference_of`)."""
    columns = [Column("phase", max(16, *map(len, names)), ""), Column("msgs/s", 8, ".0f"),
               Column("CPU ms/msg", 10, ".2f"), Column("DB ms/msg", 9, ".2f"),
               Column("source ms/msg", 13, ".2f"), Column("/postfix", 8, ".3f")]
    rows = []
    for name in names:
        phases = [r[name] for r in rounds]
        rows.append([name, median([p.rate for p in phases]),
                     median([1000 * p.cpu / p.messages for p in phases]),
                     median([1000 * p.db_cpu / p.messages for p in phases]),
                     median([1000 * p.source_cpu / p.messages for p in phases]),
                     ratio(rounds, name, reference_of(name)) if name.startswith("mailhaven")
                     else ""])
    return table(columns, rows)


def report(rounds: list[dict[str, Phase]], postfix_version: str, args: argparse.Namespace,
           backend: str) -> None:
    summary = "\n".join([
        f"SMTP intake, {backend}: smtp-source -s {SESSIONS} -m {args.messages} -l 1024 per "
        f"phase, median of {len(rounds)} rounds; Postfix {postfix_version}",
        phases_table(rounds, args.phases, reference_of)])
    print("\n" + summary)
    figures = []
    for name in (p for p in args.phases if p.startswith("mailhaven")):
        reference = reference_of(name)
        if reference not in args.phases:
            continue
        connections = "one connection per session" if name.endswith("-reuse") else (
            "a connection per message")
        figures.append(Figure(
            f"SMTP submissions accepted/s, smtp-source -s {SESSIONS}, {connections}",
            median([r[name].rate for r in rounds]), "msg/s",
            "Postfix smtpd, the same load, queued on hold, msg/s",
            median([r[reference].rate for r in rounds]), ratio(rounds, name, reference)))
    record("smtp_intake", backend, figures, summary)


def intake_arguments(parser: argparse.ArgumentParser, phases: tuple[str, ...], *,
                     messages: int = 2000) -> argparse.Namespace:
    """The options of an intake benchmark against Postfix (this one, `inbound.py`), parsed:
    `args.phases` a tuple of names of `phases`."""
    parser.add_argument("--messages", type=int, default=messages, help="messages per phase")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--phases", default=",".join(phases),
                        help=f"comma-separated, of: {', '.join(phases)}")
    parser.add_argument("--warmup", type=int, default=50,
                        help="an untimed run of each phase with this many messages (0: none)")
    bench_arguments(parser, max_seconds=900)
    args = parser.parse_args()
    args.phases = tuple(p.strip() for p in args.phases.split(",") if p.strip())
    unknown = set(args.phases) - set(phases)
    if unknown or not args.phases:
        parser.error(f"unknown phases: {', '.join(sorted(unknown)) or '(none)'}")
    if min(args.messages, args.rounds) < 1 or args.warmup < 0:
        parser.error("--messages and --rounds must be positive")
    return args


def check_intake_tools() -> str:
    """Root, Postfix's programs, and the `mailhaven` command beside this Python (its path),
    or exit saying what is missing."""
    if os.geteuid() != 0:
        raise SystemExit("run as root: Postfix's master starts as root, then drops privileges")
    missing = missing_tools()
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: `make bench-deps` installs Postfix")
    mailhaven = shutil.which("mailhaven", path=str(Path(sys.executable).parent))
    if mailhaven is None:
        raise SystemExit("the mailhaven command is not beside this Python: "
                         "run with .venv/bin/python after `make`")
    return mailhaven


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    args = intake_arguments(parser, PHASES)
    mailhaven = check_intake_tools()
    backend = backend_name(args.database_url)
    work = Path(tempfile.mkdtemp(prefix="mailhaven-smtp-intake-"))
    os.chmod(work, 0o755)  # Postfix's daemons (user postfix) walk down to their directories
    try:
        with throwaway_database(args.database_url) as database_url:
            settings = bench_settings(work, database_url)
            seed(settings)
            postfix = PostfixInstance(work / "postfix", port=free_port(),
                                      hold_port=free_port(), relay_port=free_port())
            services = Services.start(settings, migrate=False)
            port = free_port()
            log_path = work / "smtp.log"
            with log_path.open("wb") as log:
                smtp = subprocess.Popen([mailhaven, "smtp"],
                                        env=smtp_env(work, database_url, port),
                                        stdout=log, stderr=log)
            try:
                wait_for_port(port, 60, smtp)
                postfix.configure()
                postfix.start()
                print(f"SMTP intake vs Postfix on {backend}: mailhaven smtp pid {smtp.pid} "
                      f"on 127.0.0.1:{port}, Postfix master pid {postfix.master_pid}",
                      flush=True)
                bench = Bench(services, postfix, port, smtp, args)
                rounds = run_rounds(bench, args)
                version = postfix.version()
            except BaseException:
                tail = log_path.read_text(errors="replace").splitlines()[-20:]
                print("mailhaven smtp log (tail):\n" + "\n".join(tail), file=sys.stderr)
                raise
            finally:
                stop_child(smtp)
                postfix.stop()
                services.close()
        report(rounds, version, args, backend)
        print(f"check: Mailhaven queued all {bench.queued} messages; Postfix held every "
              f"message of its phases")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except TimeoutError as exc:
        raise SystemExit(f"stopped: {str(exc) or '--max-seconds reached'}") from None
