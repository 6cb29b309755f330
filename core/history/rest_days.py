"""Days (and months) the archive has not published yet, from Binance's REST API.

Through the connection's ``core.binance.rest.RestClient`` and its ``RateLimiter`` (request
weights counted before sending, ``X-MBX-USED-WEIGHT-1M`` observed, 429/418 honoured): no HTTP
code of its own. Endpoints (Binance USDⓈ-M "Market Data" REST pages):

=================================  ====================================================  ======
``GET /fapi/v1/klines``            ``symbol, interval, startTime, endTime, limit<=1500``  by limit
``GET /fapi/v1/markPriceKlines``   same                                                  by limit
``GET /fapi/v1/fundingRate``       ``symbol, startTime, endTime, limit<=1000``            1
=================================  ====================================================  ======

Kline weights by ``limit`` as core/binance/market_rest.py (1000 bars weigh 5, so a day of 1m
klines is two requests, weight 10). ``fundingRate`` shares a 500 / 5 min / IP limit with
``fundingInfo``: at most one request per period fetched, far below it.

Rows are written as the archive's CSVs with their header (klines: the 12 REST columns are the
CSV's columns; funding: ``calc_time,funding_interval_hours,last_funding_rate``), to
``<archive name>.rest.csv`` beside where the archive will go, atomically; only complete
periods (every bar up to the end of the last day) are written.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from core.binance.errors import ExchangeError, RetryLater
from core.binance.market_rest import INTERVAL_MS, klines_weight
from core.history.layout import Archive, HistoryError

KLINES_LIMIT = 1000
FUNDING_LIMIT = 1000
KLINE_HEADER = ("open_time,open,high,low,close,volume,close_time,quote_volume,count,"
                "taker_buy_volume,taker_buy_quote_volume,ignore")
FUNDING_HEADER = "calc_time,funding_interval_hours,last_funding_rate"
PATHS = {"klines": "/fapi/v1/klines", "markPriceKlines": "/fapi/v1/markPriceKlines"}
RETRIES = 5


class Requester(Protocol):
    """``core.binance.rest.RestClient.request``'s shape."""

    async def request(self, method: str, path: str, params: Mapping[str, Any] | None = None,
                      *, weight: int = 1) -> Any: ...


async def _get(rest: Requester, path: str, params: dict[str, Any], weight: int) -> Any:
    for attempt in range(1, RETRIES + 1):
        try:
            return await rest.request("GET", path, params, weight=weight)
        except RetryLater as exc:  # 429/5xx: the limiter already holds requests back
            if attempt == RETRIES:
                raise HistoryError(f"REST {path} {params.get('symbol')}: {exc}") from None
            await asyncio.sleep(min(2.0 ** attempt, 30.0))
        except ExchangeError as exc:
            raise HistoryError(f"REST {path} {params.get('symbol')}: {exc}") from None
    raise AssertionError("unreachable")


async def fetch_klines(rest: Requester, archive: Archive) -> list[list[Any]]:
    """Every bar of ``archive``'s period, oldest first.

    Raises:
        HistoryError: the API refused, or the period is not complete yet.
    """
    assert archive.kind.interval is not None
    step = INTERVAL_MS[archive.kind.interval]
    start, end = archive.start_ms(), archive.end_ms()
    rows: list[list[Any]] = []
    cursor = start
    while cursor < end:
        params = {"symbol": archive.symbol, "interval": archive.kind.interval,
                  "startTime": cursor, "endTime": end - 1, "limit": KLINES_LIMIT}
        page = await _get(rest, PATHS[archive.kind.name], params, klines_weight(KLINES_LIMIT))
        if not isinstance(page, list):
            raise HistoryError(f"REST klines {archive.symbol}: unexpected answer")
        page = [r for r in page if isinstance(r, list) and len(r) >= 12 and
                start <= int(r[0]) < end]
        if not page:
            break
        rows += page
        cursor = int(page[-1][0]) + step
    expected = (end - start) // step
    if not rows or int(rows[-1][6]) < end - 1:
        raise HistoryError(f"{archive.symbol} {archive.kind} {archive.stamp}: the REST API has "
                           f"{len(rows)} of {expected} bars (period not complete yet?)")
    return rows


async def fetch_funding(rest: Requester, archive: Archive) -> list[tuple[int, float]]:
    """``(funding time ms, rate)`` of ``archive``'s period, oldest first."""
    start, end = archive.start_ms(), archive.end_ms()
    out: list[tuple[int, float]] = []
    cursor = start
    while cursor < end:
        params = {"symbol": archive.symbol, "startTime": cursor, "endTime": end - 1,
                  "limit": FUNDING_LIMIT}
        page = await _get(rest, "/fapi/v1/fundingRate", params, 1)
        if not isinstance(page, list):
            raise HistoryError(f"REST fundingRate {archive.symbol}: unexpected answer")
        got = []
        for r in page:
            try:
                got.append((int(r["fundingTime"]), float(r["fundingRate"])))
            except (KeyError, TypeError, ValueError):
                raise HistoryError(f"REST fundingRate {archive.symbol}: malformed row") from None
        got = [g for g in got if start <= g[0] < end]
        if not got:
            break
        out += got
        if len(page) < FUNDING_LIMIT:
            break
        cursor = got[-1][0] + 1
    return out


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


async def fetch_rest(rest: Requester, archive: Archive, root: Path) -> Path:
    """Fetch ``archive``'s period from the REST API and store it as ``.rest.csv``.

    Raises:
        HistoryError: the API refused, the period is incomplete, or the disk is full.
    """
    dest = archive.rest_local(root)
    if archive.kind.name == "fundingRate":
        rows = await fetch_funding(rest, archive)
        hours = [max(1, round((b[0] - a[0]) / 3_600_000))
                 for a, b in zip(rows, rows[1:], strict=False)]
        lines = [f"{t},{(hours[i - 1] if i else (hours[0] if hours else 8))},{r!r}"
                 for i, (t, r) in enumerate(rows)]
        text = "\n".join([FUNDING_HEADER, *lines]) + "\n"
    else:
        bars = await fetch_klines(rest, archive)
        text = "\n".join([KLINE_HEADER, *(",".join(str(v) for v in r[:12]) for r in bars)]) + "\n"
    try:
        _write_atomic(dest, text)
    except OSError as exc:
        from core.history.archive import _disk_error

        raise _disk_error(dest, exc) from None
    return dest
