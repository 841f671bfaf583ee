"""Peak memory of a worker delivering one big message to many recipients (not in `make bench`).

Finding 10 of issue 10: a 24 MB attachment sent to 10 recipients. The message is accepted
through the service layer in a child process, then a fresh `DeliveryWorker` process
delivers it (DKIM-signed) to the SMTP sink of `bench/common.py`; that process reports its
peak RSS (VmHWM) and how long the delivery took. Run it before and after a change:

    .venv/bin/python bench/render_memory.py --megabytes 24 --recipients 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common


def _send(data_dir: Path, account_id: str, megabytes: int, recipients: int) -> None:
    from mailhaven.sending.request import Attachment
    from mailhaven.sending.service import send
    from mailhaven.services import Services

    services = Services.start(common.bench_settings(data_dir, None), migrate=False)
    try:
        fields = [("from", f"Shop <shop@{common.DOMAIN}>"), ("subject", "Big"),
                  ("text", "See the attachment."), ("html", "<p>See the attachment.</p>")]
        fields += [("to", f"user{i}@example.com") for i in range(recipients)]
        files = [("attachment", Attachment("big.bin", "application/octet-stream",
                                           os.urandom(megabytes * 2**20)))]
        send(services.db, services.vault, account_id, common.DOMAIN, fields, files, mime=False)
    finally:
        services.close()


def _deliver(data_dir: Path, sink_port: int) -> None:
    from mailhaven.delivery.worker import DeliveryWorker
    from mailhaven.services import Services

    settings = common.bench_settings(data_dir, None, relayhost=("127.0.0.1", sink_port))
    services = Services.start(settings, migrate=False)

    async def run() -> None:
        worker = DeliveryWorker(services)
        try:
            await worker.drain()
        finally:
            await worker.close()

    try:
        started = time.perf_counter()
        asyncio.run(run())
        seconds = time.perf_counter() - started
    finally:
        services.close()
    print(json.dumps({"seconds": round(seconds, 2),
                      "peak_rss_mb": round(common.memory_kb(os.getpid()) / 1024, 1)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--megabytes", type=int, default=24)
    parser.add_argument("--recipients", type=int, default=10)
    parser.add_argument("--role", choices=("main", "send", "deliver"), default="main")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--account")
    parser.add_argument("--sink-port", type=int)
    args = parser.parse_args()
    if args.role == "send":
        _send(args.data_dir, args.account, args.megabytes, args.recipients)
        return
    if args.role == "deliver":
        _deliver(args.data_dir, args.sink_port)
        return
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        account_id, _ = common.seed(common.bench_settings(data_dir, None))
        me = [sys.executable, __file__, "--data-dir", str(data_dir)]
        subprocess.run([*me, "--role", "send", "--account", account_id,
                        "--megabytes", str(args.megabytes),
                        "--recipients", str(args.recipients)], check=True)
        port = common.free_port()
        sink = common.start_sink(port)
        try:
            out = subprocess.run([*me, "--role", "deliver", "--sink-port", str(port)],
                                 check=True, capture_output=True, text=True).stdout
        finally:
            received = common.stop_sink(sink)
        result = json.loads(out.strip().splitlines()[-1])
        print(json.dumps({**result, "delivered": received, "megabytes": args.megabytes,
                          "recipients": args.recipients}))


if __name__ == "__main__":
    main()
