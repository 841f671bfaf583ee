"""`POST /v1/analytics/metrics` and `POST /v1/analytics/logs`: Mailgun's JSON bodies, read
within the JSON limits, checked here, answered by the analytics services."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, TypeAdapter

from mailhaven.analytics import filters, logs, metrics
from mailhaven.analytics import openapi as answered
from mailhaven.deps import AccountDep, ServicesDep
from mailhaven.errors import BadRequest
from mailhaven.http import in_thread, json_as, read_json
from mailhaven.services import Services
from mailhaven.stats.service import window

router = APIRouter(tags=["analytics"])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a field we'd ignore is refused instead


class LabeledValue(_Body):
    label: str = ""
    value: str


class FilterPredicate(_Body):
    attribute: str
    comparator: str
    values: list[LabeledValue] = []


class FilterGroup(_Body):
    AND: list[FilterPredicate] = []


class MetricsPagination(_Body):
    sort: str = ""
    skip: int = 0
    limit: int = Field(default=metrics.DEFAULT_LIMIT, description="at most 1500")
    total: int = 0  # Mailgun's Go SDK sends the whole struct back, total included


class MetricsBody(_Body):
    start: str = Field(default="", description="RFC 2822; default: 7 days before `end`")
    end: str = Field(default="", description="RFC 2822; default: now")
    resolution: str = Field(default="", description="hour, day (default) or month")
    duration: str = Field(default="", description="e.g. 24h, 7d, 1m: counted back from "
                                                  "`end`, overrides `start`")
    dimensions: list[str] = Field(default=[], description="time, domain, tag")
    metrics: list[str] = Field(description="e.g. accepted_count, delivered_rate")
    filter: FilterGroup = FilterGroup()
    include_subaccounts: StrictBool = False
    include_aggregates: StrictBool = False
    pagination: MetricsPagination = MetricsPagination()


class LogsPagination(_Body):
    sort: str = Field(default=logs.DEFAULT_SORT, description="timestamp:asc|timestamp:desc")
    token: str = Field(default="", description="a page's token from `pagination`")
    limit: int = Field(default=logs.DEFAULT_LIMIT, description="at most 100")


class LogsBody(_Body):
    start: str = Field(default="", description="RFC 2822; default: a day before `end`")
    end: str = Field(default="", description="RFC 2822; default: now")
    events: list[str] = []
    metric_events: list[str] = Field(default=[], description="not supported: use `events`")
    filter: FilterGroup = FilterGroup()
    include_subaccounts: StrictBool = False
    include_totals: StrictBool = False
    pagination: LogsPagination = LogsPagination()


METRICS_BODY = TypeAdapter(MetricsBody)
LOGS_BODY = TypeAdapter(LogsBody)


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON schema with its `$defs` written in place: OpenAPI can't resolve
    `#/$defs/…` inside an operation."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return walk(defs[ref.removeprefix("#/$defs/")])
            return {k: walk(v) for k, v in node.items()}
        return [walk(v) for v in node] if isinstance(node, list) else node

    inlined: dict[str, Any] = walk(schema)
    return inlined


def _openapi(body: TypeAdapter[Any], example: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": _inlined(body.json_schema()), "example": example}}}}


def _responses(example: dict[str, Any], bad: str) -> dict[int | str, dict[str, Any]]:
    def answer(description: str, sample: dict[str, Any]) -> dict[str, Any]:
        return {"description": description,
                "content": {"application/json": {"example": sample}}}
    return {200: answer("OK", example), 400: answer("Bad request", {"message": bad}),
            401: answer("Unauthorized", {"message": "Invalid private key"})}


METRICS_EXAMPLE = {"start": "Tue, 26 Nov 2024 00:00:00 +0000",
                   "end": "Tue, 03 Dec 2024 00:00:00 +0000", "resolution": "day",
                   "dimensions": ["time"], "metrics": ["accepted_count", "delivered_rate"],
                   "filter": {"AND": [{"attribute": "domain", "comparator": "=", "values": [
                       {"label": "mg.example.com", "value": "mg.example.com"}]}]},
                   "include_aggregates": True}
METRICS_ANSWER = {"start": "Tue, 26 Nov 2024 00:00:00 +0000",
                  "end": "Tue, 03 Dec 2024 00:00:00 +0000", "resolution": "day",
                  "duration": "", "dimensions": ["time"],
                  "pagination": {"sort": "", "skip": 0, "limit": 1500, "total": 1},
                  "items": [{"dimensions": [{"dimension": "time",
                                             "value": "Wed, 27 Nov 2024 00:00:00 +0000",
                                             "display_value": "Wed, 27 Nov 2024 00:00:00 +0000"}],
                             "metrics": {"accepted_count": 3, "delivered_rate": "1.0000"}}],
                  "aggregates": {"metrics": {"accepted_count": 3, "delivered_rate": "1.0000"}}}
LOGS_EXAMPLE = {"start": "Wed, 25 Jun 2025 00:00:00 +0000",
                "end": "Thu, 26 Jun 2025 00:00:00 +0000", "events": ["delivered"],
                "filter": {"AND": [{"attribute": "domain", "comparator": "=", "values": [
                    {"label": "mg.example.com", "value": "mg.example.com"}]}]},
                "pagination": {"sort": "timestamp:asc", "limit": 50}}
LOGS_ANSWER = {"start": "Wed, 25 Jun 2025 00:00:00 +0000",
               "end": "Thu, 26 Jun 2025 00:00:00 +0000",
               "items": [{"id": "ZHsjwTeBTKu1mjdMmcMZvA", "event": "delivered",
                          "@timestamp": "2025-06-25T17:19:51.166Z",
                          "account": {"id": "6576d2a07a4fa0dd5d35f3b5"},
                          "domain": {"name": "mg.example.com"},
                          "recipient": "alice@example.org", "user-variables": "{}",
                          "flags": {"is-authenticated": True, "is-callback": False}}],
               "pagination": {"next": "eyJhY2NvdW50Ijoi….Zm9v", "first": "eyJhY2Nv….YmFy"},
               "aggregates": {}}


def _predicates(group: FilterGroup) -> tuple[filters.Predicate, ...]:
    return tuple(filters.predicate(p.attribute, p.comparator, (v.value for v in p.values))
                 for p in group.AND)


def metrics_query(body: MetricsBody, now: float) -> metrics.MetricsQuery:
    start, end, resolution = window(start=body.start.strip(), end=body.end.strip(),
                                    duration=body.duration.strip(),
                                    resolution=body.resolution.strip() or "day", now=now)
    return metrics.MetricsQuery(
        start=start, end=end, resolution=resolution, dimensions=tuple(body.dimensions),
        metrics=tuple(dict.fromkeys(body.metrics)), filters=_predicates(body.filter),
        sort=body.pagination.sort, skip=body.pagination.skip, limit=body.pagination.limit,
        aggregates=body.include_aggregates, duration=body.duration.strip())


def logs_page(body: LogsBody, services: Services, account_id: str) -> logs.Page:
    if body.pagination.token:  # the query travels in the token, signed
        return logs.Page.from_token(body.pagination.token, services.vault, account_id)
    if body.metric_events:
        raise BadRequest("metric_events is not supported: name the events in "
                                 "`events`")
    if body.pagination.sort not in logs.SORTS:
        raise BadRequest("pagination.sort must be timestamp:asc or timestamp:desc")
    end = filters.instant(body.end, "end") or services.clock.now()
    start = filters.instant(body.start, "start")
    query = logs.LogsQuery(
        start=end - logs.DEFAULT_SPAN if start is None else start, end=end,
        events=tuple(dict.fromkeys(body.events)), filters=_predicates(body.filter),
        ascending=logs.SORTS[body.pagination.sort], limit=body.pagination.limit,
        totals=body.include_totals)
    return logs.Page(logs.prepare(services.vault, account_id, query))


@router.post("/v1/analytics/metrics", summary="Query account metrics",
             openapi_extra=_openapi(METRICS_BODY, METRICS_EXAMPLE),
             responses=_responses(METRICS_ANSWER, "Invalid metric 'sent_rate'"))
async def analytics_metrics(request: Request, services: ServicesDep,
                            account_id: AccountDep) -> dict[str, Any]:
    """Counts and rates by time, domain and tag, from counters that hold no personal data."""
    query = metrics_query(json_as(METRICS_BODY, await read_json(request)),
                          services.clock.now())

    def run() -> dict[str, Any]:
        with services.db.sessions() as session:
            return metrics.compute(session, account_id, query)
    return await in_thread(run)


@router.post("/v1/analytics/logs", summary="List logs",
             openapi_extra=_openapi(LOGS_BODY, LOGS_EXAMPLE) | answered.LOGS,
             responses=_responses(LOGS_ANSWER, "Invalid event 'sent'"))
async def analytics_logs(request: Request, services: ServicesDep,
                         account_id: AccountDep) -> JSONResponse:
    """The account's events as log items, a page at a time."""
    page = logs_page(json_as(LOGS_BODY, await read_json(request)), services, account_id)

    def run() -> JSONResponse:
        with services.db.sessions() as session:
            body = logs.fetch(session, services.vault, account_id, page,
                              str(request.base_url))
        return JSONResponse(body)  # decoded documents: nothing for FastAPI to convert
    return await in_thread(run)
