"""The Article 30 record of processing, built from the column classifications (SPEC N1).

`build` gives the JSON document (its shape is documented in docs/privacy.md and only grows
new keys within one `schema` version); `markdown` renders that same document, so the two
formats can never disagree.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import MetaData, Table

from mailhaven import __version__
from mailhaven.storage.base import Base
from mailhaven.storage.inventory import Classification

SCHEMA = "mailhaven.record-of-processing/1"
DATABASES = {"main": "the main database (it belongs to no region)",
             "region": "each region's own database (its accounts' data)",
             "every": "every database, main and regions (each one's own)"}


def _description(table: Table) -> str:
    """The model's docstring (else its module's), first paragraph: what the table is for."""
    for mapper in Base.registry.mappers:
        if mapper.local_table is table:
            cls = mapper.class_
            doc = vars(cls).get("__doc__") or sys.modules[cls.__module__].__doc__ or ""
            doc = inspect.cleandoc(doc)
            return " ".join(doc.split("\n\n")[0].split())
    return ""


def _column(name: str, col: Any, data: Classification) -> dict:
    return {"column": name, "type": str(col.type), "category": data.category,
            "data_subject": data.subject, "purposes": list(data.purposes),
            "legal_basis": data.legal_basis, "retention": data.retention,
            "note": data.note or col.info.get("note", "")}


def _by_subject(tables: list[dict]) -> list[dict]:
    """Personal columns per data subject, grouped where purpose, basis and retention agree."""
    subjects: dict[str, dict[tuple, list[str]]] = {}
    for table in tables:
        for col in table["columns"]:
            if col["category"] != "personal":
                continue
            group = (tuple(col["purposes"]), col["legal_basis"], col["retention"])
            subjects.setdefault(col["data_subject"], {}).setdefault(group, []).append(
                f"{table['table']}.{col['column']}")
    return [{"data_subject": subject, "processing": [
                {"columns": columns, "purposes": list(purposes), "legal_basis": basis,
                 "retention": retention}
                for (purposes, basis, retention), columns in groups.items()]}
            for subject, groups in sorted(subjects.items())]


TRANSFERS = ("cross-region access (an operator's export, support access) is recorded in "
             "the transfer log, and appears in the holder's access export")


def regions_of(names: Iterable[str], home: str, kinds: dict[str, str]) -> list[dict]:
    """The `regions` section: each configured region, which is home, and its database's
    kind ("sqlite", "postgresql"): never a URL or a password."""
    return [{"name": name, "home": name == home, "database": kinds.get(name, "sqlite")}
            for name in names]


def build(metadata: MetaData, schedule: Iterable[dict] = (), *,
          regions: Iterable[dict] = (), subprocessors: Iterable[dict] = (),
          database_of: Callable[[str], str] | None = None) -> dict:
    """The record as JSON-ready data: every table (by name) and every column (in table
    order); `schedule` is the retention policy defaults, when the caller has them;
    `regions` (see `regions_of`) and `subprocessors` (the register, as its listing shows
    it) are passed in by the caller, which reads them; `database_of` says where a table
    lives (regions.database_of: main, region, every)."""
    tables = []
    for table in sorted(metadata.tables.values(), key=lambda t: t.name):
        columns = [_column(col.name, col, col.info["classification"]) for col in table.columns]
        where = {"database": database_of(table.name)} if database_of else {}
        tables.append({"table": table.name, "description": _description(table),
                       **where, "columns": columns})
    return {"schema": SCHEMA, "generated_by": f"mailhaven {__version__}",
            "data_subjects": _by_subject(tables), "retention_schedule": list(schedule),
            "regions": list(regions), "subprocessors": list(subprocessors),
            "transfers": TRANSFERS, "tables": tables}


def _cell(value: object) -> str:
    text = ", ".join(value) if isinstance(value, list) else str(value)
    return " ".join(text.split()).replace("|", "\\|") or "—"


def _table(header: list[str], rows: Iterable[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def markdown(record: dict) -> str:
    """The record for a privacy officer: who and what first, then every table in full."""
    out = ["# Record of processing activities (GDPR Article 30)", "",
           f"Generated by {record['generated_by']} from the classification every stored "
           "column declares (`mailhaven/storage/inventory.py`). Personal data is stored only "
           "as ciphertext under a per-subject vault key or as a keyed blind index.", "",
           "## Personal data by data subject", ""]
    for subject in record["data_subjects"]:
        out += [f"### {subject['data_subject'].capitalize()}", ""]
        out += _table(["Data (table.column)", "Purposes", "Legal basis", "Retention"],
                      ([", ".join(f"`{c}`" for c in p["columns"]), p["purposes"],
                        p["legal_basis"], p["retention"]] for p in subject["processing"]))
        out.append("")
    if record["retention_schedule"]:
        out += ["## Retention schedule", "",
                "Enforced by the retention job; accounts may set their own period within "
                "the limits.", ""]
        out += _table(["Category", "What", "Default days", "Limits (days)"],
                      ([f"`{c['category']}`", c["description"], c["default_days"],
                        "set by the operator" if c.get("set_by") == "operator"
                        else f"{c['min_days']}–{c['max_days']}"]
                       for c in record["retention_schedule"]))
        out.append("")
    if record.get("regions"):
        out += ["## Regions", "", "Each account's data is kept in the database of the region "
                "it chose.", ""]
        out += _table(["Region", "Home", "Database"],
                      ([r["name"], "yes" if r["home"] else "no", r["database"]]
                       for r in record["regions"]))
        out.append("")
    out += ["## Sub-processors", ""]
    if record.get("subprocessors"):
        out += _table(["Name", "Purpose", "Data", "Location", "Region", "Transfer mechanism",
                       "From"],
                      ([s["name"], s["purpose"], s["data_categories"], s["location"],
                        s["region"] or "all", s["transfer_mechanism"], s["from"]]
                       for s in record["subprocessors"]))
    else:
        out.append("None: no other company receives personal data on the operator's behalf.")
    out += ["", "## Transfers", "", record.get("transfers", TRANSFERS), ""]
    out += ["## Tables", ""]
    for table in record["tables"]:
        out += [f"### `{table['table']}`", ""]
        if table["description"]:
            out += [table["description"], ""]
        if "database" in table:
            out += [f"Database: {DATABASES.get(table['database'], table['database'])}.", ""]
        out += _table(["Column", "Category", "Data subject", "Purposes", "Legal basis",
                       "Retention", "Note"],
                      ([f"`{c['column']}`", c["category"], c["data_subject"], c["purposes"],
                        c["legal_basis"], c["retention"], c["note"]] for c in table["columns"]))
        out.append("")
    return "\n".join(out)
