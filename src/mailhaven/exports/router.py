"""`GET /v1/privacy/recipients/{address}`: the processor's export of one recipient (SPEC N4)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from mailhaven.deps import AccountDep, ServicesDep
from mailhaven.exports.service import export_recipient
from mailhaven.http import in_thread

router = APIRouter(tags=["privacy"])
CHUNK = 64 * 1024


# `:path`, so an address with a percent-encoded "/" (legal in a local part) still matches.
@router.get(
    "/v1/privacy/recipients/{address:path}",
    summary="Export everything held about one recipient (Mailhaven extension)",
    description="A zip of export.json (schema `mailhaven-export` v1, docs/privacy.md) and a "
                "CSV per category: the recipient's events, suppressions, queued and delivered "
                "copies and the metadata of the messages they received, across the account's "
                "domains. The address is percent-encoded in the path.",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/zip": {}}},
               404: {"description": "Nothing is held about the address"}},
)
async def export(address: str, services: ServicesDep, account_id: AccountDep) -> StreamingResponse:
    return await zip_response(lambda path: export_recipient(
        services.db, services.vault, account_id, address, path, clock=services.clock),
        "recipient-export.zip")


async def zip_response(write: Callable[[Path], object], filename: str) -> StreamingResponse:
    """Stream the zip `write(path)` makes, from a file already unlinked: however the
    response ends, the file holding personal data in clear is gone when it closes."""
    handle, size = await in_thread(lambda: _written(write))
    return StreamingResponse(_chunks(handle), media_type="application/zip", headers={
        "Content-Length": str(size),
        "Content-Disposition": f'attachment; filename="{filename}"'})


def _written(write: Callable[[Path], object]) -> tuple[BinaryIO, int]:
    folder = tempfile.mkdtemp(prefix="mailhaven-export-")
    try:
        path = Path(folder) / "export.zip"
        write(path)
        handle = path.open("rb")
        return handle, path.stat().st_size
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _chunks(handle: BinaryIO) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(CHUNK):
            yield chunk
