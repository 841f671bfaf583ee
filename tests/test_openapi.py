"""/openapi.json describes every operation well enough to generate a client from it: its
body, a 2xx answer with a schema, and Mailgun's error answers with examples."""

from __future__ import annotations

import ast
import inspect
import shutil
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from jsonschema import Draft202012Validator

from mailhaven.app import create_app
from mailhaven.config import Settings
from mailhaven.openapi import _api_routes
from mailhaven.services import Services

CHANGES = ("post", "put", "patch")
FORMS = {"application/x-www-form-urlencoded", "multipart/form-data"}
ERROR_SCHEMAS = {"#/components/schemas/Error", "#/components/schemas/WebhookError"}


@pytest.fixture(scope="module")
def app(sqlite_schema: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    """The document does not depend on the database: built once, on SQLite."""
    folder = tmp_path_factory.mktemp("openapi")
    shutil.copyfile(sqlite_schema, folder / "mailhaven.db")
    services = Services.start(Settings(data_dir=folder, hostname="mx.mailhaven.test",
                                       database_url=f"sqlite:///{folder / 'mailhaven.db'}"),
                              migrate=False)
    try:
        yield create_app(services)
    finally:
        services.close()


@pytest.fixture(scope="module")
def document(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


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


# Mailgun's operations as its clients use them: each answer described, not only "an object"
MAILGUN_ANSWERS = (
    "POST /v3/{domain_name}/messages", "POST /v3/{domain_name}/messages.mime",
    "GET /v3/domains", "GET /v4/domains", "POST /v3/domains", "GET /v4/domains/{name}",
    "PUT /v3/domains/{name}/verify", "GET /v3/{domain_name}/events",
    "GET /v3/{domain_name}/events/{token}", "GET /v3/{domain_name}/bounces",
    "GET /v3/{domain_name}/unsubscribes/{value}", "POST /v3/{domain_name}/complaints",
    "DELETE /v3/{domain_name}/whitelists/{value}", "GET /v3/{domain_name}/stats/total",
    "GET /v3/{domain_name}/tags", "GET /v3/{domain_name}/tags/{tag}/stats",
    "GET /v3/domains/{domain_name}/webhooks", "POST /v3/domains/{domain_name}/webhooks",
    "GET /v1/webhooks", "GET /v3/{domain_name}/templates",
    "GET /v3/{domain_name}/templates/{template_name}/versions", "GET /v3/lists/pages",
    "POST /v3/lists/{list_address}/members", "GET /v3/routes", "PUT /v3/routes/{route_id}",
    "POST /v1/analytics/logs")


def test_mailgun_operations_describe_their_answers(document: dict[str, Any]) -> None:
    ops = {f"{m.upper()} {p}": op for m, p, op in _operations(document)}
    vague = [name for name in MAILGUN_ANSWERS
             if not _properties(ops[name]["responses"]["200"]["content"]["application/json"]
                                ["schema"])]
    assert vague == []


def _properties(schema: dict[str, Any]) -> bool:
    return bool(schema.get("properties")) or all(
        _properties(each) for each in schema.get("anyOf", [{}]))


def test_every_example_answer_conforms_to_its_schema(document: dict[str, Any]) -> None:
    """The examples are what a generated client's docs show: each must be a valid answer."""
    wrong = []
    for method, path, op in _operations(document):
        for status, described in op["responses"].items():
            media = described.get("content", {}).get("application/json", {})
            if "example" not in media or "schema" not in media:
                continue
            validator = Draft202012Validator({**media["schema"],
                                              "components": document["components"]})
            wrong += [f"{method.upper()} {path} {status}: {e.message}"
                      for e in validator.iter_errors(media["example"])]
    assert wrong == []


# -- query parameters a handler reads itself ------------------------------------------------

def test_every_query_parameter_a_handler_reads_is_declared(
        app: FastAPI, document: dict[str, Any]) -> None:
    """Read from the source: each name an operation's handler reads from
    `request.query_params` (itself, in its module's helpers, or where it hands the query
    string on) is a declared query parameter of it. Mailgun's filters we refuse (a module's
    UNSUPPORTED_FILTERS) are not declared: they answer 400."""
    undeclared = []
    for path, route in _api_routes(app):
        read = QueryReads().of(route.endpoint)
        for method in route.methods or ():
            op = document["paths"][path][method.lower()]
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
            undeclared += [f"{method} {path}: {name}" for name in sorted(read - declared)]
    assert undeclared == []
    assert QueryReads().of(_reads_every_way) == {"a", "b", "c", "d", "e", "f", "g"}


class QueryReads:
    """The names a function reads from a query string, found in its source: `q.get("a")`,
    `q.getlist("a")`, `q["a"]`, `"a" in q`, and `q.get(k) for k in NAMES` (a module's tuple),
    where `q` is `….query_params`, a name bound to it (or to `dict(…)` of it), or a
    parameter it was passed in. Calls are followed within the module, and into other
    modules where they are handed the query string."""

    def __init__(self) -> None:
        self.seen: set[tuple[Callable[..., Any], frozenset[str]]] = set()

    def of(self, function: Callable[..., Any], given: frozenset[str] = frozenset(),
           ) -> set[str]:
        if (function, given) in self.seen:
            return set()
        self.seen.add((function, given))
        module = inspect.getmodule(function)
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
        names = set(given)
        for _ in range(2):  # an alias of an alias
            names |= {target.id for node in ast.walk(tree) if isinstance(node, ast.Assign)
                      and self._is_query(node.value, names)
                      for target in node.targets if isinstance(target, ast.Name)}
        loops = {gen.target.id: getattr(module, gen.iter.id) for gen in ast.walk(tree)
                 if isinstance(gen, ast.comprehension) and isinstance(gen.target, ast.Name)
                 and isinstance(gen.iter, ast.Name)
                 and isinstance(getattr(module, gen.iter.id, None), tuple)
                 and not gen.iter.id.startswith("UNSUPPORTED")}

        def keys(node: ast.expr) -> set[str]:
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                return {node.value}
            return set(loops.get(node.id, ())) if isinstance(node, ast.Name) else set()

        read: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Subscript) and self._is_query(node.value, names):
                read |= keys(node.slice)
            elif isinstance(node, ast.Compare) and isinstance(node.ops[0], ast.In | ast.NotIn) \
                    and self._is_query(node.comparators[0], names):
                read |= keys(node.left)
            elif isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Attribute) and func.attr in ("get", "getlist") \
                        and self._is_query(func.value, names) and node.args:
                    read |= keys(node.args[0])
                read |= self._called(node, module, names)
        return read

    def _called(self, call: ast.Call, module: Any, names: set[str]) -> set[str]:
        func = call.func
        target = getattr(module, func.id, None) if isinstance(func, ast.Name) else None
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            target = getattr(getattr(module, func.value.id, None), func.attr, None)
        if not inspect.isfunction(target) or not target.__module__.startswith(
                ("mailhaven", __name__)):
            return set()
        params = list(inspect.signature(target).parameters)
        handed = {params[i] for i, arg in enumerate(call.args)
                  if i < len(params) and self._is_query(arg, names)}
        handed |= {k.arg for k in call.keywords if k.arg and self._is_query(k.value, names)}
        if handed or target.__module__ == module.__name__:
            return self.of(target, frozenset(handed))
        return set()

    @staticmethod
    def _is_query(node: ast.expr, names: set[str]) -> bool:
        if isinstance(node, ast.Attribute):
            return node.attr == "query_params"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id == "dict" and node.args:
            return QueryReads._is_query(node.args[0], names)
        return isinstance(node, ast.Name) and node.id in names


NAMES = ("f", "g")
UNSUPPORTED_FILTERS = ("h",)


def _reads_every_way(request: Any) -> Any:
    params = request.query_params
    return (params.get("a"), request.query_params.getlist("b"), params["c"], "d" in params,
            _handed(dict(request.query_params)))


def _handed(given: dict[str, str]) -> Any:
    return (given.get("e"), [k for k in NAMES if given.get(k)],
            [k for k in UNSUPPORTED_FILTERS if k in given])
