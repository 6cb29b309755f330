"""Stored results under DATA_DIR: what the Backtests screen lists and opens."""

from __future__ import annotations

import json

import pytest

from web.results import ResultNotFound, ResultStore


def put(path, doc) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc), "utf-8")


async def test_backtests_and_optimizations_are_found_and_nothing_else(tmp_path):
    put(tmp_path / "results" / "bt.json", {"symbol": "BTCUSDT", "timeframe": "5s",
                                           "trades": [{"net_pnl": "-1"}],
                                           "stats": {"net_pnl": "-1", "win_rate": 0.0}})
    put(tmp_path / "optimize" / "s1" / "result.json", {  # main.py optimize's result.json
        "study": "s1", "strategy": "macd", "objective": "sharpe",
        "trials": {"COMPLETE": 30, "PRUNED": 2},
        "best": {"number": 7, "value": 1.5, "params": {"fast": 8}, "trades": 12,
                 "net_pnl": 3.2},
        "top": [{"number": 7, "value": 1.5, "params": {"fast": 8}}]})
    put(tmp_path / "state.json", {"trades": [], "stats": {}})        # the engine's own
    put(tmp_path / "watchlist.json", ["ETHUSDT"])
    put(tmp_path / "misc" / "other.json", {"hello": 1})             # not a result
    put(tmp_path / "a" / "b" / "c" / "d" / "deep.json", {"trades": [], "stats": {}})
    (tmp_path / "results" / "broken.json").write_text("{not json", "utf-8")
    store = ResultStore(tmp_path)
    listing = {e["id"]: e for e in await store.list()}
    assert set(listing) == {"results/bt.json", "optimize/s1/result.json"}
    assert listing["results/bt.json"]["kind"] == "backtest"
    assert listing["results/bt.json"]["summary"]["trades"] == 1
    opt = listing["optimize/s1/result.json"]
    assert opt["kind"] == "optimization"
    assert opt["summary"] == {"strategy": "macd", "objective": "sharpe", "trials": 32,
                              "best_value": 1.5, "best_params": {"fast": 8}, "net_pnl": 3.2}
    doc = await store.open("optimize/s1/result.json")
    assert doc["result"]["best"]["number"] == 7
    for bad in ("state.json", "misc/other.json", "../x.json", "a/b/c/d/deep.json"):
        with pytest.raises(ResultNotFound):
            await store.open(bad)


async def test_a_missing_data_dir_lists_nothing(tmp_path):
    assert await ResultStore(tmp_path / "nope").list() == []
