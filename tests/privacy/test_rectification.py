"""A recipient's rectification never writes suppressions for an address that has not proved
control of itself (issue 10, finding 2)."""

from __future__ import annotations

from tests.feedback.test_reports import Listener, _arf
from tests.privacy.test_rights import _confirm_by_mail
from tests.support import Sink, deliver_due

MALLORY, VICTIM = "mallory@example.net", "victim@example.org"


def test_a_rectification_cannot_get_someone_else_s_address_suppressed(api, live, services,
                                                                      domain) -> None:
    with Sink() as sink, live.client() as anonymous:
        # Mallory once received mail from the customer's domain.
        assert api.post(f"/v3/{domain}/messages", data={
            "from": f"news@{domain}", "to": MALLORY, "subject": "Hello",
            "text": "hi"}).status_code == 200
        deliver_due(services, sink)
        [first] = sink.received
        # She asks to "correct" her address to the victim's, …
        assert anonymous.post("/v1/privacy/requests", data={
            "type": "rectification", "email": MALLORY, "new_email": VICTIM,
            "domain": domain}).status_code == 202
        deliver_due(services, sink)  # the link is in her mailbox
        # … complains about her own copy through the return path, …
        with Listener(services) as listener:
            listener.send(first.mail_from, _arf(first.data, first.mail_from))
        assert api.get(f"/v3/{domain}/complaints/{MALLORY}").status_code == 200
        # … and confirms from her own mailbox.
        status = _confirm_by_mail(live, services, sink, anonymous)
        assert status["state"] == "completed"
        # The customer's password reset still reaches the victim.
        assert api.post(f"/v3/{domain}/messages", data={
            "from": f"no-reply@{domain}", "to": VICTIM, "subject": "Password reset",
            "text": "Your code is 123456", "o:category": "transactional"}).status_code == 200
        deliver_due(services, sink)
    reset = [r for r in sink.received if r.message["Subject"] == "Password reset"]
    assert [r.rcpt_tos for r in reset] == [[VICTIM]]
    failed = api.get(f"/v3/{domain}/events", params={"event": "failed"}).json()["items"]
    assert [(e["recipient"], e["reason"]) for e in failed] == []
    assert status["result"]["rectified"] == []
    for kind in ("complaints", "bounces", "unsubscribes"):
        assert api.get(f"/v3/{domain}/{kind}/{VICTIM}").status_code == 404
    # Mallory's own complaint stays where it was: nothing is lifted on her word either.
    assert api.get(f"/v3/{domain}/complaints/{MALLORY}").status_code == 200


def test_a_customer_relaying_a_verified_rectification_still_moves_the_entries(api,
                                                                             domain) -> None:
    """With its API key the customer vouches for both addresses (it may write suppressions
    for any address of its own domains anyway)."""
    api.post(f"/v3/{domain}/unsubscribes", data={"address": "ann@example.org"})
    done = api.post("/v1/privacy/requests", data={
        "type": "rectification", "email": "ann@example.org",
        "new_email": "ann.new@example.org"})
    assert done.status_code == 201, done.text
    assert done.json()["result"]["rectified"] == ["email"]
    assert api.get(f"/v3/{domain}/unsubscribes/ann.new%40example.org").status_code == 200
    assert api.get(f"/v3/{domain}/unsubscribes/ann%40example.org").status_code == 404
