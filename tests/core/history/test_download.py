"""download against the fake archive (tests/fakes/archive.py): layout, checksums, REST for
recent days, incremental runs, and every failure as one line with nothing half-written."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import zipfile
from datetime import date
from pathlib import Path

import pytest

import core.history.archive as archive_mod
from core.binance.clock import ServerClock
from core.binance.rate_limit import RateLimiter
from core.binance.rest import RestClient
from core.history.download import download
from core.history.layout import HistoryError, Kind, parse_kinds, plan
from tests.conftest import shared_file
from tests.fakes.archive import FakeArchive, bars_for, funding_rows, mark_rows, read_day

TODAY = date(2023, 5, 4)  # April 2023 is complete, May 1-3 are the current month
KL = "data/futures/um/{period}/klines/{sym}/1m/{sym}-1m-{stamp}.zip"
MK = "data/futures/um/{period}/markPriceKlines/{sym}/1m/{sym}-1m-{stamp}.zip"
FR = "data/futures/um/monthly/fundingRate/{sym}/{sym}-fundingRate-{stamp}.zip"


@pytest.fixture(scope="module")
def content() -> FakeArchive:
    """The archive's files, built once (zipping a month of bars takes a while)."""
    base_day, rows = read_day(shared_file("BTCUSDT-1m-2023-04-15.csv"))
    f = FakeArchive()
    april = bars_for(base_day, rows, date(2023, 4, 1), date(2023, 4, 30))
    f.add_klines(KL.format(period="monthly", sym="BTCUSDT", stamp="2023-04"), april)
    f.add_klines(MK.format(period="monthly", sym="BTCUSDT", stamp="2023-04"), mark_rows(april))
    may1 = bars_for(base_day, rows, date(2023, 5, 1), date(2023, 5, 1))
    f.add_klines(KL.format(period="daily", sym="BTCUSDT", stamp="2023-05-01"), may1)
    f.add_funding(FR.format(sym="BTCUSDT", stamp="2023-04"),
                  funding_rows(date(2023, 4, 1), date(2023, 4, 30)))
    may = bars_for(base_day, rows, date(2023, 5, 1), date(2023, 5, 3))
    f.rest_bars[("/fapi/v1/klines", "BTCUSDT")] = may
    f.rest_bars[("/fapi/v1/markPriceKlines", "BTCUSDT")] = mark_rows(may)
    f.rest_funding["BTCUSDT"] = [(int(r[0]), float(r[2])) for r in
                                 funding_rows(date(2023, 5, 1), date(2023, 5, 3))]
    return f


@pytest.fixture
async def fake(content: FakeArchive) -> FakeArchive:
    f = FakeArchive()
    f.files.update(content.files)
    f.rest_bars.update(content.rest_bars)
    f.rest_funding.update(content.rest_funding)
    await f.start()
    yield f
    await f.stop()


async def _download(fake: FakeArchive, root: Path, kinds: str, start: date, end: date,
                    symbols: tuple[str, ...] = ("BTCUSDT",), **kw):
    clock = ServerClock()
    rest = RestClient(fake.base_url, api_key=None, signer=None, clock=clock,
                      limiter=RateLimiter(clock, max_wait_s=5))
    try:
        return await download(list(symbols), parse_kinds(kinds), start, end, root=root,
                              base_url=fake.base_url, rest=rest, today=TODAY,
                              retry_delay_s=0.01, **kw)
    finally:
        await rest.close()


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_plan_monthly_for_ended_months_daily_for_the_current_one() -> None:
    k = Kind("klines", "1m")
    got = [(a.period, a.stamp) for a in plan("BTCUSDT", k, date(2023, 3, 20), date(2023, 5, 9),
                                             TODAY)]
    assert got == [("monthly", "2023-03"), ("monthly", "2023-04"), ("daily", "2023-05-01"),
                   ("daily", "2023-05-02"), ("daily", "2023-05-03")]
    got = [(a.period, a.stamp) for a in plan("BTCUSDT", Kind("fundingRate"), date(2023, 4, 2),
                                             date(2023, 5, 3), TODAY)]
    assert got == [("monthly", "2023-04"), ("monthly", "2023-05")]
    assert str(parse_kinds("klines:1m, aggTrades,markPriceKlines:5m")[2]) == "markPriceKlines:5m"
    for bad in ("klines", "klines:7m", "aggTrades:1m", "candles"):
        with pytest.raises(HistoryError):
            parse_kinds(bad)


