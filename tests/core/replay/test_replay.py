"""core/replay/source.py: recorded Binance data -> ordered market events.

Real-data tests read ../shared through conftest (skip locally, fail in CI when it is absent).
"""

from __future__ import annotations

import gzip
import zipfile
from collections import Counter
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.events import BookTicker, Candle, FundingRate, MarketTick, MarkPrice
from core.replay.csv_files import symbol_from_filename
from core.replay.source import (
    ReplayError,
    ReplaySource,
    ReplayStats,
    detect_format,
    read_capture_lines,
    reorder,
)
from tests.conftest import shared_file

BTC24, ETH24, BTC23 = "btcusdt_20240808.gz", "ethusdt_20240808.gz", "btcusdt_20230405.dat.gz"
KLINES, FUNDING = "BTCUSDT-1m-2023-04-15.csv", "XRP_USDT_USDT-8h-funding_rate.csv"
BNB, BOOK_CSV = "BNBUSDT-aggTrades-2023-06_9000Rows.csv", "BTCUSDT-bookTicker-2023-10-02-short.csv"


def utc_ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


@cache
def replay(name: str) -> tuple[tuple, ReplayStats]:
    source = ReplaySource([shared_file(name)])
    events = tuple(source)
    return events, source.stats


def is_sorted(events) -> bool:
    return all(a.ts_ms <= b.ts_ms for a, b in zip(events, events[1:], strict=False))


def capture_line(payload: dict, stream: str | None = None, ts: int = 1723161255088169167) -> bytes:
    body = {"stream": stream, "data": payload} if stream else payload
    return f"{ts} ".encode() + orjson.dumps(body)


def book(ts: int, bid: str = "100.1", symbol: str = "BTCUSDT") -> dict:
    return {"e": "bookTicker", "u": 1, "s": symbol, "b": bid, "B": "1.5", "a": "100.2",
            "A": "2.5", "T": ts, "E": ts}


