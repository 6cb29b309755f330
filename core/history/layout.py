"""The archive's layout, which archives cover a date range, and where they are stored.

data.binance.vision ``futures/um`` layout (Binance's public-data README, github.com/binance/
binance-public-data, "USD-M Futures"):

``data/futures/um/monthly/<kind>/<SYMBOL>/[<interval>/]<SYMBOL>-<interval|kind>-YYYY-MM.zip``
``data/futures/um/daily/<kind>/<SYMBOL>/[<interval>/]<SYMBOL>-<interval|kind>-YYYY-MM-DD.zip``

each with ``<name>.zip.CHECKSUM`` holding ``<sha256 hex>  <name>.zip``. A zip holds one CSV of
the same name. ``klines`` and ``markPriceKlines`` take an interval; ``fundingRate`` exists only
monthly. A month's archive appears a few days after the month ends; a day's, the next day.

Plan (``plan``): a month that has ended is one monthly archive (its daily archives when the
monthly one is not out yet); the current month is daily archives up to yesterday (UTC). Days
and months the archive does not have yet come from the REST API for the kinds it serves
(``REST_KINDS``). Files are stored under ``DATA_DIR/history/`` with the same relative paths.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

INTERVAL_KINDS = ("klines", "markPriceKlines")
KINDS = ("klines", "aggTrades", "bookTicker", "fundingRate", "markPriceKlines", "trades")
MONTHLY_ONLY = ("fundingRate",)
REST_KINDS = ("klines", "markPriceKlines", "fundingRate")
INTERVALS = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d")
ARCHIVE_LAG_DAYS = 3  # a daily archive missing for a day this recent is "not published yet"


class HistoryError(Exception):
    """Downloading or finding history failed; the message is one line saying what and where."""


@dataclass(frozen=True, slots=True)
class Kind:
    """A data kind as given to ``--kinds``: ``klines:1m`` -> Kind("klines", "1m")."""

    name: str
    interval: str | None = None

    def __str__(self) -> str:
        return f"{self.name}:{self.interval}" if self.interval else self.name

    @property
    def label(self) -> str:
        """The middle part of the file name: the interval, or the kind."""
        return self.interval or self.name


def parse_kinds(text: str) -> list[Kind]:
    """``"klines:1m,aggTrades,fundingRate"`` -> Kinds.

    Raises:
        HistoryError: an unknown kind, a missing or unknown interval.
    """
    out: list[Kind] = []
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        name, _, interval = item.partition(":")
        match = {k.lower(): k for k in KINDS}.get(name.lower())
        if match is None:
            raise HistoryError(f"--kinds: unknown kind {name!r}; choose from {', '.join(KINDS)}")
        if match in INTERVAL_KINDS:
            if interval not in INTERVALS:
                raise HistoryError(f"--kinds: {match} needs an interval, e.g. {match}:1m "
                                   f"({', '.join(INTERVALS)})")
            out.append(Kind(match, interval))
        elif interval:
            raise HistoryError(f"--kinds: {match} takes no interval")
        else:
            out.append(Kind(match))
    if not out:
        raise HistoryError("--kinds is empty")
    return list(dict.fromkeys(out))


@dataclass(frozen=True, slots=True)
class Archive:
    """One archive file: ``period`` is ``monthly`` or ``daily``; ``start``/``end`` the dates it
    covers (inclusive)."""

    symbol: str
    kind: Kind
    period: str
    start: date
    end: date

    @property
    def stamp(self) -> str:
        return self.start.strftime("%Y-%m") if self.period == "monthly" else self.start.isoformat()

    @property
    def name(self) -> str:
        return f"{self.symbol}-{self.kind.label}-{self.stamp}.zip"

    @property
    def rel_dir(self) -> str:
        sub = f"/{self.kind.interval}" if self.kind.interval else ""
        return f"data/futures/um/{self.period}/{self.kind.name}/{self.symbol}{sub}"

    @property
    def rel_path(self) -> str:
        return f"{self.rel_dir}/{self.name}"

    def local(self, root: Path) -> Path:
        return root / self.rel_path

    def rest_local(self, root: Path) -> Path:
        """Where the REST API's copy of this period is stored until the archive has it."""
        return root / self.rel_dir / self.name.replace(".zip", ".rest.csv")

    def days(self) -> list[Archive]:
        """This month's daily archives (itself when already daily)."""
        if self.period == "daily":
            return [self]
        n = (self.end - self.start).days + 1
        return [Archive(self.symbol, self.kind, "daily", d, d)
                for d in (self.start + timedelta(i) for i in range(n))]

    def start_ms(self) -> int:
        return day_ms(self.start)

    def end_ms(self) -> int:
        """Exclusive end, ms."""
        return day_ms(self.end + timedelta(1))


def day_ms(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() * 1000)


def month_end(d: date) -> date:
    return d.replace(day=calendar.monthrange(d.year, d.month)[1])


def plan(symbol: str, kind: Kind, start: date, end: date, today: date) -> list[Archive]:
    """The archives covering ``start..end`` (inclusive), ``end`` clipped to yesterday.

    Months that ended before ``today``'s month are monthly archives (whole months, even when
    ``start``/``end`` fall inside them: the archive has no smaller unit there); the current
    month is daily archives (monthly for ``fundingRate``, which has no daily ones).
    """
    end = min(end, today - timedelta(1))
    out: list[Archive] = []
    cursor = start.replace(day=1)
    this_month = today.replace(day=1)
    while cursor <= end:
        last = month_end(cursor)
        if cursor < this_month or kind.name in MONTHLY_ONLY:
            out.append(Archive(symbol, kind, "monthly", cursor, min(last, end)
                               if cursor >= this_month else last))
        else:
            first = max(start, cursor)
            n = (min(last, end) - first).days + 1
            out += [Archive(symbol, kind, "daily", first + timedelta(i), first + timedelta(i))
                    for i in range(n)]
        cursor = last + timedelta(1)
    return out


def parse_day(text: str, what: str) -> date:
    """``2024-01-31`` or ``20240131`` -> date.

    Raises:
        HistoryError: not a date.
    """
    t = text.strip()
    for fmt in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return datetime.strptime(t, fmt).date()
        except ValueError:
            continue
    raise HistoryError(f"{what} {text!r} is not a date like 2024-01-31")
