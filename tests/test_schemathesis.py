"""Schemathesis against the live app, from its own /openapi.json: every operation, a few
generated requests each, authenticated with a real account's key; no 5xx, and every answer
conforms to the schema the document declares for its status."""

from __future__ import annotations

import base64
from collections import Counter
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.support import LiveServer

EXAMPLES = 3  # per operation: 144 operations, both databases, well under 90 s together
CHECKS = [not_a_server_error, response_schema_conformance]
# Nothing is excluded: no generated request can delete the account (DELETE
# /v1/privacy/account and an erasure request both want the account's id in `confirm`) or
# its domain (the domain routes' `{name}` is generated; `{domain_name}` is ours).


def test_generated_requests_get_no_5xx_and_answers_conform(
        live: LiveServer, account: tuple[str, str], domain: str) -> None:
    with live.client(account[1]) as client:
        document = client.get("/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)
    key = base64.b64encode(f"api:{account[1]}".encode()).decode()
    headers = {"Authorization": f"Basic {key}"}
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    for result in schema.get_all_operations():
        operation = result.ok()
        # the account's own domain, so domain-scoped calls reach their logic, not a 404
        fixed = {"domain_name": domain} if "{domain_name}" in operation.path else None
        strategy = operation.as_strategy(path_parameters=fixed, headers=headers)
        failures += _run(operation.label, strategy, live.base_url, statuses)
    assert failures == []
    # the generated requests reached the routes' logic, not only their refusals
    assert statuses[200] > 50 and sum(statuses.values()) > 2 * len(document["paths"])


def _run(label: str, strategy: st.SearchStrategy[Any], base_url: str,
         statuses: Counter[int]) -> list[str]:
    """Each generated case sent and checked; the failures' summaries (one per check)."""
    found: dict[str, str] = {}

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    @given(case=strategy)
    def check(case: Any) -> None:
        try:
            response = case.call(base_url=base_url, timeout=60)
            statuses[response.status_code] += 1
            case.validate_response(response, checks=CHECKS)
        except (Exception, BaseExceptionGroup) as exc:  # checks failed: noted, and on
            found.setdefault(f"{label}: {type(exc).__name__}", str(exc)[:2000])

    check()
    return [f"{key}\n{text}" for key, text in found.items()]
