"""A fake data.binance.vision (plus the REST endpoints ``download`` falls back to) on 127.0.0.1.

Serves ``data/futures/um/...`` zips with their ``.CHECKSUM`` files in the official layout,
built from the shared real files (``BTCUSDT-1m-2023-04-15.csv`` shifted day by day into whole
months, the shared aggTrades and bookTicker files as they are), and ``GET /fapi/v1/klines``,
``/fapi/v1/markPriceKlines`` and ``/fapi/v1/fundingRate`` with Binance's parameters, row shapes
and ``X-MBX-USED-WEIGHT-1M`` header. Faults per file: a wrong checksum, a truncated zip (its
checksum matches the truncated bytes, as a broken upload would), a slow body, a connection
dropped mid-body. Anything not added answers 404. ``requests`` lists every path served.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import zipfile
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from core.binance.market_rest import klines_weight

DAY_MS = 86_400_000
KLINE_HEADER = ("open_time,open,high,low,close,volume,close_time,quote_volume,count,"
                "taker_buy_volume,taker_buy_quote_volume,ignore")


def day_ms(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() * 1000)


def read_day(path: Path) -> tuple[date, list[list[str]]]:
    """The shared day of 1m klines: its date and rows (header dropped)."""
    lines = path.read_text().splitlines()
    rows = [ln.split(",") for ln in lines[1:] if ln.strip()]
    first = datetime.fromtimestamp(int(rows[0][0]) / 1000, UTC).date()
    return first, rows


def shifted(rows: list[list[str]], days: int) -> list[list[str]]:
    """The same bars ``days`` later (open and close times moved)."""
    d = days * DAY_MS
    return [[str(int(r[0]) + d), *r[1:6], str(int(r[6]) + d), *r[7:]] for r in rows]


def bars_for(base_day: date, rows: list[list[str]], start: date, end: date) -> list[list[str]]:
    """1m bars for every day of ``start..end`` (inclusive): the base day, shifted."""
    out: list[list[str]] = []
    d = start
    while d <= end:
        out += shifted(rows, (d - base_day).days)
        d += timedelta(1)
    return out


def mark_rows(rows: list[list[str]], factor: float = 1.0) -> list[list[str]]:
    """Synthetic mark-price klines for traded klines ``rows`` (there is no real markPriceKlines
    file in the shared data): the traded open, high, low and close times ``factor``, in Binance's
    markPriceKlines columns (every volume column 0, count 60: one mark per second of a 1m bar,
    as ``GET /fapi/v1/markPriceKlines`` answers)."""
    def px(x: str) -> str:
        return f"{float(x) * factor:.2f}"
    return [[r[0], px(r[1]), px(r[2]), px(r[3]), px(r[4]), "0", r[6], "0", "60", "0", "0", "0"]
            for r in rows]


def funding_rows(start: date, end: date, rate: float = 0.0001) -> list[list[str]]:
    """Official fundingRate CSV rows every 8 h over ``start..end``; the rate alternates."""
    t, stop = day_ms(start), day_ms(end + timedelta(1))
    out, i = [], 0
    while t < stop:
        out.append([str(t), "8", repr(rate if i % 2 == 0 else -rate / 2)])
        t += 8 * 3_600_000
        i += 1
    return out


def zip_bytes(csv_name: str, text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(csv_name, text)
    return buf.getvalue()


@dataclass(slots=True)
class _File:
    body: bytes
    checksum: bytes
    slow_s: float = 0.0  # pause between 4 KiB chunks
    drop: bool = False  # close the connection halfway through the body


class FakeArchive:
    """Start with ``await fake.start()``; ``base_url`` then points at it."""

    def __init__(self) -> None:
        self.files: dict[str, _File] = {}
        self.rest_bars: dict[tuple[str, str], list[list[str]]] = {}  # (path, symbol) -> rows
        self.rest_funding: dict[str, list[tuple[int, float]]] = {}
        self.requests: list[str] = []
        self.rest_calls: list[tuple[str, dict[str, str]]] = []
        self.weight_used = 0
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # ------------------------------------------------------------------ content

    def add(self, rel_path: str, text: str, *, bad_checksum: bool = False,
            truncate: bool = False, slow_s: float = 0.0, drop: bool = False) -> None:
        """Serve ``text`` as the CSV inside the zip at ``rel_path`` (``data/futures/...zip``)."""
        name = rel_path.rsplit("/", 1)[1]
        body = zip_bytes(name[:-4] + ".csv", text)
        if truncate:
            body = body[: len(body) // 2]
        digest = hashlib.sha256(body).hexdigest()
        if bad_checksum:
            digest = hashlib.sha256(body + b"x").hexdigest()
        self.files[rel_path] = _File(body, f"{digest}  {name}\n".encode(), slow_s, drop)

    def add_klines(self, rel_path: str, rows: list[list[str]], **faults: Any) -> None:
        self.add(rel_path, "\n".join([KLINE_HEADER, *(",".join(r) for r in rows)]) + "\n",
                 **faults)

    def add_funding(self, rel_path: str, rows: list[list[str]]) -> None:
        self.add(rel_path, "\n".join(["calc_time,funding_interval_hours,last_funding_rate",
                                      *(",".join(r) for r in rows)]) + "\n")

    def remove(self, rel_path: str) -> None:
        self.files.pop(rel_path, None)

    # ------------------------------------------------------------------ server

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/fapi/v1/klines", self._klines)
        app.router.add_get("/fapi/v1/markPriceKlines", self._klines)
        app.router.add_get("/fapi/v1/fundingRate", self._funding)
        app.router.add_get("/{tail:.*}", self._file)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _file(self, request: web.Request) -> web.StreamResponse:
        rel = request.match_info["tail"]
        self.requests.append(rel)
        if rel.endswith(".CHECKSUM"):
            f = self.files.get(rel[: -len(".CHECKSUM")])
            if f is None:
                raise web.HTTPNotFound()
            return web.Response(body=f.checksum, content_type="text/plain")
        f = self.files.get(rel)
        if f is None:
            raise web.HTTPNotFound()
        resp = web.StreamResponse(headers={"Content-Type": "application/zip"})
        resp.content_length = len(f.body)
        await resp.prepare(request)
        body = f.body[: len(f.body) // 2] if f.drop else f.body
        for i in range(0, len(body), 4096):
            if f.slow_s:
                await asyncio.sleep(f.slow_s)
            await resp.write(body[i:i + 4096])
        if f.drop:
            assert request.transport is not None
            request.transport.close()
            return resp
        await resp.write_eof()
        return resp

    def _headers(self, weight: int) -> dict[str, str]:
        self.weight_used += weight
        return {"X-MBX-USED-WEIGHT-1M": str(self.weight_used)}

    async def _klines(self, request: web.Request) -> web.Response:
        q = dict(request.query)
        self.rest_calls.append((request.path, q))
        limit = min(int(q.get("limit", 500)), 1500)
        start, end = int(q.get("startTime", 0)), int(q.get("endTime", 2**62))
        rows = self.rest_bars.get((request.path, q["symbol"]), [])
        page = [r for r in rows if start <= int(r[0]) <= end][:limit]
        body = [[int(r[0]), r[1], r[2], r[3], r[4], r[5], int(r[6]), r[7], int(r[8]), r[9],
                 r[10], r[11]] for r in page]
        return web.Response(body=orjson.dumps(body), content_type="application/json",
                            headers=self._headers(klines_weight(limit)))

    async def _funding(self, request: web.Request) -> web.Response:
        q = dict(request.query)
        self.rest_calls.append((request.path, q))
        limit = min(int(q.get("limit", 100)), 1000)
        start, end = int(q.get("startTime", 0)), int(q.get("endTime", 2**62))
        rows = [r for r in self.rest_funding.get(q["symbol"], []) if start <= r[0] <= end]
        body = [{"symbol": q["symbol"], "fundingTime": t, "fundingRate": f"{r:.8f}",
                 "markPrice": "30000.0"} for t, r in rows[:limit]]
        return web.Response(body=orjson.dumps(body), content_type="application/json",
                            headers=self._headers(1))