def write_capture(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def error_of(path: Path, **kwargs) -> str:
    """The message of the ReplayError raised by building and draining a source on ``path``."""
    with pytest.raises(ReplayError) as info:
        list(ReplaySource([path], **kwargs))
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


# --------------------------------------------------------------------------- real files

COUNTS = {
    BTC24: ("capture", {MarketTick: 21_313, BookTicker: 66_089}, 6_551 + 1),
    ETH24: ("capture", {MarketTick: 14_076, BookTicker: 53_992}, 6_586 + 1),
    # 10,738 trades, one of them an INSURANCE_FUND print that is dropped (and skipped)
    BTC23: ("capture", {MarketTick: 10_737, BookTicker: 37_440, MarkPrice: 415}, 11_788 + 1),
    KLINES: ("klines_csv", {Candle: 1_440}, 0),
    FUNDING: ("funding_csv", {FundingRate: 91}, 0),
    BNB: ("aggtrades_csv", {MarketTick: 8_999}, 0),
    BOOK_CSV: ("bookticker_csv", {BookTicker: 9_999}, 0),
}
SYMBOL = {BTC24: "BTCUSDT", ETH24: "ETHUSDT", BTC23: "BTCUSDT", KLINES: "BTCUSDT",
          FUNDING: "XRPUSDT", BNB: "BNBUSDT", BOOK_CSV: "BTCUSDT"}


@pytest.mark.realdata
@pytest.mark.parametrize("name", sorted(COUNTS))
def test_every_shared_file_parses_with_the_documented_counts_in_order(name, data_dir):
    fmt, counts, skipped = COUNTS[name]
    assert detect_format(data_dir / name) == fmt
    events, stats = replay(name)
    assert Counter(type(e) for e in events) == counts
    assert stats.events == len(events)
    assert (stats.skipped, stats.bad_lines, stats.late) == (skipped, 0, 0)
    assert is_sorted(events)
    assert {e.symbol for e in events} == {SYMBOL[name]}
    assert (stats.first_ts_ms, stats.last_ts_ms) == (events[0].ts_ms, events[-1].ts_ms)


@pytest.mark.realdata
@pytest.mark.parametrize("name, first, last, tolerance_ms", [
    (BTC24, "2024-08-08 23:54:16.300", "2024-08-09 00:00:00.700", 100),
    (ETH24, "2024-08-08 23:54:16.300", "2024-08-09 00:00:01.000", 100),
    (BTC23, "2023-04-05 00:00:00.000", "2023-04-05 00:06:54.000", 1000),
    # SOURCES.md gives transaction times; BookTicker.ts_ms is the event time, a few ms later
    (BOOK_CSV, "2023-10-02 00:00:00.012", "2023-10-02 00:00:27.849", 10),
    (BNB, "2023-06-01 00:00:05.929", "2023-06-01 02:47:25.644", 1),
    (KLINES, "2023-04-15 00:00:59.999", "2023-04-15 23:59:59.999", 1),  # close times
    (FUNDING, "2021-11-18 00:00:00.017", "2021-12-18 00:00:00.014", 1),
])
def test_first_and_last_timestamps_match_the_documented_windows(name, first, last, tolerance_ms,
                                                               data_dir):
    _, stats = replay(name)
    assert 0 <= stats.first_ts_ms - utc_ms(first) < tolerance_ms
    assert 0 <= stats.last_ts_ms - utc_ms(last) < tolerance_ms


@pytest.mark.realdata
def test_insurance_fund_print_is_dropped_and_market_trades_kept(data_dir):
    raw = gzip.decompress((data_dir / BTC23).read_bytes()).splitlines()
    assert sum(b'"X":"INSURANCE_FUND"' in line for line in raw) == 1
    ticks = [e for e in replay(BTC23)[0] if type(e) is MarketTick]
    assert not any(t.price == 28722.5 for t in ticks)  # the liquidation print, ~575 above market
    first = next(line for line in raw if b"@trade" in line)
    d = orjson.loads(first.split(b" ", 1)[1])["data"]
    assert d["X"] == "MARKET"
    assert MarketTick("BTCUSDT", d["E"], d["T"], float(d["p"]), float(d["q"]), d["m"]) in ticks


@pytest.mark.realdata
def test_mark_price_events_span_the_funding_settlement(data_dir):
    marks = [e for e in replay(BTC23)[0] if type(e) is MarkPrice]
    assert marks[0] == MarkPrice("BTCUSDT", 1680652800010, 28155.1, 28165.04857143, 0.0000276,
                                 1680652800000)
    assert marks[-1].next_funding_ms == utc_ms("2023-04-05 08:00:00")


@pytest.mark.realdata
def test_klines_file_gives_closed_one_minute_candles(data_dir):
    candles = replay(KLINES)[0]
    assert all(c.closed and c.interval_ms == 60_000 and c.ts_ms == c.open_ms + 59_999
               for c in candles)
    assert [c.open_ms for c in candles] == list(range(candles[0].open_ms, utc_ms("2023-04-16"),
                                                      60_000))
    assert (min(c.low for c in candles), max(c.high for c in candles)) == (30186.0, 30599.9)


@pytest.mark.realdata
def test_capture_is_out_of_order_without_the_reorder_buffer(data_dir):
    source = ReplaySource([data_dir / BTC23], reorder_ms=0)
    events = list(source)
    assert len(events) == len(replay(BTC23)[0]) and source.stats.late > 0
    assert not is_sorted(events)
    assert sorted(events, key=lambda e: e.ts_ms) == list(replay(BTC23)[0])  # same stable order


@pytest.mark.realdata
def test_two_captures_merge_by_exchange_time(data_dir):
    source = ReplaySource([data_dir / BTC24, data_dir / ETH24])
    merged = list(source)
    assert len(merged) == 87_402 + 68_068 == source.stats.events
    assert is_sorted(merged)
    assert [e for e in merged if e.symbol == "BTCUSDT"] == list(replay(BTC24)[0])
    assert [e for e in merged if e.symbol == "ETHUSDT"] == list(replay(ETH24)[0])
    switches = sum(a.symbol != b.symbol for a, b in zip(merged, merged[1:], strict=False))
    assert switches > 10_000  # interleaved, not concatenated
    assert source.stats.first_ts_ms == 1723161256311  # ETH's first bookTicker
    assert source.stats.files == [str(data_dir / BTC24), str(data_dir / ETH24)]


@pytest.mark.realdata
def test_symbols_filter_keeps_only_those_symbols(data_dir):
    source = ReplaySource([data_dir / BTC24, data_dir / ETH24, data_dir / BNB], symbols={"ethusdt"})
    events = list(source)
    assert events == list(replay(ETH24)[0])
    assert source.stats.skipped == 6_552 + 6_587 + 87_402


@pytest.mark.realdata
def test_in_memory_parser_matches_the_file_source(data_dir):
    lines = gzip.decompress((data_dir / BTC24).read_bytes()).splitlines()
    stats = ReplayStats()
    parsed = list(read_capture_lines(lines, source="btc", stats=stats))
    assert Counter(parsed) == Counter(replay(BTC24)[0])
    assert stats.skipped == 6_552
    with_newlines = list(read_capture_lines(line + b"\n" for line in lines[:3000]))
    assert with_newlines == list(read_capture_lines(lines[:3000]))


@pytest.mark.realdata
def test_content_decides_the_format_not_the_file_name(data_dir, tmp_path):
    gz_csv = tmp_path / KLINES  # gzip content under a .csv name
    gz_csv.write_bytes(gzip.compress((data_dir / KLINES).read_bytes()))
    plain = tmp_path / "btcusdt_capture.gz"  # plain text under a .gz name
    plain.write_bytes(gzip.decompress((data_dir / BTC24).read_bytes()))
    headerless = tmp_path / "BTCUSDT-1m-headerless.txt"
    headerless.write_bytes((data_dir / KLINES).read_bytes().split(b"\n", 1)[1])
    zipped = tmp_path / "BNBUSDT-aggTrades-2023-06.zip"  # data.binance.vision ships zips
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(data_dir / BNB, BNB)
    assert [detect_format(p) for p in (gz_csv, plain, headerless, zipped)] == [
        "klines_csv", "capture", "klines_csv", "aggtrades_csv"]
    assert tuple(ReplaySource([gz_csv])) == replay(KLINES)[0]
    assert tuple(ReplaySource([plain])) == replay(BTC24)[0]
    assert tuple(ReplaySource([headerless])) == replay(KLINES)[0]
    assert tuple(ReplaySource([zipped])) == replay(BNB)[0]


@pytest.mark.realdata
def test_a_bad_value_in_a_chunk_spoils_only_its_own_line(data_dir, tmp_path):
    lines = gzip.decompress((data_dir / BTC24).read_bytes()).splitlines()[:5000]
    bad = lines[2500].replace(b'"b":"', b'"b":"x')
    assert bad != lines[2500]
    spoiled = lines[:2500] + [bad] + lines[2501:]
    source = ReplaySource([write_capture(tmp_path / "btc.dat", spoiled)])
    events = list(source)
    expected = list(ReplaySource([write_capture(tmp_path / "ok.dat", lines)]))
    gone = read_capture_lines([lines[2500]])
    assert Counter(events) == Counter(expected) - Counter(gone)
    assert source.stats.bad_lines == 1 and is_sorted(events)


# --------------------------------------------------------------------------- recorded samples

SAMPLES = {
    "ws_market_aggTrade_docs_example.json": MarketTick,
    "ws_market_bookTicker_docs_example.json": BookTicker,
    "ws_market_depthUpdate_docs_example.json": None,
    "ws_market_kline_1m_open_docs_example.json": Candle,
    "ws_market_markPriceUpdate_docs_example.json": MarkPrice,
    "unattributed/uat_2026-02_ws_market_combined_aggTrade_BTCUSDT.json": MarketTick,
    "unattributed/uat_2026-02_ws_market_combined_bookTicker_BTCUSDT.json": BookTicker,
    "unattributed/uat_2026-02_ws_market_combined_depth5_100ms_BTCUSDT.json": None,
    "unattributed/uat_2026-02_ws_market_combined_markPrice1s_BTCUSDT.json": MarkPrice,
}


def expected_event(d: dict):
    e = d["e"]
    if e == "aggTrade":
        return MarketTick(d["s"], d["E"], d["T"], float(d["p"]), float(d["q"]), d["m"])
    if e == "bookTicker":
        return BookTicker(d["s"], d["E"], float(d["b"]), float(d["B"]), float(d["a"]),
                          float(d["A"]))
    if e == "markPriceUpdate":
        return MarkPrice(d["s"], d["E"], float(d["p"]), float(d["i"]), float(d["r"]), d["T"])
    k = d["k"]
    return Candle(d["s"], d["E"], 60_000, k["t"], float(k["o"]), float(k["h"]), float(k["l"]),
                  float(k["c"]), float(k["v"]), k["x"])


@pytest.mark.realdata
@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_recorded_market_samples_go_through_the_same_parser(name, samples_dir, tmp_path):
    message = orjson.loads((samples_dir / name).read_bytes())
    path = write_capture(tmp_path / "sample.dat", [b"1771263510200123 " + orjson.dumps(message)])
    source = ReplaySource([path])
    events = list(source)
    assert detect_format(path) == "capture"
    if SAMPLES[name] is None:  # depth
        assert events == [] and source.stats.skipped == 1
        return
    payload = message.get("data", message)
    assert events == [expected_event(payload)]
    assert type(events[0]) is SAMPLES[name]
    assert list(read_capture_lines([orjson.dumps(payload)])) == events  # bare, no <ts> prefix


# --------------------------------------------------------------------------- synthetic captures


def test_capture_payload_variants(tmp_path):
    trade = {"e": "trade", "E": 1000, "T": 999, "s": "BTCUSDT", "t": 1, "p": "10.5", "q": "2",
             "X": "MARKET", "m": False}
    adl = dict(trade, X="ADL", E=1001)
    no_x = {k: v for k, v in trade.items() if k != "X"} | {"E": 1002}
    kline = {"e": "kline", "E": 1003, "s": "ETHUSDT", "k": {
        "t": 0, "T": 3_599_999, "s": "ETHUSDT", "i": "1h", "o": "1", "c": "2", "h": "3", "l": "0.5",
        "v": "7", "x": True}}
    arr = [{"e": "markPriceUpdate", "E": 1004, "s": s, "p": "1.5", "P": "1.5", "i": "1.4", "r": r,
            "T": t} for s, r, t in (("BTCUSDT", "0.0001", 8), ("BTCUSDT_240628", "", 0))]
    lines = [
        capture_line(trade, "btcusdt@trade"),
        capture_line(adl, "btcusdt@trade"),
        orjson.dumps(no_x),  # bare payload, no local timestamp
        capture_line(kline, "ethusdt@kline_1h", ts=1680652800091265),
        capture_line(arr, "!markPrice@arr@1s"),  # type: ignore[arg-type]
        b'1723161255319702566 {"lastUpdateId":5,"E":1,"T":1,"bids":[["1","2"]],"asks":[["3","4"]]}',
        b'1723161255319702567 {"result":null,"id":1}',
        b"",
    ]
    source = ReplaySource([write_capture(tmp_path / "x.dat", lines)])
    assert list(source) == [
        MarketTick("BTCUSDT", 1000, 999, 10.5, 2.0, False),
        MarketTick("BTCUSDT", 1002, 999, 10.5, 2.0, False),
        Candle("ETHUSDT", 1003, 3_600_000, 0, 1.0, 3.0, 0.5, 2.0, 7.0, True),
        MarkPrice("BTCUSDT", 1004, 1.5, 1.4, 0.0001, 8),
        MarkPrice("BTCUSDT_240628", 1004, 1.5, 1.4, 0.0, 0),
    ]
    assert type(list(source)[0].price) is float and type(list(source)[1].quantity) is float
    assert source.stats.skipped == 3  # ADL print, snapshot, subscription ack


def test_isolated_bad_lines_are_skipped_and_counted(tmp_path):
    lines = [capture_line(book(1000 + i)) for i in range(1000)]
    lines[500] = lines[500][:-30]  # cut off mid-JSON
    lines[700] = capture_line({k: v for k, v in book(1700).items() if k != "B"})  # missing field
    lines[900] = capture_line({"e": "trade", "E": 1900, "T": 1900, "s": "BTCUSDT", "t": 1,
                               "p": "1.5", "q": "2", "X": "MARKET", "m": "no"})  # not a bool
    source = ReplaySource([write_capture(tmp_path / "capture.dat", lines)])
    events = list(source)
    assert len(events) == 997 and source.stats.bad_lines == 3
    assert source.stats.events == 997 and is_sorted(events)
    assert {type(e) for e in events} == {BookTicker}


def test_appended_gzip_members_and_zero_padding_are_read(tmp_path):
    first = [capture_line(book(1000 + i)) for i in range(300)]
    second = [capture_line(book(2000 + i)) for i in range(300)]
    path = tmp_path / "appended.dat.gz"
    path.write_bytes(gzip.compress(b"\n".join(first) + b"\n") + bytes(64)
                     + gzip.compress(b"\n".join(second) + b"\n") + bytes(8))
    expected = list(range(1000, 1300)) + list(range(2000, 2300))
    assert [e.ts_ms for e in ReplaySource([path])] == expected


def test_a_bad_line_near_the_start_is_an_error_with_its_line_number(tmp_path):
    lines = [capture_line(book(1000 + i)) for i in range(50)]
    lines[24] = b"1723161255088169167 {not json"
    message = error_of(write_capture(tmp_path / "capture.dat", lines))
    assert "line 25" in message and "invalid JSON" in message


def test_more_than_one_percent_bad_lines_is_an_error(tmp_path):
    lines = [capture_line(book(1000 + i)) for i in range(2000)]
    for i in range(300, 2000, 60):
        lines[i] = b"1723161255088169167 garbage"
    assert "more than 1%" in error_of(write_capture(tmp_path / "capture.dat", lines))


# --------------------------------------------------------------------------- CSV layouts


@pytest.mark.parametrize("name, text, expected", [
    ("BTCUSDT-aggTrades-2025-01-01.csv",  # official header, µs timestamps
     "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker\n"
     "1,100.5,0.25,10,12,1735689600123456,true\n",
     [MarketTick("BTCUSDT", 1735689600123, 1735689600123, 100.5, 0.25, True)]),
    ("BTCUSDT-aggTrades-2025-01-01.csv",  # spot layout: no header, is_best_match, True/False
     "1,100.5,0.25,10,12,1735689600123,False,True\n",
     [MarketTick("BTCUSDT", 1735689600123, 1735689600123, 100.5, 0.25, False)]),
    ("ETHUSDT-trades-2024-01-01.csv",
     "id,price,qty,quote_qty,time,is_buyer_maker\r\n7,2000.5,1.5,3000.75,1704067200001,false\r\n",
     [MarketTick("ETHUSDT", 1704067200001, 1704067200001, 2000.5, 1.5, False)]),
    ("ETHUSDT-trades-2024-01-01.csv", "7,2000.5,1.5,3000.75,1704067200001,true\n",
     [MarketTick("ETHUSDT", 1704067200001, 1704067200001, 2000.5, 1.5, True)]),
    ("BTCUSDT-bookTicker-2023-10-02.csv", "3319366863672,1.5,2,1.6,3,1696204800012,1696204800018\n",
     [BookTicker("BTCUSDT", 1696204800018, 1.5, 2.0, 1.6, 3.0)]),
    ("BTCUSDT-5m-2025-01-01.csv",  # klines in µs
     "1735689600000000,1,2,0.5,1.5,10,1735689899999999,15,3,4,5,0\n",
     [Candle("BTCUSDT", 1735689899999, 300_000, 1735689600000, 1.0, 2.0, 0.5, 1.5, 10.0, True)]),
    ("BTCUSDT-bookTicker-2023-10-02.csv",  # a byte order mark before a headerless row
     "\ufeff3319366863672,1.5,2,1.6,3,1696204800012,1696204800018\n",
     [BookTicker("BTCUSDT", 1696204800018, 1.5, 2.0, 1.6, 3.0)]),
    ("BTCUSDT-fundingRate-2024-01.csv",
     "calc_time,funding_interval_hours,last_funding_rate\n1704067200000,8,-0.00012\n",
     [FundingRate("BTCUSDT", 1704067200000, -0.00012)]),
])
def test_csv_layouts(tmp_path, name, text, expected):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    assert list(ReplaySource([path])) == expected


def test_csv_symbol_comes_from_the_argument_when_the_name_has_none(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("timestamp,price,quantity,is_buyer_maker\n1685577605929,306.89,8.12,true\n")
    assert "pass symbol=" in error_of(path)
    assert list(ReplaySource([path], symbol="bnbusdt")) == [
        MarketTick("BNBUSDT", 1685577605929, 1685577605929, 306.89, 8.12, True)]
    assert detect_format(path) == "aggtrades_csv"


@pytest.mark.parametrize("name, symbol", [
    ("BTCUSDT-1m-2023-04-15.csv", "BTCUSDT"),
    ("BNBUSDT-aggTrades-2023-06_9000Rows.csv", "BNBUSDT"),
    ("XRP_USDT_USDT-8h-funding_rate.csv", "XRPUSDT"),
    ("1000PEPEUSDT-trades-2024-01-01.zip", "1000PEPEUSDT"),
    ("BTCUSDT_240628-aggTrades-2024-05-01.csv", "BTCUSDT_240628"),
    ("ethbtc-bookTicker.csv", "ETHBTC"),
    ("data.csv", None),
    ("USDT-1m.csv", None),
])
def test_symbol_from_filename(name, symbol):
    assert symbol_from_filename(name) == symbol


# --------------------------------------------------------------------------- unusable inputs


def test_unusable_files_raise_one_line_replay_errors(tmp_path):
    cases = {
        "garbage.dat": (bytes(range(256)) * 8, "binary"),
        "BTCUSDT-empty.csv": (b"", "empty file"),
        "blank.dat": (b"\n  \n\n", "empty file"),
        "BTCUSDT-odd.csv": (b"foo,bar,baz\n1,2,3\n", "unknown CSV header"),
        "BTCUSDT-5cols.csv": (b"1,2,3,4,5\n", "unrecognised CSV row with 5 columns"),
        "words.txt": (b"hello world\n", "unrecognised content"),
        "notjson.dat": (b"1723161255088169167 {oops\n", "line 1: not a capture line"),
        "BTCUSDT-tiny.gz": (gzip.compress(b"x" * 100)[:12], "truncated gzip"),
        "BTCUSDT-corrupt.gz": (b"\x1f\x8b\x08\x00" + bytes(40), "corrupt gzip"),
    }
    for name, (content, expected) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        assert expected in error_of(path), name
    assert "cannot read" in error_of(tmp_path / "missing.gz")
    with pytest.raises(ReplayError):
        detect_format(tmp_path / "garbage.dat")


def test_truncated_gzip_fails_when_the_cut_is_reached(tmp_path):
    lines = [capture_line(book(1000 + i)) for i in range(20_000)]
    data = gzip.compress(b"\n".join(lines))
    path = tmp_path / "cut.dat.gz"
    path.write_bytes(data[: len(data) // 2])
    source = ReplaySource([path])  # the head is readable
    seen = []
    with pytest.raises(ReplayError, match="truncated gzip") as info:
        for event in source:
            seen.append(event)
    assert len(seen) > 1000 and "\n" not in str(info.value) and str(path) in str(info.value)


def test_a_bad_csv_row_near_the_start_names_the_line(tmp_path):
    path = tmp_path / "BTCUSDT-1m-2023-04-15.csv"
    path.write_text("1681516800000,1,2,0.5,1.5,10,1681516859999,15,3,4,5,0\n"
                    "1681516860000,1,2,oops,1.5,10,1681516919999,15,3,4,5,0\n")
    assert "line 2: bad klines_csv row" in error_of(path)


def test_construction_validates_arguments(tmp_path):
    with pytest.raises(ReplayError, match="no files"):
        ReplaySource([])
    path = write_capture(tmp_path / "x.dat", [capture_line(book(1))])
    with pytest.raises(ReplayError, match="reorder_ms"):
        ReplaySource([path], reorder_ms=-1)


# --------------------------------------------------------------------------- reorder buffer

WINDOW = 2000


def chunked(events: list, sizes: list[int]) -> list[list]:
    out, i, k = [], 0, 0
    while i < len(events):
        n = sizes[k % len(sizes)]
        out.append(events[i:i + n])
        i, k = i + n, k + 1
    return out


@given(steps=st.lists(st.tuples(st.integers(0, 700), st.integers(0, WINDOW)), max_size=400),
       sizes=st.lists(st.integers(1, 64), min_size=1, max_size=8))
def test_reorder_sorts_jitter_within_the_window(steps, sizes):
    base, events = 1_700_000_000_000, []
    for i, (gap, jitter) in enumerate(steps):  # exchange time + a receive delay <= the window
        base += gap
        events.append(BookTicker("BTCUSDT", base + jitter, float(i), 1.0, 2.0, 1.0))
    stats = ReplayStats()
    out = [e for chunk in reorder(chunked(events, sizes), window_ms=WINDOW, stats=stats)
           for e in chunk]
    assert out == sorted(events, key=lambda e: e.ts_ms)  # sorted, a permutation, and stable
    assert (stats.events, stats.late) == (len(events), 0)


@given(ts=st.lists(st.integers(0, 20_000), max_size=300),
       sizes=st.lists(st.integers(1, 64), min_size=1, max_size=8),
       window=st.integers(0, 3000))
def test_reorder_emits_events_beyond_the_window_and_counts_them_late(ts, sizes, window):
    events = [MarketTick("ETHUSDT", t, t, float(i), 1.0, False) for i, t in enumerate(ts)]
    stats = ReplayStats()
    out = [e for chunk in reorder(chunked(events, sizes), window_ms=window, stats=stats)
           for e in chunk]
    assert Counter(out) == Counter(events)
    running, late = None, 0
    for e in out:
        late += running is not None and e.ts_ms < running
        running = e.ts_ms if running is None else max(running, e.ts_ms)
    assert stats.late == late
    assert stats.first_ts_ms == (min(ts) if ts else None)


def test_reorder_is_lazy_and_bounded():
    def endless():
        t = 0
        while True:
            yield [BookTicker("BTCUSDT", t + k, 1.0, 1.0, 1.0, 1.0) for k in range(10)]
            t += 10

    stream = reorder(endless(), window_ms=100)
    first = [next(stream) for _ in range(50)]
    assert all(len(chunk) == 10 for chunk in first[1:])  # emitted as it goes, nothing piles up
    assert first[0][0].ts_ms == 0
