"""A recipient's mailed link is not a lasting bearer token (issue 10, finding 18): after the
request is answered it works for a day, and an export downloads a few times only."""

from __future__ import annotations

from mailhaven.privacy.requests import LINK_HOURS, MAX_DOWNLOADS
from tests.privacy.test_rights import _confirm_by_mail, _export_json, _token_of
from tests.support import Sink

GONE_LINK = {"message": f"This link has expired: it works for {LINK_HOURS} hours after the "
                        f"request is answered. Ask again for a new one."}


def _answered_access_request(api, live, services, domain) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    with Sink() as sink, live.client() as anonymous:
        assert anonymous.post("/v1/privacy/requests", data={
            "type": "access", "email": "ann@example.org", "domain": domain}).status_code == 202
        status = _confirm_by_mail(live, services, sink, anonymous)
        return status["id"], _token_of(sink)


def test_an_export_link_downloads_a_few_times_then_is_refused(api, live, services,
                                                              domain) -> None:
    request_id, token = _answered_access_request(api, live, services, domain)
    export = f"/v1/privacy/requests/{request_id}/export"
    with live.client() as anonymous:
        for _ in range(MAX_DOWNLOADS):
            _export_json(anonymous.get(export, params={"token": token}))
        again = anonymous.get(export, params={"token": token})
        assert again.status_code == 410
        assert again.json() == {"message": f"This export has been downloaded {MAX_DOWNLOADS} "
                                           f"times, as often as a link allows. Ask again for "
                                           f"a new one."}
        # The customer, with its API key, is not limited.
        _export_json(api.get(export))


def test_a_link_stops_working_a_day_after_the_request_is_answered(api, live, services,
                                                                  clock, domain) -> None:
    request_id, token = _answered_access_request(api, live, services, domain)
    clock.advance(LINK_HOURS * 3600 + 1)
    with live.client() as anonymous:
        for path in (f"/v1/privacy/requests/{request_id}",
                     f"/v1/privacy/requests/{request_id}/export"):
            late = anonymous.get(path, params={"token": token})
            assert (late.status_code, late.json()) == (410, GONE_LINK)
        page = anonymous.get(f"/v1/privacy/verify/{token}")
        assert page.status_code == 410 and "This link has expired" in page.text
        assert anonymous.post(f"/v1/privacy/verify/{token}").status_code == 410
    assert api.get(f"/v1/privacy/requests/{request_id}").json()["state"] == "completed"
