"""Regions (SPEC N11): the directory of which region holds an account, a domain, a key."""

# Where each table lives on an installation split into regions. The main database keeps
# what belongs to no region (the directory, the register of sub-processors); every region's
# database keeps its accounts' data. Each database has the whole schema (one migration
# history): a table is simply left empty where it does not belong.
MAIN = "main"
REGION = "region"
EVERY = "every"  # each database: its own periodic jobs' runs
# What belongs to no region: the directory, the register of sub-processors, the privacy
# notices (one text for everyone; the objections to them are each account's, in its region).
MAIN_TABLES = frozenset({"region_directory", "subprocessors", "privacy_notices"})
# Each database's own: its jobs' runs, its audit log (the main one logs the notices and the
# register) and the vault keys its sealed rows (the audit details among them) are opened with.
EVERY_TABLES = frozenset({"job_runs", "alembic_version", "audit_log", "vault_keys",
                          "revocations"})


def database_of(table: str) -> str:
    """Which database holds `table`: "main", "region" or "every"."""
    if table in MAIN_TABLES:
        return MAIN
    return EVERY if table in EVERY_TABLES else REGION
