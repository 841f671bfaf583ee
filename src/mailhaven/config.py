"""Settings read once from the environment (SPEC interface contract)."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mailhaven.shaping_rules import DEFAULT_RULE, Rule, parse_rules

# Whose From a send may carry (`sending.identity`): an address at the account's own domains,
# or any address, as Mailgun allows.
SENDER_POLICIES = DOMAIN_SENDERS, ANY_SENDER = ("domain", "any")


def _env(name: str, default: str) -> str:
    return os.environ.get(f"MAILHAVEN_{name}", default)


def _int(name: str, default: int) -> int:
    value = _env(name, str(default))
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"MAILHAVEN_{name} must be a whole number, got {value!r}") from None


def _choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = _env(name, default).strip().lower()
    if value not in choices:
        raise ValueError(f"MAILHAVEN_{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def parse_hostport(value: str) -> tuple[str, int] | None:
    if not value:
        return None
    host, _, port = value.rpartition(":")
    if not host:
        return value, 25
    return host.strip("[]"), int(port)


def parse_trusted_networks(value: str) -> tuple[tuple[str, str], ...]:
    """MAILHAVEN_SMTP_TRUSTED_NETWORKS: `network=domain` pairs, comma- or space-separated
    (`192.0.2.0/24=mg.example.com`): the networks whose clients submit as that domain
    without AUTH, as Postfix's mynetworks or Postal's IP credentials."""
    pairs = []
    for item in value.replace(",", " ").split():
        network, _, domain = item.partition("=")
        try:
            parsed = ipaddress.ip_network(network, strict=False)
        except ValueError:
            parsed = None
        if parsed is None or not domain.strip("."):
            raise ValueError("MAILHAVEN_SMTP_TRUSTED_NETWORKS takes network=domain pairs "
                             f"(192.0.2.0/24=mg.example.com), got {item!r}")
        pairs.append((str(parsed), domain.strip(".").lower()))
    return tuple(pairs)


REGION_NAME = re.compile(r"[a-z][a-z0-9]{0,7}")


def parse_regions(value: str) -> tuple[str, ...]:
    """MAILHAVEN_REGIONS: region names (`us,eu`), the first the home region: where this
    installation's own site, and accounts made without a region, live."""
    names = tuple(dict.fromkeys(n.strip().lower() for n in value.replace(",", " ").split()))
    bad = [n for n in names if not REGION_NAME.fullmatch(n)]
    if not names or bad:
        raise ValueError("MAILHAVEN_REGIONS takes short lower-case names (us,eu), got "
                         f"{value!r}")
    return names


