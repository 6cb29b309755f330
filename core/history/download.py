"""``main.py download``: plan the archives, fetch what is missing, fill recent gaps from REST.

For every symbol and kind, ``plan`` lists the archives covering the range. Each one is, in
order: already stored (skipped, no request); fetched from the archive and verified; for a month
the archive has not published yet, its daily archives; for a recent day or month still missing
(``ARCHIVE_LAG_DAYS``), fetched from the REST API where it serves the kind (klines,
markPriceKlines, fundingRate) or reported as not published yet. A file older than that which
the archive does not have is an error: the range starts before the symbol was listed, or the
mirror is incomplete. A REST copy is replaced by the archive's as soon as the archive has it;
the current month's funding rates are fetched again on every run (the month is still growing).

Leftover ``.part`` files of an interrupted run are removed first; nothing else is ever deleted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from core.history.archive import ArchiveClient
from core.history.layout import (
    ARCHIVE_LAG_DAYS,
    MONTHLY_ONLY,
    REST_KINDS,
    Archive,
    HistoryError,
    Kind,
    plan,
)
from core.history.rest_days import Requester, fetch_rest


@dataclass(slots=True)
class DownloadReport:
    """What a run did: paths stored from the archive and from REST, archives already present,
    and the periods nobody has yet (recent days of kinds without a REST source)."""

    archived: list[Path] = field(default_factory=list)
    from_rest: list[Path] = field(default_factory=list)
    present: int = 0
    not_yet: list[str] = field(default_factory=list)
    bytes: int = 0
    requests: int = 0


def sweep_partials(dirs: set[Path]) -> int:
    """Remove ``.*.part`` files an interrupted run left in ``dirs``; how many."""
    n = 0
    for d in dirs:
        if d.is_dir():
            for p in d.glob(".*.part"):
                p.unlink(missing_ok=True)
                n += 1
    return n


class _Run:
    def __init__(self, client: ArchiveClient, rest: Requester | None, root: Path, today: date,
                 report: DownloadReport, tick: Callable[[], None]) -> None:
        self.client, self.rest, self.root, self.today = client, rest, root, today
        self.report, self.tick = report, tick

    def recent(self, a: Archive) -> bool:
        if a.period == "daily":
            return a.end >= self.today - timedelta(ARCHIVE_LAG_DAYS)
        last_month = (self.today.replace(day=1) - timedelta(1)).replace(day=1)
        return a.start >= last_month

    async def archive(self, a: Archive, *, month: Archive | None = None) -> None:
        dest = a.local(self.root)
        if dest.exists() and dest.with_name(dest.name + ".CHECKSUM").exists():
            self.report.present += 1
            return
        got = await self.client.fetch(a)
        if got is not None:
            self.report.archived.append(got)
            a.rest_local(self.root).unlink(missing_ok=True)  # superseded by the archive's
            return
        if a.period == "monthly" and a.kind.name not in MONTHLY_ONLY:
            await asyncio.gather(*(self.archive(d, month=a) for d in a.days()))
            return
        if not self.recent(a):
            what = f"{month.rel_path} and its daily archive {a.name}" if month else a.rel_path
            raise HistoryError(f"{what}: not in the archive (404 from {self.client.base_url}); "
                               f"was {a.symbol} listed then?")
        rest_copy = a.rest_local(self.root)
        growing = a.period == "monthly" and a.start == self.today.replace(day=1)
        if rest_copy.exists() and not growing:
            self.report.present += 1
        elif a.kind.name in REST_KINDS and self.rest is not None:
            self.report.from_rest.append(await fetch_rest(self.rest, a, self.root))
        else:
            self.report.not_yet.append(f"{a.symbol} {a.kind} {a.stamp}")

    async def one(self, a: Archive) -> None:
        try:
            await self.archive(a)
        finally:
            self.tick()


async def download(symbols: Sequence[str], kinds: Sequence[Kind], start: date, end: date, *,
                   root: Path, base_url: str, rest: Requester | None, today: date,
                   progress: Callable[[int, int], None] | None = None,
                   timeout_s: float = 300.0, retry_delay_s: float = 1.0) -> DownloadReport:
    """Bring ``root`` (``DATA_DIR/history``) up to date for ``start..end`` (inclusive, UTC).

    Args:
        rest: the REST client for recent periods (None: archive only).
        today: the current UTC date (the archive's notion of "complete" depends on it).
        progress: ``progress(done, total)`` after each planned archive.

    Raises:
        HistoryError: the first failure (one line); files already stored are kept, the failed
            one is not left half-written.
    """
    if end < start:
        raise HistoryError(f"--to {end} is before --from {start}")
    if start >= today:
        raise HistoryError(f"--from {start} is not in the past (the archive ends yesterday)")
    archives = [a for s in symbols for k in kinds for a in plan(s, k, start, end, today)]
    sweep_partials({a.local(root).parent for a in archives})
    report = DownloadReport()
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, len(archives))

    async with ArchiveClient(base_url, root, timeout_s=timeout_s,
                             retry_delay_s=retry_delay_s) as client:
        run = _Run(client, rest, root, today, report, tick)
        try:
            async with asyncio.TaskGroup() as tg:
                for a in archives:
                    tg.create_task(run.one(a))
        except* HistoryError as group:
            raise group.exceptions[0] from None
        finally:
            report.bytes, report.requests = client.bytes, client.requests
    return report