async def test_archive_then_rest_for_recent_days_verified_and_incremental(
        fake: FakeArchive, tmp_path: Path) -> None:
    report = await _download(fake, tmp_path, "klines:1m,markPriceKlines:1m,fundingRate",
                             date(2023, 4, 10), date(2023, 5, 3))
    files = _files(tmp_path)
    month = KL.format(period="monthly", sym="BTCUSDT", stamp="2023-04")
    assert month in files and month + ".CHECKSUM" in files
    # every stored archive matches its .CHECKSUM and holds one CSV
    for rel in (f for f in files if f.endswith(".zip")):
        digest = hashlib.sha256((tmp_path / rel).read_bytes()).hexdigest()
        assert (tmp_path / (rel + ".CHECKSUM")).read_text().split()[0] == digest
        assert len(zipfile.ZipFile(tmp_path / rel).namelist()) == 1
    # May 2-3 are not archived yet: klines and mark-price klines came from REST, so did May's
    # funding (no daily funding archives)
    rest_files = [f for f in files if f.endswith(".rest.csv")]
    assert rest_files == sorted([
        "data/futures/um/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2023-05-02.rest.csv",
        "data/futures/um/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2023-05-03.rest.csv",
        "data/futures/um/daily/markPriceKlines/BTCUSDT/1m/BTCUSDT-1m-2023-05-01.rest.csv",
        "data/futures/um/daily/markPriceKlines/BTCUSDT/1m/BTCUSDT-1m-2023-05-02.rest.csv",
        "data/futures/um/daily/markPriceKlines/BTCUSDT/1m/BTCUSDT-1m-2023-05-03.rest.csv",
        "data/futures/um/monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-2023-05.rest.csv"])
    day = (tmp_path / rest_files[0]).read_text().splitlines()
    assert len(day) == 1 + 1440 and day[0].startswith("open_time,open,high")
    assert len(report.archived) == 4 and len(report.from_rest) == 6
    # REST within the limits: 1000-bar pages (weight 5), two per day
    kline_calls = [q for p, q in fake.rest_calls if p.endswith("lines")]
    assert all(q["limit"] == "1000" for q in kline_calls) and len(kline_calls) == 10
    # second run: nothing downloaded again; only the growing month's funding is re-fetched
    before = len(fake.requests)
    rest_before = len(fake.rest_calls)
    again = await _download(fake, tmp_path, "klines:1m,markPriceKlines:1m,fundingRate",
                            date(2023, 4, 10), date(2023, 5, 3))
    assert again.archived == [] and [p.name for p in again.from_rest] == [
        "BTCUSDT-fundingRate-2023-05.rest.csv"]
    assert not any(r.endswith(".zip") and "2023-04" in r for r in fake.requests[before:])
    assert len(fake.rest_calls) - rest_before == 1
    # when the archive publishes May 2, its verified zip replaces the REST copy
    base_day, rows = read_day(shared_file("BTCUSDT-1m-2023-04-15.csv"))
    fake.add_klines(KL.format(period="daily", sym="BTCUSDT", stamp="2023-05-02"),
                    bars_for(base_day, rows, date(2023, 5, 2), date(2023, 5, 2)))
    await _download(fake, tmp_path, "klines:1m", date(2023, 5, 2), date(2023, 5, 2))
    d = tmp_path / "data/futures/um/daily/klines/BTCUSDT/1m"
    assert (d / "BTCUSDT-1m-2023-05-02.zip").exists()
    assert not (d / "BTCUSDT-1m-2023-05-02.rest.csv").exists()


async def test_shared_aggtrades_and_bookticker_files_in_their_layout(
        fake: FakeArchive, tmp_path: Path) -> None:
    agg = shared_file("BNBUSDT-aggTrades-2023-06_9000Rows.csv").read_text()
    fake.add("data/futures/um/monthly/aggTrades/BNBUSDT/BNBUSDT-aggTrades-2023-06.zip", agg)
    book = shared_file("BTCUSDT-bookTicker-2023-10-02-short.csv").read_text()
    fake.add("data/futures/um/daily/bookTicker/BTCUSDT/BTCUSDT-bookTicker-2023-10-02.zip", book)
    today = date(2023, 10, 3)
    clock = ServerClock()
    rest = RestClient(fake.base_url, api_key=None, signer=None, clock=clock,
                      limiter=RateLimiter(clock))
    try:
        await download(["BNBUSDT"], parse_kinds("aggTrades"), date(2023, 6, 1),
                       date(2023, 6, 30), root=tmp_path, base_url=fake.base_url, rest=rest,
                       today=today)
        report = await download(["BTCUSDT"], parse_kinds("bookTicker"), date(2023, 10, 2),
                                date(2023, 10, 2), root=tmp_path, base_url=fake.base_url,
                                rest=rest, today=today)
    finally:
        await rest.close()
    assert len(report.archived) == 1
    with zipfile.ZipFile(tmp_path / "data/futures/um/monthly/aggTrades/BNBUSDT/"
                                    "BNBUSDT-aggTrades-2023-06.zip") as z:
        assert z.read("BNBUSDT-aggTrades-2023-06.csv").decode() == agg


async def test_recent_aggtrades_day_without_rest_source_is_reported_not_failed(
        fake: FakeArchive, tmp_path: Path) -> None:
    report = await _download(fake, tmp_path, "aggTrades", date(2023, 5, 3), date(2023, 5, 3))
    assert report.not_yet == ["BTCUSDT aggTrades 2023-05-03"] and _files(tmp_path) == []


