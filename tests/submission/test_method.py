"""The door a message came in by is stored with it, and read as "http" from documents
stored before it was."""

from __future__ import annotations

import json
from dataclasses import replace

from mailhaven.messages import content
from mailhaven.messages.document import Document


def _document() -> Document:
    return Document(message_id="m@mg.acme.test", created_at=0.0, sender="news@mg.acme.test",
                    to=["ann@example.org"], cc=[], subject="Hi", text="Hi", html=None,
                    amp_html=None, headers=[], variables={}, batch=False)


def test_a_document_keeps_its_method_and_an_older_one_reads_as_http() -> None:
    smtp = replace(_document(), method="smtp")
    assert Document.load(smtp.dump()).method == "smtp"
    older = json.loads(_document().dump())
    del older["method"]
    assert Document.load(json.dumps(older).encode()).method == "http"


def test_the_facts_events_are_made_of_carry_it() -> None:
    facts = content.facts(replace(_document(), method="smtp"), storage_key="k", size=2,
                          tags=[], testmode=False)
    assert facts.method == "smtp"
