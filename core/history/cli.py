"""``main.py download``: arguments to ``download``, a progress bar on a terminal, a summary."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, date, datetime, timedelta
from typing import Any

from core.history.download import DownloadReport, download
from core.history.layout import HistoryError, parse_day, parse_kinds
from utils.settings import Settings


def _bar() -> Any:
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm  # type: ignore[import-untyped]

    bar = tqdm(total=0, unit="file", desc="download", file=sys.stderr, leave=False)

    def show(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    show.bar = bar  # type: ignore[attr-defined]
    return show


async def _run(args: argparse.Namespace, settings: Settings, today: date) -> DownloadReport:
    from core.binance.clock import ServerClock
    from core.binance.rate_limit import RateLimiter
    from core.binance.rest import RestClient

    symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
    if not symbols or not all(s.replace("_", "").isalnum() for s in symbols):
        raise HistoryError("--symbols must be comma-separated symbols, e.g. BTCUSDT,ETHUSDT")
    kinds = parse_kinds(args.kinds)
    start = parse_day(args.start, "--from")
    end = parse_day(args.end, "--to") if args.end else today - timedelta(1)
    clock = ServerClock()
    # public endpoints only: no key; the limiter waits up to a minute for a weight window
    rest = RestClient(settings.binance_url("rest"), api_key=None, signer=None, clock=clock,
                      limiter=RateLimiter(clock, fraction=0.5, max_wait_s=65.0))
    progress = _bar()
    try:
        return await download(symbols, kinds, start, end, root=settings.data_dir / "history",
                              base_url=args.base_url or settings.history_base_url, rest=rest,
                              today=today, progress=progress)
    finally:
        await rest.close()
        if progress is not None:
            progress.bar.close()


def run_download(args: argparse.Namespace, settings: Settings, *,
                 today: date | None = None) -> int:
    """Run ``download``; prints one summary line (and what is not published yet)."""
    today = today or datetime.now(UTC).date()
    report = asyncio.run(_run(args, settings, today))
    mb = report.bytes / 1e6
    print(f"{len(report.archived)} archives downloaded and verified ({mb:.1f} MB), "
          f"{len(report.from_rest)} periods from the REST API, {report.present} already "
          f"stored; in {settings.data_dir / 'history'}")
    if report.not_yet:
        print("not published yet (no REST source for the kind): " + ", ".join(report.not_yet))
    return 0
