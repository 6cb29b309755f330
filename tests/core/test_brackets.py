"""Leverage brackets: the parser on Binance's answer shape, max leverage, maintenance margin and
the isolated liquidation price (PROTOCOL.md §6, §10)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from core.brackets import (
    BracketError,
    liquidation_price,
    load_leverage_brackets,
    parse_leverage_brackets,
)
from tests.conftest import SHARED

D = Decimal


def test_packaged_snapshot_is_the_shared_file():
    shared = SHARED / "binance" / "leverage_brackets_2024-10.json"
    if not shared.exists():
        pytest.skip("shared brackets file not present")
    assert load_leverage_brackets() == load_leverage_brackets(shared)


def test_brackets_of_the_four_shared_symbols():
    b = load_leverage_brackets()
    assert set(b) == {"BTCUSDT", "ETHUSDT", "BNBUSDT", "XRPUSDT"}
    btc = b["BTCUSDT"]
    assert btc.max_leverage(D("49999")) == 125 and btc.max_leverage(D("50000")) == 100
    assert btc.max_leverage(D("112000")) == 100
    assert btc.maintenance_margin(D("112000")) == D("112000") * D("0.005") - 50
    assert btc.max_notional(125) == D("50000")
    assert b["XRPUSDT"].for_notional(D("1000")).maint_margin_ratio == D("0.005")
    assert b["BNBUSDT"].max_leverage(D("5000")) == 75


def test_liquidation_price_uses_cum_of_the_notionals_bracket():
    btc = load_leverage_brackets()["BTCUSDT"]
    q, ep, margin = D("2"), D("56000"), D("1120")  # 112k notional at 100x: bracket 2
    lp = liquidation_price(btc, quantity=q, entry_price=ep, margin=margin)
    assert lp == (margin + 50 - q * ep) / (q * D("0.005") - q)
    short = liquidation_price(btc, quantity=-q, entry_price=ep, margin=margin, tick_size=D("0.1"))
    assert short == D("56303.4")  # (1120 + 50 + 112000) / (2 × 1.005) = 56303.48..., down


def test_single_object_answer_with_string_numbers_and_notional_coef():
    payload = {"symbol": "ETHUSDT", "notionalCoef": "1.5", "brackets": [
        {"bracket": 2, "initialLeverage": "50", "notionalCap": "100", "notionalFloor": "10",
         "maintMarginRatio": "0.01", "cum": "0.1"},
        {"bracket": 1, "initialLeverage": 75, "notionalCap": 10, "notionalFloor": 0,
         "maintMarginRatio": 0.005, "cum": 0},
    ]}
    eth = parse_leverage_brackets(payload)["ETHUSDT"]
    assert [x.bracket for x in eth.brackets] == [1, 2]
    assert eth.brackets[1].notional_cap == D("150") and eth.brackets[1].cum == D("0.15")
    assert eth.max_leverage(D("20")) == 50 and eth.max_leverage(D("1e9")) == 50


@pytest.mark.parametrize("payload, needle", [
    ("nonsense", "expected a list"),
    ([{"brackets": []}], "no symbol"),
    ([{"symbol": "X", "brackets": []}], "no brackets"),
    ([{"symbol": "X", "brackets": [{"bracket": 1, "initialLeverage": 0, "notionalCap": 1,
                                    "notionalFloor": 0, "maintMarginRatio": 0.01, "cum": 0}]}],
     "initialLeverage"),
    ([{"symbol": "X", "brackets": [{"bracket": 1, "initialLeverage": 5, "notionalFloor": 0,
                                    "maintMarginRatio": 0.01, "cum": 0}]}], "notionalCap"),
])
def test_malformed_payloads_are_one_clear_error(payload, needle):
    with pytest.raises(BracketError, match=needle):
        parse_leverage_brackets(payload)


def test_unreadable_file_names_the_file(tmp_path):
    bad = tmp_path / "b.json"
    bad.write_text(json.dumps([{"symbol": "X"}]))
    with pytest.raises(BracketError, match="b.json"):
        load_leverage_brackets(bad)
