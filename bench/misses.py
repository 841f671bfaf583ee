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
            "Missed on PostgreSQL only, by 7%: 107 ms in the run of 6 December 2026, 16:38 "
            "(142 ms in the run before it, 111 ms before issue 17's changes; SQLite 68 ms; "
            "the p99 185 ms, met). Per-stage timestamps in serve's worker (a probe, "
            "not kept in the product) of one PostgreSQL run at 58/s on a shared, loaded "
            "machine (p50 124 ms that run): from acceptance (`due_since`) to the start of "
            "the copy's claim p50 50 ms (p90 108), the claim 31 ms (p90 54) for a median "
            "batch of 4, building and signing 17 ms, the SMTP attempt 9 ms, the outcome's "
            "group commit 30 ms (p90 71). At half the peak serve's worker had attempts in "
            "flight at 99% of the doorbell rings it heard (95% of the claims), so "
            "`runner.LateBell`'s 20 ms is in that first 50 ms for nearly every copy, but "
            "most of that wait is the claim in progress: claims run one at a time, after "
            "every ended attempt as well as every ring. LateBell now waits only while "
            "attempts are in flight (idle, a ring is heard at once): at 10/s accept -> "
            "delivered p50 47.7 -> 28.1 ms on PostgreSQL and 36.5 -> 14.8 ms on SQLite "
            "(medians of 3 alternating rounds, main vs the change); at half the peak no "
            "change shows through the machine's noise: PostgreSQL p50 main 147.9 / new "
            "155.0 ms in the quieter set (66-78/s), 167.6 / 206.8 ms under heavier load "
            "(30-68/s); SQLite 110.0 / 77.0 ms (71-78/s). Counting the 20 ms from the last "
            "ring heard instead of from each ring: 46 vs 50 ms to the claim's start in one "
            "run, within the noise; not kept."),
        "would_close": (
            "(1) The claim: 31 ms for ~4 copies, its statements' Python in serve's GIL with "
            "the API and its PostgreSQL backend on the same two cores; hand the accepted "
            "copies to the in-process worker from the send transaction (it has the "
            "document, keys, domain and recipient) instead of a claim that re-reads them, "
            "or claim as driver SQL. (2) The outcome group commit (30 ms p50): fewer "
            "statements per batch (the per-transaction caches of the ingest and end-to-end "
            "entries). (3) Then the same per-stage timestamps on a quiet machine, where the "
            "20 ms of a busy worker is a larger share."),
    },
    "postfix: delivered/s, queue -> sink, N messages to N domains, N worker processes, "
    "DKIM-signed": {
                "profile": (
            "One round each in `make bench`, and both sides move between runs on this "
            "shared machine: in the run of 6 December 2026, 16:38, 415 msg/s (SQLite) and "
            "447 msg/s (PostgreSQL) against Postfix's 1,977-1,979; in the run before it, 336 "
            "and 683 msg/s against 1,209-1,240. "
            "Postfix's drain with OpenDKIM signs at intake, outside its drain time, while "
            "Mailhaven signs inside it: intake + drain CPU was 2.75 ms a message for Mailhaven "
            "against 5.35 ms for Postfix + OpenDKIM (SQLite). Issue 17's changes (claims take "
            "their rows from the UPDATE's RETURNING, no DKIM keys loaded with the claim's "
            "domains, subject controls in one statement) took the drain's CPU from 2.75-2.89 "
            "to 2.20-2.32 ms a message and the ratio from 0.16-0.27x to 0.41-0.43x in the "
            "same runs. The drain's profile (py-spy): claims, outcome commits, attempts on "
            "the event loop (SMTP client, tracking render), building and signing (RSA ~0.25 "
            "ms outside the GIL); Python holds the GIL for almost all of it."),
        "would_close": (
            "1.0x of a reference that does not sign in its time needs the drain at ~1 ms of "
            "CPU a message on two cores: (1) claims and outcome batches as driver SQL (they "
            "are SQLAlchemy's Python per statement); (2) the attempt on the event loop "
            "(`_unsubscribe_only` and the tracking render per copy, the SMTP client's "
            "commands); (3) signing the body hash once per stored message. The intake + "
            "drain CPU line is the like-for-like cost, where Mailhaven is ahead."),
    },
    "events: events page (limit=N), N events, by recipient": {
                "profile": (
            "cProfile of the real app answering the page (December 2026): before the changes "
            "of issue 17, turning 300 rows back into JSON took 40% (json.loads of each "
            "decrypted event, the page encoded again), the ORM's rows and one key object a "
            "row most of the rest. Now the page splices each decrypted event's JSON into the "
            "body, reads its 6 columns as driver tuples and unwraps each key once per "
            "process (server CPU a page 19.4 -> 7.4 ms SQLite, 23.2 -> 9.0 ms PostgreSQL, "
            "same-run A/B at 300k events). What is left: an empty page already costs ~1.3 ms "
            "end to end (HTTP, Basic auth, two sessions), about the raw SELECT's own p95 on "
            "SQLite, then ~15 us an event (AES-GCM open and the splice) and the fetch."),
        "would_close": (
            "2x on SQLite needs the whole page (HTTP, auth, 300 decryptions) within ~2.6 ms: "
            "(1) the fixed cost of a request (uvicorn with httptools and uvloop, the key "
            "lookup and the domain id in the page's own statement); (2) the per-row loop "
            "(decrypt and splice in one pass over a memoryview); on PostgreSQL (3.6x) the "
            "two statements before the SELECT are round trips, folding them in closes most "
            "of it."),
    },
    "events: events page (limit=N), N events, by tags": {
        "profile": (
            "Met on SQLite (1.62x), missed on PostgreSQL (2.85x in the run of 6 December "
            "2026, 16:38; 2.49x in the one before, 1.57x in a run by hand of the same build: "
            "the machine varies by that much). The page "
            "itself is now cheap (issue 17: each event's stored JSON spliced into the body, "
            "driver rows, one key read per page); the SELECT is the slow part, raw p95 "
            "10-14 ms: the tag is a LIKE over the JSON of `tags` filtered along "
            "ix_events_domain_time, so the database reads every event of the domain newer "
            "than the 300th match, and PostgreSQL's run of it varies more than the API's "
            "fixed cost does."),
        "would_close": (
            "A tag table (event, tag) indexed on (domain, tag, time) makes the SELECT an "
            "index range (~1 ms): the reference gets faster too, so the ratio then depends "
            "on the API's fixed cost, as by recipient (its entry's items)."),
    },
}