def default_system_from(hostname: str) -> str:
    return f"Mailhaven <no-reply@{hostname.lower().rstrip('.')}>"


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("var")
    database_url: str = ""
    http_host: str = "127.0.0.1"
    http_port: int = 8700
    # The reverse proxies whose X-Forwarded-For names the client (throttling, tracking):
    # addresses or networks, comma-separated, "*" for any; "" for none (direct exposure)
    forwarded_allow_ips: str = "127.0.0.1,::1"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    relayhost: tuple[str, int] | None = None
    master_key_file: Path | None = None
    hostname: str = field(default_factory=socket.getfqdn)
    smtp_delivery_port: int = 25
    dns_nameserver: tuple[str, int] | None = None
    dns_timeout_seconds: float = 10.0  # one lookup, all its tries; past it the copy is deferred
    # Delivery over SMTP: connecting (with the greeting and EHLO), each command, and the
    # answer to the message's final dot; past one, the attempt is deferred (4xx), not bounced
    smtp_connect_seconds: float = 30.0
    smtp_command_seconds: float = 60.0
    smtp_data_seconds: float = 300.0
    lease_seconds: int = 600
    webhook_lease_seconds: int = 60  # a POST is cut off after 10 s: its lease can be short
    max_message_age_seconds: int = 5 * 24 * 3600
    worker_concurrency: int = 100  # as Postfix: default_process_limit = 100
    render_processes: int = 2  # messages rendered at once, each in a process of its own
    render_seconds: float = 30.0  # a render past this fails its copy (or its GET)
    shaping_rules: tuple[Rule, ...] = (DEFAULT_RULE,)
    dev_capture_port: int = 2526
    mx_host: str = "127.0.0.1"
    mx_port: int = 2500
    webhook_allow_private: bool = False  # POSTs to loopback/private addresses (tests, LANs)
    allow_private_mx: bool = False  # deliver to MX hosts on loopback/private addresses
    require_verified_domains: bool = True  # a domain sends once its DNS proves ownership
    sender_policy: str = DOMAIN_SENDERS  # From at the account's domains; "any" as Mailgun
    notice_version: str = "1"  # the privacy notice in force, recorded with each consent
    public_url: str = ""  # tracking links' base; default http(s)://<web_prefix>.<domain>
    # GET /metrics on the API asks for it (Bearer); unset: not served there
    metrics_token: str = field(default="", repr=False)
    api_docs: bool = False  # /docs and /redoc (Swagger UI, ReDoc); /openapi.json always
    reserved_domains: tuple[str, ...] = ()  # names no account may add, beyond the built-in
    # SMTP submission (`submission`): STARTTLS on smtp_host:smtp_port (the port-587 service),
    # implicit TLS on smtps_port (the port-465 service; 0 turns it off)
    smtps_port: int = 4465
    tls_cert_file: Path | None = None  # unset: a self-signed pair in data_dir for hostname
    tls_key_file: Path | None = None
    # (network, domain): clients there submit as the domain without TLS or AUTH
    smtp_trusted_networks: tuple[tuple[str, str], ...] = ()
    # Receiving (`inbound`): the largest message the MX takes (Mailgun's 25 MiB)
    inbound_max_bytes: int = 25 * 1024 * 1024
    # MX sessions open at once, in all and from one client network (an IPv4 address, an
    # IPv6 /64); more get 421 at connect
    mx_max_sessions: int = 200
    mx_max_sessions_per_ip: int = 50  # Postfix's smtpd_client_connection_count_limit
    # Limits at every door (docs/security.md): wrong API keys a client network may send in a
    # minute before 429s; rows a suppressions CSV import may hold
    api_auth_failures_per_minute: int = 20
    csv_import_max_rows: int = 100_000
    # SMTP submission sessions open at once, in all and from one client network (an IPv4
    # address, an IPv6 /64), both listeners together (more: 421 at connect); a TLS handshake
    # on the implicit-TLS port is counted, and closed past `smtp_tls_handshake_seconds`
    smtp_max_sessions: int = 200
    smtp_max_sessions_per_ip: int = 20
    smtp_tls_handshake_seconds: float = 10.0
    # Both SMTP doors: a session silent this long is closed (RFC 5321 4.5.3.2.7: 5 minutes);
    # refused commands (wrong AUTH, unknown recipients, bad syntax) past the soft limit are
    # each answered `smtp_error_delay_seconds` late, and past the hard limit the session
    # is told 421 and closed (Postfix's smtpd_soft/hard_error_limit, smtpd_error_sleep_time)
    smtp_idle_seconds: int = 300
    smtp_soft_error_limit: int = 10
    smtp_hard_error_limit: int = 20
    smtp_error_delay_seconds: float = 1.0
    # The platform's own mail (sign-up confirmations, resets): its From; "" is
    # "Mailhaven <no-reply@HOSTNAME>", filled in from `hostname`
    system_from: str = ""
    contact_retention_days: int = 365  # the website's contact form messages (`site`)
    # Anonymous statistics (`stats.report`, SPEC N15): a figure is published only for a
    # group of at least this many accounts
    stats_k: int = 10
    # Regions (`regions`, SPEC N11): each account's data lives in its region's database, under
    # its region's vault. With one region and no URL of its own, that is the main database.
    regions: tuple[str, ...] = ("us",)
    region_database_urls: tuple[tuple[str, str], ...] = ()  # (region, URL) given
    region_master_key_files: tuple[tuple[str, Path], ...] = ()
    region: str = ""  # the region these settings are for ("": the platform's own)
    # Where this process runs (MAILHAVEN_SITE_REGION; "": the home region): an operator's
    # read of an account's personal data from another region is a transfer, logged there.
    site_region: str = ""

    def __post_init__(self) -> None:
        if not self.system_from:
            object.__setattr__(self, "system_from", default_system_from(self.hostname))

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'mailhaven.db'}"

    @property
    def resolved_master_key_file(self) -> Path:
        return self.master_key_file or self.data_dir / "master.key"

    @property
    def api_url(self) -> str:
        """Where users reach the API, for links we hand out (stored messages, tracking)."""
        return self.public_url or f"http://{self.hostname}:{self.http_port}"

    @property
    def home_region(self) -> str:
        return self.regions[0]

    @property
    def process_region(self) -> str:
        """The region this process runs in (MAILHAVEN_SITE_REGION, or the home region)."""
        return self.site_region or self.home_region

    @property
    def split(self) -> bool:
        """Whether regions keep their data apart from the main database (the directory)."""
        return len(self.regions) > 1 or bool(self.region_database_urls)

    def regional(self, name: str) -> Settings:
        """The settings of region `name`: its database and vault key and data directory
        (`$MAILHAVEN_DATA_DIR/<name>/` unless set). Unsplit, the main ones."""
        if name not in self.regions:
            raise ValueError(f"no region {name!r}: MAILHAVEN_REGIONS is {','.join(self.regions)}")
        if not self.split:
            return replace(self, region=name)
        folder = self.data_dir / name
        url = dict(self.region_database_urls).get(name) or f"sqlite:///{folder / 'mailhaven.db'}"
        key = dict(self.region_master_key_files).get(name) or folder / "master.key"
        return replace(self, region=name, data_dir=folder, database_url=url,
                       master_key_file=key)

    def check_regions(self) -> Settings:
        """These settings, or ValueError when split regions would share a database or a key
        file, or a region's database would be the main one: one region's data would then
        be in another's database, or open with its key (SPEC N11)."""
        if not self.split:
            return self
        main = _same_place(self.resolved_database_url)
        urls: dict[str, str] = {}
        keys: dict[Path, str] = {}
        for name in self.regions:
            regional = self.regional(name)
            url = _same_place(regional.resolved_database_url)
            if url == main:
                raise ValueError(f"region {name}'s database is the main database: give it "
                                 f"its own (MAILHAVEN_REGION_{name.upper()}_DATABASE_URL)")
            if url in urls:
                raise ValueError(f"regions {urls[url]} and {name} share a database: give each "
                                 f"its own (MAILHAVEN_REGION_<NAME>_DATABASE_URL)")
            key = regional.resolved_master_key_file.resolve()
            if key in keys:
                raise ValueError(f"regions {keys[key]} and {name} share a master key file: "
                                 f"give each its own (MAILHAVEN_REGION_<NAME>_MASTER_KEY_FILE)")
            urls[url], keys[key] = name, name
        return self

    def with_(self, **changes: Any) -> Settings:
        if "hostname" in changes and self.system_from == default_system_from(self.hostname):
            changes.setdefault("system_from", "")  # the default follows the new host name
        return replace(self, **changes)

    @classmethod
    def from_env(cls) -> Settings:
        key_file = _env("MASTER_KEY_FILE", "")
        cert_file, tls_key_file = _env("TLS_CERT_FILE", ""), _env("TLS_KEY_FILE", "")
        return cls(
            data_dir=Path(_env("DATA_DIR", "var")),
            database_url=_env("DATABASE_URL", ""),
            http_host=_env("HTTP_HOST", "127.0.0.1"),
            http_port=_int("HTTP_PORT", 8700),
            forwarded_allow_ips=_env("FORWARDED_ALLOW_IPS",
                                     os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")),
            smtp_host=_env("SMTP_HOST", "127.0.0.1"),
            smtp_port=_int("SMTP_PORT", 2525),
            relayhost=parse_hostport(_env("RELAYHOST", "")),
            master_key_file=Path(key_file) if key_file else None,
            hostname=_env("HOSTNAME", "") or socket.getfqdn(),  # no lookup when set
            smtp_delivery_port=_int("SMTP_DELIVERY_PORT", 25),
            dns_nameserver=parse_hostport(_env("DNS_NAMESERVER", "")),
            dns_timeout_seconds=float(_int("DNS_TIMEOUT", 10)),
            smtp_connect_seconds=float(_int("SMTP_CONNECT_TIMEOUT", 30)),
            smtp_command_seconds=float(_int("SMTP_COMMAND_TIMEOUT", 60)),
            smtp_data_seconds=float(_int("SMTP_DATA_TIMEOUT", 300)),
            lease_seconds=_int("LEASE_SECONDS", 600),
            webhook_lease_seconds=_int("WEBHOOK_LEASE_SECONDS", 60),
            max_message_age_seconds=_int("MAX_MESSAGE_AGE_SECONDS", 5 * 24 * 3600),
            worker_concurrency=_int("WORKER_CONCURRENCY", 100),
            render_processes=_int("RENDER_PROCESSES", 2),
            render_seconds=float(_int("RENDER_SECONDS", 30)),
            shaping_rules=parse_rules(_env("SHAPING", ""), _env("SHAPING_FILE", "") or None),
            dev_capture_port=_int("DEV_CAPTURE_PORT", 2526),
            mx_host=_env("MX_HOST", "127.0.0.1"),
            mx_port=_int("MX_PORT", 2500),
            webhook_allow_private=_env("WEBHOOK_ALLOW_PRIVATE", "0") in ("1", "true", "yes"),
            allow_private_mx=_env("ALLOW_PRIVATE_MX", "0") in ("1", "true", "yes"),
            public_url=_env("PUBLIC_URL", "").rstrip("/"),
            notice_version=_env("NOTICE_VERSION", "1"),
            require_verified_domains=_env("REQUIRE_VERIFIED_DOMAINS", "1") in ("1", "true",
                                                                               "yes"),
            metrics_token=_env("METRICS_TOKEN", ""),
            api_docs=_env("API_DOCS", "0") in ("1", "true", "yes"),
            reserved_domains=tuple(name.strip(".") for name in
                                   _env("RESERVED_DOMAINS", "").lower().replace(",", " ").split()),
            sender_policy=_choice("SENDER_POLICY", DOMAIN_SENDERS, SENDER_POLICIES),
            smtps_port=_int("SMTPS_PORT", 4465),
            tls_cert_file=Path(cert_file) if cert_file else None,
            tls_key_file=Path(tls_key_file) if tls_key_file else None,
            smtp_trusted_networks=parse_trusted_networks(_env("SMTP_TRUSTED_NETWORKS", "")),
            inbound_max_bytes=_int("INBOUND_MAX_BYTES", 25 * 1024 * 1024),
            mx_max_sessions=_int("MX_MAX_SESSIONS", 200),
            mx_max_sessions_per_ip=_int("MX_MAX_SESSIONS_PER_IP", 50),
            api_auth_failures_per_minute=_int("API_AUTH_FAILURES_PER_MINUTE", 20),
            csv_import_max_rows=_int("CSV_IMPORT_MAX_ROWS", 100_000),
            smtp_max_sessions=_int("SMTP_MAX_SESSIONS", 200),
            smtp_max_sessions_per_ip=_int("SMTP_MAX_SESSIONS_PER_IP", 20),
            smtp_tls_handshake_seconds=float(_env("SMTP_TLS_HANDSHAKE_SECONDS", "10")),
            smtp_idle_seconds=_int("SMTP_IDLE_SECONDS", 300),
            smtp_soft_error_limit=_int("SMTP_SOFT_ERROR_LIMIT", 10),
            smtp_hard_error_limit=_int("SMTP_HARD_ERROR_LIMIT", 20),
            smtp_error_delay_seconds=float(_env("SMTP_ERROR_DELAY_SECONDS", "1")),
            system_from=_env("SYSTEM_FROM", "").strip(),
            contact_retention_days=_int("CONTACT_RETENTION_DAYS", 365),
            stats_k=_stats_k(),
            **_regions_from_env(),
        ).check_regions()


def _same_place(url: str) -> str:
    """A database URL compared as a place: an SQLite file by its resolved path."""
    if url.startswith("sqlite:///"):
        return "sqlite:///" + str(Path(url.removeprefix("sqlite:///")).resolve())
    return url.strip().rstrip("/")


def _stats_k() -> int:
    k = _int("STATS_K", 10)
    if k < 2:
        raise ValueError(f"MAILHAVEN_STATS_K must be at least 2 (a group of one account is "
                         f"that account), got {k}")
    return k


def _regions_from_env() -> dict[str, Any]:
    regions = parse_regions(_env("REGIONS", "us"))
    urls = tuple((n, url) for n in regions if (url := _env(f"REGION_{n.upper()}_DATABASE_URL", "")))
    keys = tuple((n, Path(f)) for n in regions
                 if (f := _env(f"REGION_{n.upper()}_MASTER_KEY_FILE", "")))
    site = _env("SITE_REGION", "").strip().lower()
    if site and site not in regions:
        raise ValueError(f"MAILHAVEN_SITE_REGION {site!r} is not one of MAILHAVEN_REGIONS "
                         f"({','.join(regions)})")
    return {"regions": regions, "region_database_urls": urls, "region_master_key_files": keys,
            "site_region": site}
