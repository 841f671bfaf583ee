"""/openapi.json describes every operation well enough to generate a client from it: its
body, a 2xx answer with a schema, and Mailgun's error answers with examples."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailhaven.app import create_app
from mailhaven.config import Settings
from mailhaven.services import Services

CHANGES = ("post", "put", "patch")
FORMS = {"application/x-www-form-urlencoded", "multipart/form-data"}
ERROR_SCHEMAS = {"#/components/schemas/Error", "#/components/schemas/WebhookError"}


@pytest.fixture(scope="module")
def document(sqlite_schema: Path, tmp_path_factory: pytest.TempPathFactory,
             ) -> Iterator[dict[str, Any]]:
    """The document does not depend on the database: built once, on SQLite."""
    folder = tmp_path_factory.mktemp("openapi")
    shutil.copyfile(sqlite_schema, folder / "mailhaven.db")
    services = Services.start(Settings(data_dir=folder, hostname="mx.mailhaven.test",
                                       database_url=f"sqlite:///{folder / 'mailhaven.db'}"),
                              migrate=False)
    try:
        yield create_app(services).openapi()
    finally:
        services.close()


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, op in item.items():
            yield method, path, op


def test_every_change_declares_its_body(document: dict[str, Any]) -> None:
    missing = [f"{m.upper()} {p}" for m, p, op in _operations(document)
               if m in CHANGES and not op.get("requestBody", {}).get("content")]
    assert missing == []


def test_every_form_is_declared_urlencoded_and_multipart(document: dict[str, Any]) -> None:
    """Mailgun's clients send either; a form whose file is required is multipart only."""
    wrong = []
    for method, path, op in _operations(document):
        content = op.get("requestBody", {}).get("content", {})
        if "application/json" in content or not content:
            continue
        files_required = any(
            schema.get("format") == "binary" or schema.get("items", {}).get("format") == "binary"
            for name, schema in content["multipart/form-data"]["schema"]["properties"].items()
            if name in content["multipart/form-data"]["schema"].get("required", []))
        if set(content) != (FORMS - {"application/x-www-form-urlencoded"}
                            if files_required else FORMS):
            wrong.append(f"{method.upper()} {path}: {sorted(content)}")
    assert wrong == []


def test_every_operation_answers_2xx_with_a_schema(document: dict[str, Any]) -> None:
    missing = []
    for method, path, op in _operations(document):
        answers = [described.get("content", {}) for status, described
                   in op["responses"].items() if status.startswith("2")]
        if not any(media.get("schema") for content in answers for media in content.values()):
            missing.append(f"{method.upper()} {path}")
    assert missing == []


def test_every_operation_declares_mailgun_errors_with_examples(
        document: dict[str, Any]) -> None:
    """{"message": …} (the webhook endpoints' Reason/Description too) for 4xx and 503; never
    FastAPI's 422, which this API never answers (a validation error is a 400)."""
    wrong = []
    for method, path, op in _operations(document):
        responses = op["responses"]
        errors = {status: described["content"]["application/json"]
                  for status, described in responses.items()
                  if status[0] in "45" and "application/json" in described.get("content", {})}
        if "422" in responses or "503" not in errors or not any(s[0] == "4" for s in errors):
            wrong.append(f"{method.upper()} {path}: {sorted(responses)}")
        for status, media in errors.items():
            if media["schema"].get("$ref") not in ERROR_SCHEMAS or "example" not in media:
                wrong.append(f"{method.upper()} {path} {status}: {media}")
    assert wrong == []


def test_authenticated_operations_say_how_and_answer_401(document: dict[str, Any]) -> None:
    assert document["components"]["securitySchemes"]["basicAuth"]["scheme"] == "basic"
    ops = {f"{m.upper()} {p}": op for m, p, op in _operations(document)}
    assert ops["GET /v3/domains"]["security"] == [{"basicAuth": []}]
    assert ops["GET /v3/domains"]["responses"]["401"]["content"]["application/json"][
        "example"] == {"message": "Invalid private key"}
    # as Mailgun's: a send with a bad key is answered "Forbidden" in plain text
    assert ops["POST /v3/{domain_name}/messages"]["responses"]["401"]["content"] == {
        "text/plain": {"schema": {"type": "string"}, "example": "Forbidden"}}
    assert all("401" in op["responses"] for op in ops.values() if "security" in op)
