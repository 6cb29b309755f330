"""main.py download and backtest --symbol/--from/--to against the fake archive, as processes."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import date
from pathlib import Path

import pytest

from tests.conftest import ROOT, shared_file
from tests.core.history.test_download import KL, MK, content, fake  # noqa: F401  (fixtures)
from tests.fakes.archive import FakeArchive, bars_for, mark_rows, read_day


async def _main(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "DATA_DIR": str(tmp_path / "data")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "main.py", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_download_then_backtest_finds_the_stored_files(fake: FakeArchive,  # noqa: F811
                                                             tmp_path: Path) -> None:
    code, out, err = await _main(tmp_path, "download", "--symbols", "BTCUSDT", "--from",
                                 "2023-04-01", "--to", "2023-04-30", "--kinds",
                                 "klines:1m,fundingRate", "--base-url", fake.base_url)
    assert code == 0, err
    assert out.startswith("2 archives downloaded and verified")
    # backtest over two stored days, found by symbol and range (--timerange: the same range)
    a = tmp_path / "a.json"
    code, out, err = await _main(tmp_path, "backtest", "--symbol", "BTCUSDT", "--timerange",
                                 "20230414-20230416", "--json", str(a))
    assert code == 0, err
    ra = json.loads(a.read_text())
    day = 86_400_000
    assert ra["data"]["first_ts_ms"] >= 1681430400000
    assert ra["data"]["last_ts_ms"] < 1681430400000 + 2 * day
    assert any("fundingRate" in f["path"] for f in ra["data"]["files"])
    # the same bars given as a file: the same trades on 2023-04-15
    base = shared_file("BTCUSDT-1m-2023-04-15.csv")
    c = tmp_path / "c.json"
    code, _, err = await _main(tmp_path, "backtest", "--symbol", "BTCUSDT", "--from",
                               "2023-04-15", "--to", "2023-04-15", "--json", str(c))
    d = tmp_path / "d.json"
    code2, _, err2 = await _main(tmp_path, "backtest", str(base), "--json", str(d))
    assert code == 0 and code2 == 0, err + err2
    trades_c = [t for t in json.loads(c.read_text())["trades"]]
    trades_d = [t for t in json.loads(d.read_text())["trades"]]
    assert [t["entry_ts_ms"] for t in trades_c] == [t["entry_ts_ms"] for t in trades_d]
    # days not stored: one line naming them and the command that fetches them
    code, out, err = await _main(tmp_path, "backtest", "--symbol", "BTCUSDT", "--from",
                                 "2023-04-29", "--to", "2023-05-02")
    assert code == 1 and err.count("\n") == 1
    assert "miss 2023-05-01 .. 2023-05-02" in err and "main.py download" in err


async def test_downloaded_mark_klines_drive_liquidation_in_the_backtest(
        fake: FakeArchive, tmp_path: Path) -> None:  # noqa: F811
    """download -> backtest --symbol finds the stored markPriceKlines -> the paper exchange
    liquidates on the mark (synthetic: the real April bars 6 % lower), not the trade price."""
    base_day, rows = read_day(shared_file("BTCUSDT-1m-2023-04-15.csv"))
    april = bars_for(base_day, rows, date(2023, 4, 1), date(2023, 4, 30))
    fake.add_klines(MK.format(period="monthly", sym="BTCUSDT", stamp="2023-04"),
                    mark_rows(april, 0.94))
    code, _, err = await _main(tmp_path, "download", "--symbols", "BTCUSDT", "--from",
                               "2023-04-01", "--to", "2023-04-30", "--kinds",
                               "klines:1m,markPriceKlines:1m,fundingRate", "--base-url",
                               fake.base_url)
    assert code == 0, err
    params = ["--param", "leverage=20", "--param", "risk_price_band_pct=0", "--param",
              "risk_daily_loss_usdt=0", "--param", "risk_daily_loss_pct=0", "--param",
              "risk_max_drawdown_pct=0", "--param", "risk_max_consecutive_losses=0"]
    out = tmp_path / "m.json"
    code, _, err = await _main(tmp_path, "backtest", "--symbol", "BTCUSDT", "--from",
                               "2023-04-15", "--to", "2023-04-15", "--json", str(out), *params)
    assert code == 0, err
    result = json.loads(out.read_text())
    assert any("markPriceKlines" in f["path"] for f in result["data"]["files"])
    longs = [t for t in result["trades"] if t["side"] == "LONG"]
    assert longs and all(t["exit_reason"] == "LIQUIDATION" for t in longs)
    # the same range without the stored marks: the trade price drives, nobody is liquidated
    for f in (tmp_path / "data/history").rglob("*"):
        if f.is_file() and "markPriceKlines" in f.parts:
            f.unlink()
    code, _, err = await _main(tmp_path, "backtest", "--symbol", "BTCUSDT", "--from",
                               "2023-04-15", "--to", "2023-04-15", "--json", str(out), *params)
    assert code == 0, err
    result = json.loads(out.read_text())
    assert result["trades"] and all(t["exit_reason"] != "LIQUIDATION" for t in result["trades"])


@pytest.mark.parametrize("fault", ["bad_checksum", "missing"])
async def test_download_failure_is_one_line_and_non_zero(fake: FakeArchive,  # noqa: F811
                                                         tmp_path: Path, fault: str) -> None:
    if fault == "bad_checksum":
        base_day, rows = read_day(shared_file("BTCUSDT-1m-2023-04-15.csv"))
        fake.add_klines(KL.format(period="monthly", sym="ETHUSDT", stamp="2023-04"),
                        bars_for(base_day, rows, date(2023, 4, 1), date(2023, 4, 2)),
                        bad_checksum=True)
    code, out, err = await _main(tmp_path, "download", "--symbols", "ETHUSDT", "--from",
                                 "2023-04-01", "--to", "2023-04-30", "--kinds", "klines:1m",
                                 "--base-url", fake.base_url)
    assert code == 1 and err.startswith("error: ") and err.count("\n") == 1
    assert ("checksum mismatch" if fault == "bad_checksum" else "not in the archive") in err


def test_from_to_and_timerange_are_one_range() -> None:
    import argparse

    import main

    def rng(start=None, end=None, timerange=None):
        return main.data_range(argparse.Namespace(start=start, end=end, timerange=timerange))

    day = 86_400_000
    assert rng("2023-04-14", "2023-04-15") == ("20230414-20230416", 1681430400000,
                                                1681430400000 + 2 * day)
    assert rng(timerange="20230414-20230416")[1:] == rng("20230414", "2023-04-15")[1:]
    assert rng("2023-04-14") == ("20230414-", 1681430400000, None)
    for bad in (("2023-04-15", "2023-04-14"), ("2023-04-14", None, "20230414-"),
                (None, None, "20230416-20230414"), (None, None, "x-y"), ("2023-02-30",)):
        with pytest.raises(main.UsageError):
            rng(*bad)


async def test_download_bad_arguments(tmp_path: Path) -> None:
    for args in (["--kinds", "klines"], ["--to", "2023-02-30"]):
        full = ["download", "--symbols", "BTCUSDT", "--from", "2023-01-01", *args]
        code, _, err = await _main(tmp_path, *full)
        assert code == 1 and err.startswith("error: ") and err.count("\n") == 1
