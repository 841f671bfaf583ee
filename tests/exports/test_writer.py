"""The zip writer and the registry, without a database: the schema describes every category,
a failed export leaves nothing behind, and an undescribed column is refused."""

from __future__ import annotations

import pytest

from mailhaven.exports.registry import BOTH, CATEGORIES, Category, Scope
from mailhaven.exports.writer import write_zip
from tests.exports.archive import SCHEMA, read

SCOPE = Scope(session=None, vault=None, account_id="a1")  # type: ignore[arg-type]
SUBJECT = {"kind": "account holder", "account_id": "a1"}


def test_the_published_schema_describes_every_registered_category() -> None:
    described = SCHEMA["properties"]["categories"]["properties"]
    assert set(CATEGORIES) == set(described)
    for name, category in CATEGORIES.items():
        row = SCHEMA["$defs"][described[name]["items"]["$ref"].rpartition("/")[2]]
        if category.open_ended:
            assert set(category.columns) <= set(row["properties"]), name
        else:
            assert list(row["properties"]) == list(category.columns), name
            assert row["additionalProperties"] in (False, True), name


def _category(name: str, rows: list[dict], columns: tuple[str, ...]) -> Category:
    def produce(scope: Scope):  # type: ignore[no-untyped-def]
        for row in rows:
            if isinstance(row, Exception):
                raise row
            yield row
    return Category(name, produce, columns, BOTH, count=lambda _scope: len(rows))


def test_rows_stream_to_the_json_and_the_csv_in_batches(tmp_path) -> None:
    rows = [{"n": i, "nested": {"i": [i]}} for i in range(2500)]
    seen: list[tuple[int, int]] = []
    counts = write_zip(tmp_path / "x.zip", scope=SCOPE, subject=SUBJECT,
                       generated_at="2024-01-01T00:00:00Z",
                       categories=[_category("things", rows, ("n", "nested")),
                                   _category("nothing", [], ("n",))],
                       progress=lambda done, total: seen.append((done, total)))
    assert counts == {"things": 2500, "nothing": 0}
    assert seen == [(0, 2500), (1000, 2500), (2000, 2500), (2500, 2500)]
    export = read(tmp_path / "x.zip")
    assert export.document["categories"] == {"things": rows, "nothing": []}
    assert export.csv("things")[7] == {"n": "7", "nested": '{"i": [7]}'}
    assert (tmp_path / "x.zip").stat().st_mode & 0o077 == 0  # personal data: owner only


def test_a_failed_export_leaves_the_target_and_the_folder_as_they_were(tmp_path) -> None:
    (tmp_path / "x.zip").write_bytes(b"previous export")
    rows = [{"n": 1}] * 1500 + [RuntimeError("database went away")]
    seen: list[int] = []
    with pytest.raises(RuntimeError):
        write_zip(tmp_path / "x.zip", scope=SCOPE, subject=SUBJECT, generated_at="t",
                  categories=[_category("first", [], ("n",)), _category("things", rows, ("n",))],
                  progress=lambda done, _total: seen.append(done))
    assert seen[-1] == 1000  # it failed after writing a batch
    assert [p.name for p in tmp_path.iterdir()] == ["x.zip"]
    assert (tmp_path / "x.zip").read_bytes() == b"previous export"


def test_a_row_with_an_undescribed_column_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="undeclared columns"):
        write_zip(tmp_path / "x.zip", scope=SCOPE, subject=SUBJECT, generated_at="t",
                  categories=[_category("things", [{"n": 1, "secret": 2}], ("n",))])
    assert list(tmp_path.iterdir()) == []
