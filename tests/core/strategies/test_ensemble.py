"""The ensemble: member syntax, votes, weights, strength, threshold, edge triggering, stops."""

from __future__ import annotations

import pytest

from core.events import Side
from core.strategies.catalog import StrategyError, rule_factory
from core.strategies.ensemble import EnsembleRule, Member, parse_members
from core.strategies.rules import RuleDecision, Verdict
from tests.core.strategies.crafted import closes


class Scripted:
    """A member that plays a script: per candle, a verdict bias (LONG/SHORT/-) and optionally
    an entry it fires (``+`` LONG, ``x`` SHORT) with SL = ``sl``."""

    name = "scripted"
    warmup = 0

    def __init__(self, script: str, *, sl: float = 1.0, strength: float = 1.0) -> None:
        self.script, self.sl, self.strength, self.i = script, sl, strength, -1

    def on_candle(self, candle):
        self.i += 1
        ch = self.script[self.i]
        if ch in "+x":
            side = Side.LONG if ch == "+" else Side.SHORT
            return RuleDecision(side, self.sl, 2 * self.sl, "scripted", strength=self.strength)
        return None

    def verdict(self):
        ch = self.script[self.i]
        bias = {"L": "LONG", "+": "LONG", "S": "SHORT", "x": "SHORT"}.get(ch, "NEUTRAL")
        return Verdict(bias, "scripted", strength=self.strength)


def ensemble(*members, threshold=0.6, stops="strongest"):
    pairs = [(Member(f"m{k}", w), Scripted(script, sl=sl, strength=s))
             for k, (script, w, sl, s) in enumerate(members)]
    return EnsembleRule(pairs, threshold=threshold, stops=stops, atr_period=2, sl_atr=1.0,
                        tp_atr=2.0)


def play(rule, n):
    return [rule.on_candle(c) for c in closes([100.0 + i for i in range(n)])]


def test_parse_members_syntax():
    assert parse_members("macd:1.0, supertrend:0.5(period=10,multiplier=2),rsi_reversion") == [
        Member("macd", 1.0), Member("supertrend", 0.5, {"period": "10", "multiplier": "2"}),
        Member("rsi_reversion", 1.0)]
    for bad in ("", "macd:0", "macd:-1", "macd(period=1", "macd,macd", "ma cd", "macd:x"):
        with pytest.raises(ValueError):
            parse_members(bad)


def test_weighted_agreement_above_threshold_signals_with_confidence_and_votes():
    # weights 1, 1, 2: m0 fires LONG, m1 is neutral, m2 says LONG -> 3/4 = 0.75
    rule = ensemble(("-+", 1, 1.0, 1.0), ("--", 1, 1.0, 1.0), ("-L", 2, 1.0, 1.0))
    first, second = play(rule, 2)
    assert first is None
    assert second.side is Side.LONG and second.confidence == 0.75
    assert second.votes == (("m0", "LONG", 1.0), ("m1", "NONE", 0.0), ("m2", "LONG", 1.0))
    assert second.strength == 0.75 and "ensemble 0.75" in second.reason


def test_below_threshold_no_signal_and_weights_matter():
    assert play(ensemble(("-+", 1, 1, 1), ("--", 1, 1, 1), ("-L", 2, 1, 1), threshold=0.8),
                2) == [None, None]
    # the same votes with the weights swapped: 1 + 1 = 2 of 4 = 0.5 < 0.6
    assert play(ensemble(("-+", 1, 1, 1), ("--", 2, 1, 1), ("-L", 1, 1, 1)), 2)[1] is None


def test_strength_scales_a_vote():
    full = play(ensemble(("+", 1, 1, 1.0), ("L", 1, 1, 1.0)), 1)[0]
    half = play(ensemble(("+", 1, 1, 1.0), ("L", 1, 1, 0.5)), 1)[0]
    assert full.confidence == 1.0 and half.confidence == 0.75


def test_opposite_votes_cancel_into_the_stronger_side():
    rule = ensemble(("--+", 1, 1, 1), ("SSS", 1, 1, 1), ("SSS", 1, 1, 1), threshold=0.6)
    *early, d = play(rule, 3)
    assert early == [None, None]  # no ATR for the stops yet (nobody fired SHORT)
    assert d.side is Side.SHORT and d.confidence == pytest.approx(2 / 3, abs=1e-4)
    assert rule.confidence[Side.LONG] == pytest.approx(1 / 3)


def test_persistent_agreement_signals_once_a_fresh_entry_again():
    rule = ensemble(("+LL+-L", 1, 1, 1), ("LLLLLL", 1, 1, 1))
    out = play(rule, 6)
    assert [d is not None for d in out] == [True, False, False, True, False, True]
    assert {d.side for d in out if d} == {Side.LONG}  # the last after a dip to 0.5 < 0.6


def test_threshold_reached_by_verdicts_alone_signals_on_the_crossing():
    rule = ensemble(("-LL", 1, 1, 1), ("--L", 1, 1, 1), threshold=1.0, stops="atr")
    out = play(rule, 3)
    assert out[:2] == [None, None] and out[2].side is Side.LONG
    assert out[2].sl_distance > 0 and out[2].tp_distance == pytest.approx(
        2 * out[2].sl_distance)
    assert "stops atr" in out[2].reason


def test_strongest_member_sets_the_stops():
    rule = ensemble(("+", 1, 5.0, 1), ("+", 3, 7.0, 1), ("+", 1, 9.0, 1))
    d = play(rule, 1)[0]
    assert (d.sl_distance, d.tp_distance) == (7.0, 14.0) and "stops m1" in d.reason
    atr_rule = ensemble(("+", 1, 5.0, 1), ("+", 3, 7.0, 1), stops="atr")
    assert play(atr_rule, 1)[0] is None  # ATR(2) not ready on the first candle
    out = play(ensemble(("--+", 1, 5.0, 1), ("LL+", 3, 7.0, 1), stops="atr"), 3)
    assert out[:2] == [None, None]  # 0.75 agreement, but no ATR yet for the stops
    assert out[2].sl_distance not in (5.0, 7.0) and "stops atr" in out[2].reason


def test_verdict_reports_the_confidence():
    rule = ensemble(("L", 1, 1, 1), ("-", 1, 1, 1), threshold=0.6)
    assert rule.verdict().bias == "WARMING_UP"
    play(rule, 1)
    v = rule.verdict()
    assert v.bias == "NEUTRAL" and v.strength == 0.5 and "confidence LONG 0.50" in v.detail


def test_ensemble_factory_validates_members():
    make = rule_factory("ensemble", {"members": "macd:1,supertrend:0.5(period=7)",
                                     "threshold": 0.5})
    a, b = make(), make()
    assert a is not b and [m.id for m, _ in a.members] == ["macd", "supertrend"]
    assert a.members[1][1].params["period"] == 7
    for params, match in [({"members": "nope"}, "unknown strategy 'nope'"),
                          ({"members": "macd(bad=1)"}, "macd has no parameter 'bad'"),
                          ({"members": "macd", "threshold": 0}, "threshold"),
                          ({"members": "macd", "stops": "x"}, "stops"),
                          ({"members": "ensemble"}, "its own member"),
                          ({"members": "macd", "what": 1}, "no parameter 'what'")]:
        with pytest.raises(StrategyError, match=match):
            rule_factory("ensemble", params)
