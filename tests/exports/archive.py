"""Reading an export zip back, as its receiver would: the JSON, the CSVs, the raw bytes."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from dataclasses import dataclass
from datetime import datetime
from importlib.resources import files
from pathlib import Path

from jsonschema import Draft202012Validator, FormatChecker

SCHEMA = json.loads((files("mailhaven.exports") / "export.schema.json").read_text())
DATES = FormatChecker([])  # jsonschema checks date-time only with an extra package


@DATES.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    return not isinstance(value, str) or "T" in value and bool(datetime.fromisoformat(value))


@dataclass
class Archive:
    raw: bytes  # the zip as stored
    members: dict[str, bytes]  # each file, decompressed

    @property
    def document(self) -> dict:
        return json.loads(self.members["export.json"])

    def csv(self, category: str) -> list[dict]:
        text = self.members[f"{category}.csv"].decode("utf-8")
        return list(csv.DictReader(io.StringIO(text, newline="")))

    def contains(self, secret: bytes) -> bool:
        return secret in self.raw or any(secret in data for data in self.members.values())


def read(source: bytes | Path) -> Archive:
    raw = source if isinstance(source, bytes) else source.read_bytes()
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        return Archive(raw, {name: archive.read(name) for name in archive.namelist()})


def validate(document: dict) -> None:
    Draft202012Validator.check_schema(SCHEMA)
    Draft202012Validator(SCHEMA, format_checker=DATES).validate(document)
