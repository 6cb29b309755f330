"""``STRATEGY=ensemble``: catalog rules vote; a signal when their weighted agreement is high.

Members come from ``ENSEMBLE_MEMBERS``, comma-separated ``id[:weight][(k=v,k=v,...)]``, e.g.
``macd:1.0,supertrend:0.5(period=10,multiplier=2),rsi_reversion`` (weight defaults to 1, the
parameters to the rule's defaults). Each member is a fresh catalog rule fed every candle.

On each closed candle every member votes:

* LONG/SHORT with its decision's ``strength`` when it fired an entry on this candle;
* otherwise its current ``verdict()``: LONG/SHORT with the verdict's ``strength``, or NONE for
  NEUTRAL and WARMING_UP.

``confidence(side) = sum(weight x strength of the members voting side) / sum(all weights)``,
in [0, 1]. The ensemble signals the side with the higher confidence when it is >=
``ENSEMBLE_THRESHOLD`` and either no signal was given yet for this run of agreement (it
resets when that side's confidence drops below the threshold) or a member fired an entry on
that side on this candle; so agreement that persists does not repeat its signal every candle.

SL/TP (``ENSEMBLE_STOPS``): ``strongest`` takes the distances of the member with the largest
weight x strength among those that fired on the signal's side on this candle, and falls back
to ATR when none did; ``atr`` always uses ``sl_atr``/``tp_atr`` x ATR(``atr_period``) (the
``SL_ATR``/``TP_ATR``/``ATR_PERIOD`` settings). The decision carries the confidence and every
member's vote to the TradeSignal (journal, alerts, /status).

Source: weighted majority voting of experts (N. Littlestone and M. Warmuth, "The Weighted
Majority Algorithm", 1994), with fixed weights.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.events import Candle, Side
from core.strategies.indicators import Atr
from core.strategies.rules import RuleDecision, RuleFactory, TrendRule, Verdict, atr_stops

_MEMBER = re.compile(r"^([a-z0-9_]+)\s*(?::\s*([0-9]*\.?[0-9]+))?\s*(?:\((.*)\))?$")


@dataclass(frozen=True, slots=True)
class Member:
    """One ensemble member: a catalog id, its weight (> 0) and its parameter overrides."""

    id: str
    weight: float = 1.0
    params: Mapping[str, str] = field(default_factory=dict)


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise ValueError("unbalanced ')' in ENSEMBLE_MEMBERS")
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth:
        raise ValueError("unbalanced '(' in ENSEMBLE_MEMBERS")
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def parse_members(text: str) -> list[Member]:
    """``"macd:1,supertrend:0.5(period=10,multiplier=2)"`` -> members.

    Raises:
        ValueError: bad syntax, a weight <= 0, a duplicate or no member (one line).
    """
    from core.strategies.catalog import parse_param_text

    members: list[Member] = []
    for item in _split_top(text.strip().lower()):
        m = _MEMBER.match(item)
        if m is None:
            raise ValueError(f"member {item!r} is not id[:weight][(k=v,...)]")
        weight = float(m.group(2)) if m.group(2) else 1.0
        if not weight > 0:
            raise ValueError(f"member {item!r}: the weight must be > 0")
        params = parse_param_text(m.group(3) or "")
        members.append(Member(m.group(1), weight, params))
    if not members:
        raise ValueError("ENSEMBLE_MEMBERS names no member")
    ids = [m.id for m in members]
    if len(set(ids)) != len(ids):
        raise ValueError("ENSEMBLE_MEMBERS names a rule twice")
    return members


def _vote_of(rule: TrendRule) -> Callable[[], tuple[str, float]]:
    """The rule's cheap ``vote()`` (bias, strength) when it has one (the built-ins do), else
    its ``verdict()`` without the text."""
    vote = getattr(rule, "vote", None)
    if callable(vote):
        return vote

    def from_verdict() -> tuple[str, float]:
        v = rule.verdict()
        return v.bias, v.strength

    return from_verdict


class EnsembleRule:
    """Weighted vote of catalog rules; see the module docstring."""

    name = "ensemble"

    def __init__(self, members: list[tuple[Member, TrendRule]], *, threshold: float = 0.6,
                 stops: str = "strongest", atr_period: int = 14, sl_atr: float = 1.5,
                 tp_atr: float = 3.0) -> None:
        if not 0 < threshold <= 1:
            raise ValueError("threshold must be in (0, 1]")
        if stops not in ("strongest", "atr"):
            raise ValueError("stops must be strongest or atr")
        self.members = members
        self._votes = [_vote_of(rule) for _, rule in members]
        self.threshold, self.stops = threshold, stops
        self._total = sum(m.weight for m, _ in members)
        self._atr = Atr(atr_period)
        self.sl_atr, self.tp_atr = sl_atr, tp_atr
        self.warmup = max([r.warmup for _, r in members] + [atr_period + 1])
        self.params = {"members": ",".join(f"{m.id}:{m.weight:g}" for m, _ in members),
                       "threshold": threshold, "stops": stops}
        self.votes: tuple[tuple[str, str, float], ...] = ()
        self.confidence = {Side.LONG: 0.0, Side.SHORT: 0.0}
        self._signalled: Side | None = None  # a signal was given for the current agreement

    def on_candle(self, c: Candle) -> RuleDecision | None:
        atr = self._atr.update(c.high, c.low, c.close)
        total = self._total
        long_w = short_w = 0.0
        fired: list[tuple[float, Member, RuleDecision]] = []
        votes = []
        for (member, rule), vote in zip(self.members, self._votes, strict=True):
            d = rule.on_candle(c)
            if d is not None:
                side, strength = d.side.value, d.strength
                fired.append((member.weight * strength, member, d))
            else:
                side, strength = vote()
                if side != "LONG" and side != "SHORT":
                    side, strength = "NONE", 0.0
            if side == "LONG":
                long_w += member.weight * strength
            elif side == "SHORT":
                short_w += member.weight * strength
            votes.append((member.id, side, round(strength, 4)))
        now = {Side.LONG: long_w / total, Side.SHORT: short_w / total}
        self.confidence, self.votes = now, tuple(votes)
        if self._signalled is not None and now[self._signalled] < self.threshold:
            self._signalled = None
        side = Side.LONG if now[Side.LONG] >= now[Side.SHORT] else Side.SHORT
        conf = now[side]
        if conf < self.threshold or now[Side.LONG] == now[Side.SHORT]:
            return None
        same = [f for f in fired if f[2].side is side]
        if self._signalled is side and not same:
            return None
        sl_tp = None
        source = "atr"
        if self.stops == "strongest" and same:
            _, member, best = max(same, key=lambda f: f[0])
            sl_tp, source = (best.sl_distance, best.tp_distance), member.id
        if sl_tp is None:
            sl_tp = atr_stops(c.close, atr, self.sl_atr, self.tp_atr)
            if sl_tp is None:
                return None
        self._signalled = side
        agreeing = ", ".join(f"{i} {s} {w:g}" for i, s, w in votes if s == side.value)
        reason = (f"ensemble {conf:.2f} >= {self.threshold:g} {side.value} ({agreeing}); "
                  f"stops {source}")
        return RuleDecision(side, sl_tp[0], sl_tp[1], reason, strength=conf,
                            confidence=round(conf, 4), votes=self.votes)

    def verdict(self) -> Verdict:
        if not self.votes:
            return Verdict("WARMING_UP", f"needs {self.warmup} candles")
        long_c, short_c = self.confidence[Side.LONG], self.confidence[Side.SHORT]
        side, conf = ("LONG", long_c) if long_c >= short_c else ("SHORT", short_c)
        votes = ", ".join(f"{i} {s}" for i, s, _ in self.votes)
        detail = f"confidence {side} {conf:.2f} (threshold {self.threshold:g}): {votes}"
        if conf < self.threshold or long_c == short_c:
            return Verdict("NEUTRAL", detail, strength=conf)
        return Verdict(side, detail, strength=conf)


def ensemble_factory(params: Mapping[str, Any]) -> RuleFactory:
    """A factory of fresh ensembles from ``params``: ``members`` (text, see
    ``parse_members``), ``threshold``, ``stops``, ``atr_period``, ``sl_atr``, ``tp_atr``.
    Every member is validated against the catalog now.

    Raises:
        ValueError: bad members, unknown member ids or parameters, bad threshold or stops.
    """
    from core.strategies.catalog import ENSEMBLE, get_spec, rule_factory

    known = {"members", "threshold", "stops", "atr_period", "sl_atr", "tp_atr"}
    unknown = set(params) - known
    if unknown:
        raise ValueError(f"no parameter {sorted(unknown)[0]!r} "
                         f"(parameters: {', '.join(sorted(known))})")
    members = parse_members(str(params.get("members", "")))
    factories = []
    for m in members:
        if m.id == ENSEMBLE:
            raise ValueError("an ensemble cannot be its own member")
        get_spec(m.id)
        factories.append((m, rule_factory(m.id, m.params)))
    kwargs = {"threshold": float(params.get("threshold", 0.6)),
              "stops": str(params.get("stops", "strongest")),
              "atr_period": int(params.get("atr_period", 14)),
              "sl_atr": float(params.get("sl_atr", 1.5)),
              "tp_atr": float(params.get("tp_atr", 3.0))}

    def make() -> EnsembleRule:
        return EnsembleRule([(m, f()) for m, f in factories], **kwargs)  # type: ignore[arg-type]

    make()
    return make
