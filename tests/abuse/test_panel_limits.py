"""Abuse of the panel and the public site's forms (issue 16, item 4): every form POST is
bounded in size before anything else is read of it, the CSRF check included, and the
analytics beacon (unauthenticated) never reads more than its few bytes. CSRF and the
login, reset, sign-up and contact throttles are tested in tests/web (cited in
docs/security.md, "Limits at every door")."""

from __future__ import annotations

from collections.abc import Iterator

from mailhaven.web.core import MAX_FORM_BYTES

MiB = 1024 * 1024
FORMS = ("/login", "/signup", "/reset", "/contact", "/privacy-center", "/cookies")


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    """A body of `total` bytes sent chunked: no Content-Length to refuse it by."""
    for _ in range(total // size):
        yield b"a" * size


def test_the_visits_beacon_reads_at_most_its_limit(live) -> None:
    with live.client() as client:
        client.cookies.set("mh_consent", "all")
        assert client.post("/visits", content=b"/privacy").status_code == 204
        assert client.post("/visits", content=_chunks(3 * MiB)).status_code == 413
        declared = client.post("/visits", content=b"/" * (4 * 1024))
        assert declared.status_code == 413


def test_every_public_form_is_bounded_in_size_urlencoded_or_multipart(live) -> None:
    with live.client() as client:
        for path in FORMS:
            chunked = client.post(path, content=_chunks(MAX_FORM_BYTES + MiB), headers={
                "Content-Type": "application/x-www-form-urlencoded"})
            assert chunked.status_code == 413, path
            upload = client.post(path, data={"email": "ann@acme.test"}, files={
                "file": ("big.bin", b"x" * (MAX_FORM_BYTES + 1), "application/octet-stream")})
            assert upload.status_code == 413, path
