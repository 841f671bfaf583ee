"""Postfix's side of `postfix.py`: its smtp-sink as a counting sink, a private Postfix
instance in a temporary directory, and smtp-source, each a child process we start and stop.

Nothing here touches the system's Postfix (/etc/postfix, its queue, its master): the
instance has its own configuration directory, queue and data directories, listens on
127.0.0.1 only, and is stopped (and its processes checked gone) at the end.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from common import Arrivals, process_cpu_seconds, stop_child, wait_for_port

_TICKS = os.sysconf("SC_CLK_TCK")
if "/usr/sbin" not in os.environ.get("PATH", "").split(":"):  # Postfix's programs live there
    os.environ["PATH"] = os.environ.get("PATH", "/usr/bin:/bin") + ":/usr/sbin"
_COUNTER = re.compile(rb"mesg=(\d+)")
QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")
# The master.cf services a relay needs; the Debian file's pipe(8) examples (maildrop, uucp,
# mailman...) name programs and users this machine does not have.
SERVICES = {"pickup", "cleanup", "qmgr", "tlsmgr", "rewrite", "bounce", "defer", "trace",
            "verify", "flush", "proxymap", "proxywrite", "smtp", "relay", "showq", "error",
            "retry", "discard", "anvil", "scache", "postlog"}


def missing_tools() -> list[str]:
    return [t for t in ("postfix", "postconf", "postsuper", "postqueue", "smtp-sink",
                        "smtp-source", "opendkim") if shutil.which(t) is None]


def tree_cpu_seconds(root: int) -> float:
    """CPU (user + system) of `root` and every process below it, including the children
    they have already reaped: the work of a process tree whose members come and go, as
    Postfix's do (each daemon exits after max_use requests; master reaps it)."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(entry.path, "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        pid = int(entry.name)
        stats[pid] = fields
        children.setdefault(int(fields[1]), []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        fields = stats.get(pid)
        if fields is None:
            continue
        total += sum(int(f) for f in fields[11:15]) / _TICKS  # utime stime cutime cstime
        todo.extend(children.get(pid, ()))
    return total


# -- the sink -------------------------------------------------------------------------------
class SmtpSink:
    """Postfix's smtp-sink on 127.0.0.1:port: C, one event-driven process, keeps nothing.

    Its -c counters ("sess=N quit=N mesg=N", after every message) are read as they come,
    so the time the N-th message arrived is known to the millisecond, without a sink of
    our own that could be slower than the senders it measures.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        command = ["smtp-sink", "-c", "-h", "sink.bench.test"]
        if os.geteuid() == 0:
            command += ["-u", "nobody"]  # smtp-sink refuses to run as root without it
        self.proc = subprocess.Popen([*command, f"127.0.0.1:{port}", "256"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.arrivals = Arrivals("the sink")
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        wait_for_port(port, 10, self.proc)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu(self) -> float:
        return process_cpu_seconds(self.proc.pid)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        partial = b""
        while chunk := os.read(fd, 65536):
            now = time.monotonic()
            # Each record ends in "\r": a record cut by the pipe waits for its end.
            *records, partial = (partial + chunk).split(b"\r")
            found = _COUNTER.findall(b" ".join(records))
            if found:
                self.arrivals.reached(int(found[-1]), now)

    @property
    def count(self) -> int:
        return self.arrivals.count

    def wait_for(self, count: int, timeout: float) -> float:
        """The monotonic time the sink's `count`-th message arrived; waits for it."""
        return self.arrivals.wait_for(count, timeout)

    def stop(self) -> int:
        """Stop it; how many messages it accepted in all."""
        stop_child(self.proc)
        self._reader.join(5)
        return self.count


# -- smtp-source ----------------------------------------------------------------------------
@dataclass(frozen=True)
class SourceRun:
    cpu: float  # the smtp-source process's own CPU, from wait4


def smtp_source(port: int, messages: int, *, sessions: int, reuse: bool,
                sender: str, recipient: str, helo: str, timeout: float,
                numbered: bool = False) -> SourceRun:
    """`smtp-source -s S -m M -l 1024` into 127.0.0.1:port (-d: one connection per session
    for all its messages, instead of one per message; -N: a sequence number prepended to
    each recipient, so that no two messages go to the same address)."""
    command = ["smtp-source", "-s", str(sessions), "-m", str(messages), "-l", "1024",
               "-f", sender, "-t", recipient, "-M", helo]
    if reuse:
        command.append("-d")
    if numbered:
        command.append("-N")
    proc = subprocess.Popen([*command, f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise TimeoutError("smtp-source did not finish in time")
        time.sleep(0.005)
    proc.returncode = os.waitstatus_to_exitcode(status)  # wait4 reaped it, not Popen
    if proc.returncode != 0:
        raise RuntimeError(f"smtp-source exited with {proc.returncode}")
    return SourceRun(usage.ru_utime + usage.ru_stime)


# -- a private Postfix instance -----------------------------------------------------------------
class PostfixInstance:
    """Postfix from Debian's packages, relaying everything to `relay_port` on loopback.

    Configured from a temporary directory (`postconf -c DIR`), defaults kept for every
    setting that shapes delivery (default_destination_concurrency_limit = 20, process
    limits 100, connection cache on demand, in_flow_delay 1s...). Two smtpd listeners:
    `port` takes mail and queues it as Postfix always does; `hold_port` puts each message
    on hold, so that a full queue can be released at once (`postsuper -H`, `postqueue -f`).
    With `mx_domains`, the hold listener is an MX for those domains (`relay_domains`): it
    takes mail for them from anyone, and refuses any other recipient (relaying denied).
    """

    def __init__(self, root: Path, *, port: int, hold_port: int, relay_port: int,
                 mx_domains: tuple[str, ...] = (), milter_port: int = 0,
                 transports: dict[str, int] | None = None) -> None:
        self.root = root
        self.mx_domains = mx_domains
        self.milter_port = milter_port  # OpenDKIM's (`OpenDkim`); 0: no milter
        self.transports = transports or {}  # recipient domain -> another loopback port
        self.conf = root / "conf"
        self.spool = root / "spool"
        self.port = port
        self.hold_port = hold_port
        self.relay_port = relay_port
        self.master_pid = 0

    def postconf(self, *args: str) -> str:
        return self._run("postconf", "-c", str(self.conf), *args)

    def _run(self, *command: str) -> str:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip() or done.returncode}")
        return done.stdout

    def configure(self) -> None:
        data = self.root / "data"
        for path in (self.conf, self.spool, data):
            path.mkdir(parents=True)
        shutil.chown(data, "postfix")  # the queue directory stays root's, as Postfix wants
        shutil.copy("/etc/postfix/master.cf", self.conf / "master.cf")  # read, never written
        (self.conf / "main.cf").write_text("")
        self.postconf(
            "-e", "compatibility_level = 3.6",
            f"queue_directory = {self.spool}", f"data_directory = {data}",
            "mail_owner = postfix", "setgid_group = postdrop",
            "myhostname = postfix.bench.test", "mydomain = bench.test",
            # A relay and nothing else: no local delivery, everything to the sink.
            "mydestination =", "relay_domains =", "local_recipient_maps =",
            "alias_maps =", "alias_database =", "inet_interfaces = 127.0.0.1",
            "inet_protocols = ipv4", "mynetworks = 127.0.0.0/8",
            f"relayhost = [127.0.0.1]:{self.relay_port}",
            # One log line per delivery, to a file (there is no syslog here), as production
            # logs to syslog; Mailhaven's worker logs one line per attempt as well.
            f"maillog_file = {self.root / 'maillog'}", f"maillog_file_prefixes = {self.root}",
            "bench_hold_restrictions = check_client_access static:HOLD",
        )
        for line in self.postconf("-M").splitlines():
            if not line.strip():
                continue
            service, kind = line.split()[:2]
            if service not in SERVICES or (service, kind) == ("smtp", "inet"):
                self.postconf("-MX", f"{service}/{kind}")
        if self.milter_port:  # every message signed, whichever listener took it
            self.postconf("-e", f"smtpd_milters = inet:127.0.0.1:{self.milter_port}",
                          "non_smtpd_milters = $smtpd_milters",
                          "milter_default_action = tempfail")  # unsigned never leaves
        if self.transports:
            table = ", ".join(f"{domain}=smtp:[127.0.0.1]:{port}"
                              for domain, port in self.transports.items())
            self.postconf("-e", f"transport_maps = inline:{{{table}}}")
        # No chroot: a chroot needs copies of /etc files in the queue directory.
        self.postconf("-F", "*/*/chroot = n")
        hold = "-o smtpd_client_restrictions=$bench_hold_restrictions"
        if self.mx_domains:
            self.postconf("-e", f"relay_domains = {' '.join(self.mx_domains)}")
            hold += " -o smtpd_relay_restrictions=reject_unauth_destination"  # loopback too
        self.postconf(
            "-Me", f"127.0.0.1:{self.port}/inet = 127.0.0.1:{self.port} inet n - n - - smtpd",
            f"127.0.0.1:{self.hold_port}/inet = 127.0.0.1:{self.hold_port} inet n - n - - "
            f"smtpd {hold}")

    def start(self) -> None:
        self._run("postfix", "-c", str(self.conf), "check")
        self._run("postfix", "-c", str(self.conf), "start")
        pid_file = self.spool / "pid" / "master.pid"
        deadline = time.monotonic() + 20
        while not pid_file.exists() or not pid_file.read_text().strip():
            if time.monotonic() > deadline:
                raise RuntimeError(f"Postfix did not start: see {self.root / 'maillog'}")
            time.sleep(0.05)
        self.master_pid = int(pid_file.read_text())
        wait_for_port(self.port, 20)
        wait_for_port(self.hold_port, 20)

    def stop(self) -> None:
        if not self.master_pid:
            return
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self._run("postfix", "-c", str(self.conf), "stop")
        deadline = time.monotonic() + 10
        while Path(f"/proc/{self.master_pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if Path(f"/proc/{self.master_pid}").exists():  # our master only, by its pid
            os.kill(self.master_pid, signal.SIGKILL)
        self.master_pid = 0

    def cpu(self) -> float:
        """CPU of the whole instance: master and every daemon it started."""
        return tree_cpu_seconds(self.master_pid)

    def queued(self, queue: str | None = None) -> int:
        """Messages in the queue files (all queues, or one)."""
        return sum(len(files) for name in ((queue,) if queue else QUEUES)
                   for _, _, files in os.walk(self.spool / name))

    def release_held(self) -> None:
        """Move every held message to the deferred queue and have qmgr scan it now."""
        self._run("postsuper", "-c", str(self.conf), "-H", "ALL")
        self._run("postqueue", "-c", str(self.conf), "-f")

    def delete_held(self) -> None:
        """Delete every message on hold (what an intake-only run leaves)."""
        self._run("postsuper", "-c", str(self.conf), "-d", "ALL", "hold")

    def version(self) -> str:
        return self.postconf("-h", "mail_version").strip()

    def delivered_lines(self) -> int:
        """Deliveries the log reports as sent (a cross-check of the sink's count)."""
        try:
            with open(self.root / "maillog", "rb") as log:
                return sum(1 for line in log if b" status=sent " in line)
        except OSError:
            return 0


# -- a private OpenDKIM ---------------------------------------------------------------------
class OpenDkim:
    """Debian's `opendkim` as Postfix's milter on 127.0.0.1:port, signing mail from `domain`
    with the given key and selector: relaxed/relaxed, rsa-sha256, the headers `headers` (the
    ones present), as Mailhaven's `DkimSigner` does. Its configuration, key and pid file are
    in `root`; it runs in the foreground as the `opendkim` user Debian's package creates
    (as root when there is none), a child process we start and stop.
    """

    def __init__(self, root: Path, *, port: int, domain: str, selector: str,
                 private_pem: bytes, headers: list[str]) -> None:
        self.root = root
        self.port = port
        root.mkdir(mode=0o700, parents=True)
        user = "opendkim"
        try:
            shutil.chown(root, user)
        except LookupError:
            user = "root"
        key = root / "key.private"
        key.write_bytes(private_pem)
        key.chmod(0o600)  # RequireSafeKeys: readable by its owner only
        shutil.chown(key, user)
        self.conf = root / "opendkim.conf"
        self.conf.write_text("\n".join([
            "Syslog no", "Background no", "AutoRestart no", "Mode s",
            f"Domain {domain}", f"Selector {selector}", f"KeyFile {key}",
            "Canonicalization relaxed/relaxed", "SignatureAlgorithm rsa-sha256",
            f"SignHeaders {','.join(headers)}",
            f"Socket inet:{port}@127.0.0.1", f"PidFile {root / 'opendkim.pid'}",
            f"UserID {user}", "InternalHosts 127.0.0.1", "UMask 002",
            # its directory is OpenDKIM's own (0700), but under /tmp, which anyone may write
            # in: OpenDKIM would refuse the key for that
            "RequireSafeKeys false", ""]))
        self.log = root / "opendkim.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(["opendkim", "-f", "-x", str(self.conf)],
                                         stdout=out, stderr=out)
        try:
            wait_for_port(port, 20, self.proc)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}: {self.log.read_text(errors='replace')}") from None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu(self) -> float:
        return tree_cpu_seconds(self.proc.pid)

    def version(self) -> str:
        done = subprocess.run(["opendkim", "-V"], capture_output=True, text=True, check=False)
        return (done.stdout or done.stderr).splitlines()[0].strip() if done.stdout or \
            done.stderr else "opendkim"

    def stop(self) -> None:
        stop_child(self.proc)
