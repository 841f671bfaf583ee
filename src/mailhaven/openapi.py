"""The API's OpenAPI document: form bodies and query parameters declared from field lists,
answers from JSON schemas beside each router, and Mailgun's error answers added to every
operation, so clients and fuzzers can be generated from it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import fastapi.routing
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from mailhaven.deps import current_account

YES_NO = ("yes", "no", "true", "false")
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
ERROR = {"$ref": "#/components/schemas/Error"}
WEBHOOK_ERROR = {"$ref": "#/components/schemas/WebhookError"}
SCHEMAS: dict[str, dict] = {
    "Error": {
        "type": "object", "required": ["message"],
        "properties": {"message": {"type": "string"}},
        "description": "Mailgun's error body."},
    "WebhookError": {
        "type": "object", "minProperties": 1,
        "properties": {key: {"type": "string"}
                       for key in ("message", "Reason", "Description", "Field")},
        "description": "Mailgun's webhook endpoints word some errors as {\"Reason\": …}, "
                       "{\"Description\": …} or {\"Field\": …}; Mailhaven answers as they do."},
}
SECURITY = {"basicAuth": {
    "type": "http", "scheme": "basic",
    "description": "Username `api`, password an API key of the account (as Mailgun's)."}}

# (description, example message) of each error an operation may answer
ERRORS: dict[int, tuple[str, str]] = {
    400: ("A parameter or the body is missing or invalid", "Invalid parameter limit: "
                                                           "Input should be a valid integer"),
    401: ("No API key, or not a valid one", "Invalid private key"),
    403: ("The key's role does not allow this request",
          "This API key's role (basic) does not allow this request"),
    404: ("The domain, or what the path names, is not found", "Domain not found"),
    413: ("The body is larger than the limit (after decompressing a gzip body)",
          "request size exceeds 52.4MiB limit"),
    429: ("Too many failed logins from this client: retry after Retry-After seconds",
          "Too many failed login attempts: try again in a minute"),
    503: ("The database is unavailable: retry after Retry-After seconds",
          "Service temporarily unavailable: please retry in a few seconds"),
}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying",
                               "schema": {"type": "integer"}}}


@dataclass(frozen=True)
class Field:
    """One form field as Mailgun's clients send it."""

    name: str
    description: str
    type: str = "string"  # "string", "integer", "boolean" (Mailgun's yes/no/true/false), "file"
    required: bool = False
    repeated: bool = False  # the field may be given several times
    enum: tuple[str, ...] = ()
    example: str | None = None

    def schema(self) -> dict[str, Any]:
        return {**self.value_schema(), "description": self.description}

    def value_schema(self) -> dict[str, Any]:
        if self.type == "file":
            one: dict[str, Any] = {"type": "string", "format": "binary"}
        elif self.type == "boolean":  # sent as text: "yes", "true", …
            one = {"type": "string", "enum": list(self.enum or YES_NO)}
        else:
            one = {"type": self.type}
            if self.enum:
                one["enum"] = list(self.enum)
        if self.example is not None:
            one["example"] = self.example
        return {"type": "array", "items": one} if self.repeated else one

    def parameter(self) -> dict[str, Any]:
        """This field as a query parameter."""
        out = {"name": self.name, "in": "query", "required": self.required,
               "description": self.description, "schema": self.value_schema()}
        if self.example is not None:
            out["example"] = [self.example] if self.repeated else self.example
        return out


def form(*fields: Field, description: str | None = None) -> dict[str, Any]:
    """`openapi_extra` declaring a form body, urlencoded or multipart (Mailgun's clients
    send either); file fields only in multipart. The route still reads the form itself
    (`http.read_form`): this only describes it."""
    def schema(with_files: bool) -> dict[str, Any]:
        chosen = [f for f in fields if with_files or f.type != "file"]
        out: dict[str, Any] = {"type": "object",
                               "properties": {f.name: f.schema() for f in chosen}}
        required = [f.name for f in chosen if f.required]
        if required:
            out["required"] = required
        return out

    content = {"multipart/form-data": {"schema": schema(True)}}
    if not any(f.type == "file" and f.required for f in fields):  # files need multipart
        content = {"application/x-www-form-urlencoded": {"schema": schema(False)}, **content}
    body: dict[str, Any] = {"required": any(f.required for f in fields), "content": content}
    if description:
        body["description"] = description
    return {"requestBody": body}


def query(*fields: Field) -> dict[str, Any]:
    """`openapi_extra` declaring the query parameters a route reads from
    `request.query_params` itself (those FastAPI reads for it it declares already)."""
    return {"parameters": [f.parameter() for f in fields]}


def answers(schema: dict[str, Any], example: Any = None, description: str | None = None,
            status: int = 200) -> dict[str, Any]:
    """`openapi_extra` declaring a 2xx JSON answer: its schema and an example (or none, where
    `responses=` gives one). Documentation only: the route's answer is not validated against
    it; tests/test_schemathesis checks it conforms."""
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["example"] = example
    answer: dict[str, Any] = {"content": {"application/json": media}}
    if description:
        answer["description"] = description
    return {"responses": {str(status): answer}}


