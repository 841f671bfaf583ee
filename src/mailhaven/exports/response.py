"""An export as an HTTP response: a zip streamed from a file already unlinked."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from fastapi.responses import StreamingResponse

from mailhaven.http import in_thread

CHUNK = 64 * 1024


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
