"""Find the stored history of a symbol for a time range (``backtest --symbol S --from ...``).

Looks under ``DATA_DIR/history/data/futures/um/`` for the files ``download`` stores: verified
archives (``*.zip``) and REST copies of recent periods (``*.rest.csv``). Which data drives the
backtest: the symbol's aggTrades when they cover the range (with its bookTicker files when there
are any), else its klines of the shortest interval stored; funding rates are added whenever
stored, and mark-price klines (``markPriceKlines``) of the shortest interval that covers the
range day by day (the replay turns them into MarkPrice events, core/replay/bar_ticks.py). Mark
klines that leave days of the range out are not added (the backtest would switch between mark
and last price mid-range); a note says so and names the download command that completes them.

For each kind a monthly archive wins over daily files of the same month, and a daily archive
over a REST copy of the same day. The range must be covered day by day by the driving kind;
otherwise ``HistoryError`` says which days are missing and the ``download`` command to run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from core.history.layout import INTERVALS, HistoryError, day_ms, month_end

_NAME = re.compile(r"^(?P<sym>[A-Z0-9_]+)-(?P<label>[A-Za-z0-9]+)-(?P<stamp>\d{4}-\d\d(-\d\d)?)"
                   r"(?P<ext>\.zip|\.rest\.csv)$")


@dataclass(frozen=True, slots=True)
class Stored:
    path: Path
    start: date
    end: date  # inclusive
    monthly: bool
    rest: bool


def _scan(folder: Path, symbol: str) -> list[Stored]:
    out: list[Stored] = []
    if not folder.is_dir():
        return out
    for p in folder.iterdir():
        m = _NAME.match(p.name)
        if not m or m["sym"] != symbol:
            continue
        stamp = m["stamp"]
        if len(stamp) == 7:
            start = date.fromisoformat(stamp + "-01")
            end, monthly = month_end(start), True
        else:
            start = end = date.fromisoformat(stamp)
            monthly = False
        out.append(Stored(p, start, end, monthly, m["ext"] == ".rest.csv"))
    return out


def _files(root: Path, kind: str, symbol: str, interval: str | None) -> list[Stored]:
    sub = f"/{interval}" if interval else ""
    found: list[Stored] = []
    for period in ("monthly", "daily"):
        found += _scan(root / f"data/futures/um/{period}/{kind}/{symbol}{sub}", symbol)
    months = {(s.start.year, s.start.month) for s in found if s.monthly and not s.rest}
    days = {s.start for s in found if not s.monthly and not s.rest}
    keep = []
    for s in found:
        if not s.monthly and (s.start.year, s.start.month) in months:
            continue
        if s.rest and (s.monthly and (s.start.year, s.start.month) in months
                       or not s.monthly and s.start in days):
            continue
        keep.append(s)
    return sorted(keep, key=lambda s: (s.start, not s.monthly))


def _overlapping(files: list[Stored], start_ms: int | None, end_ms: int | None) -> list[Stored]:
    return [s for s in files
            if (end_ms is None or day_ms(s.start) < end_ms)
            and (start_ms is None or day_ms(s.end + timedelta(1)) > start_ms)]


def _gaps(files: list[Stored], start_ms: int, end_ms: int) -> list[date]:
    covered: set[date] = set()
    for s in files:
        d = s.start
        while d <= s.end:
            covered.add(d)
            d += timedelta(1)
    first = datetime.fromtimestamp(start_ms / 1000, UTC).date()
    last = datetime.fromtimestamp((end_ms - 1) / 1000, UTC).date()
    out, d = [], first
    while d <= last:
        if d not in covered:
            out.append(d)
        d += timedelta(1)
    return out


def find_history(root: Path, symbol: str, start_ms: int | None,
                 end_ms: int | None, notes: list[str] | None = None) -> list[Path]:
    """The stored files for ``symbol`` over ``[start_ms, end_ms)`` (either may be None: the
    stored data's own start or end), in time order per kind: the driving kind, funding rates,
    mark-price klines. ``notes`` (when given) receives a line for stored mark-price klines left
    out because they miss days of the range.

    Raises:
        HistoryError: nothing stored for the symbol, or days missing in the range (the message
            names them and the ``download`` command that fetches them).
    """
    symbol = symbol.upper()
    trades = _overlapping(_files(root, "aggTrades", symbol, None), start_ms, end_ms)
    driving: list[Stored] = []
    what = ""
    if trades and (start_ms is None or end_ms is None or not _gaps(trades, start_ms, end_ms)):
        driving, what = trades, "aggTrades"
        driving += _overlapping(_files(root, "bookTicker", symbol, None), start_ms, end_ms)
    else:
        for interval in INTERVALS:
            found = _overlapping(_files(root, "klines", symbol, interval), start_ms, end_ms)
            if found:
                driving, what = found, f"klines:{interval}"
                break
    if not driving:
        raise HistoryError(f"no stored history for {symbol} in {root} for that range; run "
                           f"main.py download --symbols {symbol} --from YYYY-MM-DD first")
    if start_ms is not None and end_ms is not None:
        main_kind = [s for s in driving if "bookTicker" not in str(s.path)]
        missing = _gaps(main_kind, start_ms, end_ms)
        if missing:
            gap, download = _missing(what, symbol, missing)
            raise HistoryError(f"{gap}; run {download}")
    funding = _overlapping(_files(root, "fundingRate", symbol, None), start_ms, end_ms)
    marks, note = _marks(root, symbol, start_ms, end_ms, driving)
    if note and notes is not None:
        notes.append(note)
    return [s.path for s in driving + funding + marks]


def _marks(root: Path, symbol: str, start_ms: int | None, end_ms: int | None,
           driving: list[Stored]) -> tuple[list[Stored], str]:
    """The mark-price klines of the shortest interval that covers the range (that of the
    driving files where ``start_ms``/``end_ms`` is None), or none and a note on the stored
    ones that miss days ("" when none are stored)."""
    lo = start_ms if start_ms is not None else min(day_ms(s.start) for s in driving)
    hi = end_ms if end_ms is not None else max(day_ms(s.end + timedelta(1)) for s in driving)
    partial = ""
    for interval in INTERVALS:
        found = _overlapping(_files(root, "markPriceKlines", symbol, interval), lo, hi)
        if not found:
            continue
        missing = _gaps(found, lo, hi)
        if not missing:
            return found, ""
        if not partial:
            gap, download = _missing(f"markPriceKlines:{interval}", symbol, missing)
            partial = (f"{gap}: not used (unrealized PnL, liquidation and stops follow the last "
                       f"price); run {download}")
    return [], partial


def _missing(kind: str, symbol: str, missing: list[date]) -> tuple[str, str]:
    """``("stored <kind> for <symbol> miss <days>", "main.py download ...")``: the gap and the
    command that fills it (``kind`` as ``--kinds`` takes it, e.g. ``klines:1m``)."""
    first, last = missing[0], missing[-1]
    span = f"{first}" if first == last else f"{first} .. {last} ({len(missing)} days)"
    return (f"stored {kind} for {symbol} miss {span}",
            f"main.py download --symbols {symbol} --from {first} --to {last} --kinds {kind}")