# A small vocabulary for the answers' schemas
STRING: dict[str, Any] = {"type": "string"}
INTEGER: dict[str, Any] = {"type": "integer"}
NUMBER: dict[str, Any] = {"type": "number"}
BOOLEAN: dict[str, Any] = {"type": "boolean"}
ANY_OBJECT: dict[str, Any] = {"type": "object"}
DATE = {"type": "string", "description": "An RFC 2822 date, as Mailgun's"}


def array(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(properties: dict[str, dict[str, Any]], *, optional: tuple[str, ...] = (),
        title: str | None = None) -> dict[str, Any]:
    """An object with these properties, all present unless `optional`; more may come (as
    Mailgun adds fields, clients ignore those they don't know)."""
    out: dict[str, Any] = {"type": "object", "properties": properties,
                           "required": [k for k in properties if k not in optional]}
    if title:
        out["title"] = title
    return out


PAGING = obj({name: STRING for name in ("first", "last", "next", "previous")},
             title="Paging")
MESSAGE = obj({"message": STRING}, title="Message")


def paged(item: dict[str, Any], title: str) -> dict[str, Any]:
    """Mailgun's page of a list: `items`, and the URLs of the pages around it."""
    return obj({"items": array(item), "paging": PAGING}, title=title)


NO_FIELDS = form(description="No fields: an empty body (or none) is what this call takes.")


def json_body(schema: dict[str, Any], example: Any, *, form_too: tuple[Field, ...] = (),
              ) -> dict[str, Any]:
    """`openapi_extra` for a JSON body; `form_too` when the route takes a form as well."""
    content: dict[str, Any] = {"application/json": {"schema": schema, "example": example}}
    if form_too:
        content.update(form(*form_too)["requestBody"]["content"])
    return {"requestBody": {"required": True, "content": content}}


def install(app: FastAPI) -> None:
    """Build the document once, on first request, completed by `complete`."""
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version,
                              description=app.description, routes=app.routes)
            complete(doc, _api_routes(app))
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _api_routes(app: FastAPI) -> Iterator[tuple[str, APIRoute]]:
    """Each documented route and its path. FastAPI from 0.165 keeps an included router's
    routes behind a wrapper and walks them with `iter_route_contexts`."""
    walk = getattr(fastapi.routing, "iter_route_contexts", None)
    for context in walk(app.routes) if walk else app.routes:
        route = getattr(context, "original_route", context)
        if isinstance(route, APIRoute) and route.include_in_schema:
            yield getattr(context, "path_format", None) or route.path_format, route


def complete(doc: dict[str, Any], routes: Iterable[tuple[str, APIRoute]]) -> None:
    """Add what FastAPI cannot know: Basic auth, and the errors each operation may answer
    in Mailgun's shape. Our validation errors are 400s, never FastAPI's 422."""
    components = doc.setdefault("components", {})
    components.setdefault("schemas", {}).update(SCHEMAS)
    for unused in ("HTTPValidationError", "ValidationError"):
        components["schemas"].pop(unused, None)
    components["securitySchemes"] = SECURITY
    for path, route in routes:
        for method in route.methods or ():
            _complete_operation(doc["paths"][path][method.lower()], path, route)


def _complete_operation(op: dict[str, Any], path: str, route: APIRoute) -> None:
    responses = op.setdefault("responses", {})
    responses.pop("422", None)
    optional_key = any("basicAuth" in each for each in op.get("security", []))
    authenticated = optional_key or _authenticated(route.dependant)
    has_body = "requestBody" in op
    statuses = [503]
    if op.get("parameters") or has_body:
        statuses.append(400)
    if authenticated:
        statuses += [401, 403, 429]
        op.setdefault("security", [{"basicAuth": []}])
    if "{" in path:
        statuses.append(404)
    if has_body:
        statuses.append(413)
    schema = WEBHOOK_ERROR if "webhooks" in route.tags else ERROR
    for status in sorted(statuses):
        described = responses.setdefault(str(status), {})
        text, message = ERRORS[status]
        described.setdefault("description", text)
        content = described.setdefault("content", {})
        if status == 401 and path.endswith(("/messages", "/messages.mime")):
            content.setdefault("text/plain", {"schema": {"type": "string"},
                                              "example": "Forbidden"})
            continue  # Mailgun's send answers a bad key in plain text
        json_content = content.setdefault("application/json", {})
        json_content["schema"] = schema
        json_content.setdefault("example", {"message": message})
        if status in (429, 503):
            described.setdefault("headers", RETRY_AFTER)
    for status, described in responses.items():
        for media_type, media in described.get("content", {}).items():
            if media.get("schema"):
                if str(media["schema"].get("title", "")).startswith("Response "):
                    del media["schema"]["title"]  # FastAPI's, from the handler's name
                continue
            if media_type != "application/json":  # a download: a zip, an attachment
                media["schema"] = {"type": "string", "format": "binary"}
            else:  # every answer is a JSON object; a router's own errors are Mailgun's
                media["schema"] = {"type": "object"} if status.startswith("2") else schema


def _authenticated(dependant: Dependant) -> bool:
    return any(d.call is current_account for d in _dependencies(dependant))


def _dependencies(dependant: Dependant) -> Iterator[Dependant]:
    for sub in dependant.dependencies:
        yield sub
        yield from _dependencies(sub)
