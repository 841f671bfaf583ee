"""Why each goal that `make bench` misses is missed: reviewed by hand, read by bench/run.py.

bench/run.py writes, after the table of docs/BENCHMARKS.md, a section "Goals not met": each
unmet figure with its shortfall (computed in the run), then the explanation kept here under
the figure's key, `run.figure_key`: the script's name and the figure's text with each number
as N ("latency: accepted -> delivered at half the peak rate (N/s), p50"), so that the key
does not change with the sizes or the rates. An unmet figure without an entry is written as
"not explained yet" and makes `make bench` exit non-zero (after writing the document).

Each entry: `profile`, what the profile (or, where there is none yet, the figures) shows of
where the time goes; `would_close`, what would close the gap, most promising first. Written
from the profile sections of docs/BENCHMARKS.md (December 2026): revise them with the figures
of each new profile, and delete an entry once its goal is met.
"""

from __future__ import annotations

MISSES: dict[str, dict[str, str]] = {
    "ingest: accepted/s, POST /v3/{d}/messages, N clients, N KB text + N KB attachment, "
    "committed": {
        "profile": (
            "The server is CPU-bound on one core (srv CPU ~100% in every phase), so send/ref "
            "is the reference's CPU per request over the send's: 0.69 against 1.62 ms on "
            "SQLite (send = 2.3-2.4x ref on both databases). Reading the multipart form alone "
            "(`parse`) already costs 0.98 ms (parse/ref 0.70); the product's part of a send is "
            "the other ~0.64 ms. The end-to-end profile (py-spy, serve) puts that part in "
            "SQLAlchemy's Python for ~11 statements a message (building, cache-keying and "
            "coercing each statement, ~0.4 ms of Python a statement, amortised by the group "
            "commit: ~0.9 ms a message at full batches), most of it vault keys, the accepted "
            "event and its stats count, tags, webhooks and the `mailing_lists` read of each "
            "send. Issue 11's cProfile of the same requests in process: 6.9 ms a send with "
            "the client, the same functions on top."),
        "would_close": (
            "0.6 needs the send at <= ref / 0.6, ~1.15 ms of server CPU at today's reference: "
            "~0.5 ms a send less, all of it from what `ref` does not do (a cut both share, "
            "such as the thread hop of `get_services`, lowers the ratio). (1) Fewer and "
            "cheaper statements per send: `lists_named` once per transaction or not at all "
            "while the account has no lists, the domain, webhooks and tracked tags cached "
            "across transactions under a generation, the hot INSERTs built once as Core or "
            "run as driver SQL. (2) The multipart parse (0.29 ms over ref): python_multipart "
            "and starlette's FormParser on a 10 KB attachment; measure a leaner reader of the "
            "same body. (3) FastAPI's per-request route context rebuild (~0.3 ms, in both, "
            "but larger on the send's route with its form parameters)."),
    },
    "latency: accepted -> delivered at half the peak rate (N/s), p50": {
        "profile": (
            "Missed on PostgreSQL only (111 ms; SQLite 64 ms), not profiled at this rate yet. "
            "The p50 is ~10x the CPU a message costs end to end (~10 ms, the end-to-end "
            "profile), so most of it is waiting between stages: the send's group commit, the "
            "in-process doorbell and the claim that re-reads the accepted copies (nine "
            "statements, ~1.85 ms a message in small batches), the build and signature, the "
            "SMTP attempt, then the outcome group commit that writes the `delivered` event. "
            "Each statement is a round trip on PostgreSQL, and its backends share the two "
            "cores with serve: the same Python, more waits."),
        "would_close": (
            "(1) Hand the accepted copies to the in-process worker from the send transaction "
            "(it has the document, keys, domain and recipient) instead of a claim that "
            "re-reads them: one stage and its round trips fewer. (2) The per-transaction "
            "caches of the ingest and end-to-end entries, which shorten every commit on the "
            "path. (3) Then a timestamp per stage (accepted, claimed, signed, sent, settled) "
            "in a profile run, to find which wait is left."),
    },
    "postfix: delivered/s, queue -> sink, N messages to N domains, N worker processes, "
    "DKIM-signed": {
        "profile": (
            "Drain 0.22x (SQLite) and 0.40x (PostgreSQL) Postfix's drain with OpenDKIM, whose "
            "signing happens at intake, outside its drain time, while Mailhaven signs inside "
            "it: intake + drain CPU is 2.75 ms a message for Mailhaven against 5.35 ms for "
            "Postfix + OpenDKIM (SQLite). The drain's own profile (py-spy, 2,000 messages, "
            "2.38 ms a message, serve + worker): claims 0.43, outcome commits 0.33, attempts "
            "on the event loop (SMTP client, tracking render) 0.49, building and signing 0.40 "
            "(the RSA signature ~0.25 ms outside the GIL), idle loop and wake-ups 0.4; 52 "
            "claims of ~38 copies. Python holds the GIL for almost all of it."),
        "would_close": (
            "(1) Use both cores evenly: the two processes split the queue, but each claim and "
            "outcome batch is SQLAlchemy Python under one GIL; cache domains and DKIM-key "
            "rows across claims and merge the suppression, controls and consents reads into "
            "fewer statements. (2) The attempt on the event loop: `_unsubscribe_only` and the "
            "tracking render per copy, the SMTP client's per-message commands. (3) Say in "
            "the table that the reference excludes its signing (the intake + drain CPU line "
            "is the like-for-like cost)."),
    },
    "postfix: delivered/s end to end, POST /v3/{d}/messages, httpx, N clients -> serve + "
    "worker -> sink, N messages, DKIM-signed": {
        "profile": (
            "0.83x (SQLite) and 0.58x (PostgreSQL) Postfix + OpenDKIM end to end. Profile: "
            "end to end over HTTP (py-spy, serve and worker, SQLite): 10-12 ms of CPU a "
            "message against ~2.9 ms for intake + drain, because the batches are small: ten "
            "clients each waiting for its 200 give 3.6 sends a transaction, and the doorbell "
            "makes serve claim ~4.5 copies at a time. Each transaction costs ~3.7 ms fixed "
            "(~11 statements a message, ~0.4 ms of SQLAlchemy Python each) plus ~0.9 ms a "
            "message. The HTTP stack ~1.65 ms a message (a thread hop for `get_services` "
            "0.42, FastAPI's route context rebuilt 0.3). serve does ~94% of the deliveries on "
            "one core; the worker beside it mostly polls. DKIM, JSON, logging: small."),
        "would_close": (
            "As in the profile section, most promising first: (1) cut the fixed cost of each "
            "send transaction (`lists_named` per transaction, cached domains, webhooks, tags, "
            "subject controls and consents under generations, hot statements as Core or "
            "driver SQL); (2) hand accepted copies to the in-process worker instead of a "
            "claim that re-reads them (1.85 ms a message); (3) use the second core: ring the "
            "worker processes too (a cross-process doorbell or PostgreSQL NOTIFY) or leave "
            "delivery to them; (4) `get_services` as `async def`, the route context kept, "
            "uvicorn with httptools and uvloop (~0.7 ms); (5) orjson, `_unsubscribe_only`."),
    },
    "postfix: delivered/s end to end, SMTP submission (STARTTLS + AUTH), aiosmtplib, N "
    "clients -> serve + worker -> sink, N messages, DKIM-signed": {
        "profile": (
            "0.60x (SQLite) and 0.47x (PostgreSQL) Postfix + OpenDKIM end to end, whose "
            "clients use neither STARTTLS nor AUTH. Not profiled apart: the delivery half is "
            "the HTTP row's (small send transactions, claims of a few copies, one GIL). The "
            "intake half, from issue 12's cProfile of `mailhaven smtp`: aiosmtpd's "
            "per-connection set-up (`SMTP.__init__` inspects the handler, ~0.5 ms a "
            "connection), its command parsing, the envelope check's own query and thread hop "
            "at every MAIL, then the same sealing and commit as an HTTP send; 3-4 ms of CPU "
            "a message against ~1.4 ms a HTTP send."),
        "would_close": (
            "The HTTP row's items (they are the delivery half and the send transaction), "
            "then issue 12's: the envelope check cached per session, aiosmtpd's command "
            "table built once per class, the MIME parse of the submitted message measured; "
            "and a profile of this phase to confirm the split."),
    },
    "events: events page (limit=N), N events, by recipient": {
        "profile": (
            "Not profiled yet. What the figures show: the SELECT itself is quick (raw p95 "
            "1.3 ms SQLite, 2.6 ms PostgreSQL, an index scan on ix_events_recipient_time), "
            "the API page 13-17 ms p95: ~11-14 ms for 300 events, ~40 us an event, outside "
            "the database: the ORM's rows, unsealing each event under its recipient's vault "
            "key, parsing its JSON and encoding the page again, and the HTTP request."),
        "would_close": (
            "Issue 17's suggestions, to confirm with a profile of the API process: read the "
            "rows as driver tuples rather than ORM objects, unseal with one key lookup per "
            "recipient per page, and splice each event's stored JSON into the answer instead "
            "of parsing and re-encoding it (orjson where it must be encoded)."),
    },
    "events: events page (limit=N), N events, by tags": {
        "profile": (
            "Not profiled yet. Here the SELECT is slower too (raw p95 9.4 ms SQLite, 8.9 ms "
            "PostgreSQL): the tag is a LIKE over the JSON of `tags`, filtered along "
            "ix_events_domain_time (the plan's Filter), so the database reads every event of "
            "the domain newer than the 300th match. The API adds ~16-20 ms, the same per-event "
            "costs as by recipient. The ratio (2.75-3.3x) is smaller than by recipient's "
            "only because the raw SELECT is slower."),
        "would_close": (
            "A tag table (event, tag) with an index on (domain, tag, time), so the page is an "
            "index range like the recipient's; then the same per-event cuts as by recipient "
            "(driver rows, one key lookup per recipient, stored JSON spliced)."),
    },
    "erasure: erase a recipient with N events, N events in the table": {
        "profile": (
            "Not profiled yet. 3.2 s (SQLite) and 5.1 s (PostgreSQL), nearly the same on a "
            "table 3.7x smaller (large / small 1.02-1.06): the time goes on the subject's own "
            "rows, ~30-50 us for each of their 100,000 events and 50,000 deliveries and "
            "messages, deleted, shredded (50,000 content keys destroyed) and redacted inside "
            "the one erasure transaction."),
        "would_close": (
            "Issue 17's: destroy the subject's key and their messages' content keys in the "
            "request (the subject is unreadable at once, as the notice promises) and delete "
            "the rows in a background job that the erasure ledger and a restore both honour; "
            "the request then costs the key shredding, the ledger and the signed record."),
    },
}
