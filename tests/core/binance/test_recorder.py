"""Record the fake's market streams, then replay the file: the same engine events come back."""

from __future__ import annotations

import asyncio
import gzip
import os
from pathlib import Path

from core.binance.parse_market import parse_market_event
from core.binance.recorder import Recorder
from core.replay.source import ReplaySource
from tests.conftest import eventually
from tests.fakes.binance import FakeBinance
from tests.fakes.binance_client import AGG, BOOK

MARK = {"e": "markPriceUpdate", "E": 1771263510300, "s": "BTCUSDT", "p": "68001.10",
        "ap": "68000.00", "P": "68002.00", "i": "68003.00", "r": "0.00010000",
        "T": 1771286400000, "st": 1}
KLINE = {"e": "kline", "E": 1771263510400, "s": "BTCUSDT", "k": {
    "t": 1771263480000, "T": 1771263539999, "s": "BTCUSDT", "i": "1m", "f": 1, "L": 9,
    "o": "68000.00", "c": "68005.00", "h": "68010.00", "l": "67990.00", "v": "12.5", "n": 9,
    "x": False, "q": "850000", "V": "6", "Q": "408000", "B": "0"}}
FRAMES = [
    ("btcusdt@aggTrade", AGG),
    ("btcusdt@bookTicker", BOOK | {"E": 1771263510200, "T": 1771263510199}),
    ("btcusdt@markPrice@1s", MARK),
    ("btcusdt@kline_1m", KLINE),
    ("btcusdt@aggTrade", AGG | {"a": 2, "E": 1771263510500, "T": 1771263510499,
                                "p": "68006.10"}),
]
KINDS = ("aggTrade", "bookTicker", "markPrice@1s", "kline_1m")


async def push_all(fake: FakeBinance) -> None:
    await eventually(lambda: fake.market_subscribers("btcusdt@kline_1m") == 1
                     and fake.market_subscribers("btcusdt@bookTicker") == 1)
    for stream, data in FRAMES:
        await fake.push_market(stream, data)


def expected() -> list:
    return sorted((parse_market_event({"stream": s, "data": d}) for s, d in FRAMES),
                  key=lambda ev: ev.ts_ms)


async def test_record_then_replay_gives_the_same_events(fake: FakeBinance,
                                                        tmp_path: Path) -> None:
    out = tmp_path / "capture.gz"
    stop = asyncio.Event()
    recorder = Recorder(fake.stream_url, ["BTCUSDT"], out, kinds=KINDS)
    task = asyncio.create_task(recorder.run(stop))
    await push_all(fake)
    await eventually(lambda: recorder.stats.frames == len(FRAMES))
    stop.set()
    stats = await task
    assert stats.frames == len(FRAMES)
    lines = gzip.decompress(out.read_bytes()).splitlines()
    ts, _, body = lines[0].partition(b" ")
    assert ts.isdigit() and len(ts) >= 19 and body.startswith(b'{"stream":"btcusdt@')
    assert list(ReplaySource([out], reorder_ms=0)) == expected()


async def test_record_command(fake: FakeBinance, tmp_path: Path, monkeypatch) -> None:
    import main

    out = tmp_path / "cli.gz"
    monkeypatch.setenv("BINANCE_STREAM_URL", fake.stream_url)
    monkeypatch.chdir(tmp_path)  # no .env from the working tree
    argv = ["record", "--symbols", "BTCUSDT", "--out", str(out), "--streams", ",".join(KINDS),
            "--duration", "1.0"]
    run = asyncio.create_task(asyncio.to_thread(main.main, argv))
    await push_all(fake)
    assert await run == 0
    assert list(ReplaySource([out], reorder_ms=0)) == expected()
    assert os.path.getsize(out) > 0