@pytest.mark.parametrize(("fault", "message"), [
    ({"bad_checksum": True}, "checksum mismatch"),
    ({"truncate": True}, "truncated or corrupt zip"),
    ({"drop": True}, "truncated download"),
])
async def test_bad_archive_is_one_line_and_leaves_nothing(fake: FakeArchive, tmp_path: Path,
                                                          fault: dict, message: str) -> None:
    base_day, rows = read_day(shared_file("BTCUSDT-1m-2023-04-15.csv"))
    fake.add_klines(KL.format(period="monthly", sym="ETHUSDT", stamp="2023-04"),
                    bars_for(base_day, rows, date(2023, 4, 1), date(2023, 4, 30)), **fault)
    with pytest.raises(HistoryError) as err:
        await _download(fake, tmp_path, "klines:1m", date(2023, 4, 1), date(2023, 4, 30),
                        symbols=("ETHUSDT",))
    text = str(err.value)
    assert message in text and "ETHUSDT-1m-2023-04.zip" in text and "\n" not in text
    assert _files(tmp_path) == []


async def test_missing_month_and_its_days_is_an_error(fake: FakeArchive, tmp_path: Path) -> None:
    with pytest.raises(HistoryError, match=r"BTCUSDT-1m-2023-03\.zip and its daily archive "
                                           r"BTCUSDT-1m-2023-03-\d\d\.zip: not in the archive"):
        await _download(fake, tmp_path, "klines:1m", date(2023, 3, 30), date(2023, 4, 2))
    # what could be stored was stored whole; nothing else
    assert all(f.endswith((".zip", ".CHECKSUM")) for f in _files(tmp_path))


async def test_slow_response_completes_and_a_stalled_one_fails(fake: FakeArchive,
                                                               tmp_path: Path) -> None:
    base_day, rows = read_day(shared_file("BTCUSDT-1m-2023-04-15.csv"))
    rel = KL.format(period="monthly", sym="ETHUSDT", stamp="2023-04")
    fake.add_klines(rel, bars_for(base_day, rows, date(2023, 4, 1), date(2023, 4, 3)),
                    slow_s=0.002)
    report = await _download(fake, tmp_path, "klines:1m", date(2023, 4, 1), date(2023, 4, 30),
                             symbols=("ETHUSDT",))
    assert [p.name for p in report.archived] == ["ETHUSDT-1m-2023-04.zip"]
    fake.add_klines(rel.replace("ETHUSDT", "SOLUSDT"),
                    bars_for(base_day, rows, date(2023, 4, 1), date(2023, 4, 3)), slow_s=0.5)
    with pytest.raises(HistoryError, match="SOLUSDT-1m-2023-04.zip: .*stalled|no answer"):
        await _download(fake, tmp_path, "klines:1m", date(2023, 4, 1), date(2023, 4, 30),
                        symbols=("SOLUSDT",), timeout_s=0.3)
    assert not [p for p in tmp_path.rglob("SOLUSDT*") if p.is_file()]


async def test_full_disk_is_one_line_and_leaves_nothing(fake: FakeArchive, tmp_path: Path,
                                                        monkeypatch) -> None:
    def enospc(f: object, block: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(archive_mod, "_write", enospc)
    with pytest.raises(HistoryError, match="disk full writing .*BTCUSDT-1m-2023-04.zip"):
        await _download(fake, tmp_path, "klines:1m", date(2023, 4, 1), date(2023, 4, 30))
    assert [f for f in _files(tmp_path) if not f.endswith(".CHECKSUM")] == []


async def test_interrupted_run_leaves_no_partial_file(fake: FakeArchive, tmp_path: Path) -> None:
    base_day, rows = read_day(shared_file("BTCUSDT-1m-2023-04-15.csv"))
    rel = KL.format(period="monthly", sym="ETHUSDT", stamp="2023-04")
    fake.add_klines(rel, bars_for(base_day, rows, date(2023, 4, 1), date(2023, 4, 10)),
                    slow_s=0.05)
    task = asyncio.ensure_future(_download(fake, tmp_path, "klines:1m", date(2023, 4, 1),
                                           date(2023, 4, 30), symbols=("ETHUSDT",)))
    part = tmp_path / "data/futures/um/monthly/klines/ETHUSDT/1m/.ETHUSDT-1m-2023-04.zip.part"
    for _ in range(2000):  # until the download is under way
        if part.exists() and part.stat().st_size > 0:
            break
        await asyncio.sleep(0.01)
    assert part.exists()
    task.cancel()  # Ctrl-C
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [f for f in _files(tmp_path) if not f.endswith(".CHECKSUM")] == []
    # a killed run's leftover .part is swept by the next run, which completes the file
    part.write_bytes(b"half")
    fake.add_klines(rel, bars_for(base_day, rows, date(2023, 4, 1), date(2023, 4, 2)))
    await _download(fake, tmp_path, "klines:1m", date(2023, 4, 1), date(2023, 4, 30),
                    symbols=("ETHUSDT",))
    assert not part.exists() and part.with_name("ETHUSDT-1m-2023-04.zip").exists()
