"""Trend rules: the small protocol TRENDING uses to decide.

A rule sees closed candles of one symbol, one at a time, and may answer with a ``RuleDecision``
(direction plus stop-loss and take-profit *distances* in quote asset). It keeps its own
indicator state, O(1) per candle, floats only, and imports neither NumPy nor TA-Lib (the
backtest path must not load them). The same rule object decides identically in live, paper and
backtest because it only ever sees closed candles.

The catalog of rules (ids, descriptions, parameters with defaults and search ranges, warm-up,
user plugins) is ``core.strategies.catalog``; each built-in rule lives in its own module here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from core.events import Candle, Side

BIASES = ("LONG", "SHORT", "NEUTRAL", "WARMING_UP")


@dataclass(frozen=True, slots=True)
class RuleDecision:
    """Open ``side``; distances are absolute price differences in quote asset (> 0).

    ``strength`` (0..1] is the rule's own conviction, used by the ensemble's vote;
    ``confidence`` and ``votes`` are filled only by the ensemble (weighted agreement in [0, 1];
    ``(member_id, vote, strength)`` per member, vote LONG | SHORT | NONE).
    """

    side: Side
    sl_distance: float
    tp_distance: float
    reason: str
    strength: float = 1.0
    confidence: float | None = None
    votes: tuple[tuple[str, str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Verdict:
    """The rule's current reading of the trend, for /ta and /status.

    ``bias`` is one of ``BIASES``; ``strength`` (0..1) how firmly (1 for a plain reading).
    """

    bias: str  # "LONG" | "SHORT" | "NEUTRAL" | "WARMING_UP"
    detail: str
    strength: float = 1.0


class TrendRule(Protocol):
    """One symbol's trend logic. ``warmup`` is the number of candles before it can decide."""

    name: str
    warmup: int

    def on_candle(self, candle: Candle) -> RuleDecision | None: ...

    def verdict(self) -> Verdict: ...


RuleFactory = Callable[[], TrendRule]


def warming_up(warmup: int) -> Verdict:
    return Verdict("WARMING_UP", f"needs {warmup} candles")


def atr_stops(close: float, atr: float | None, sl_atr: float, tp_atr: float,
              sl_pct: float = 0.0, tp_pct: float = 0.0) -> tuple[float, float] | None:
    """SL/TP distances (quote asset): ``sl_atr``/``tp_atr`` x ATR, or ``sl_pct``/``tp_pct``
    percent of ``close`` where those are > 0. None when an ATR is needed but not ready."""
    if sl_pct > 0:
        sl = close * sl_pct / 100
    elif atr:
        sl = atr * sl_atr
    else:
        return None
    if tp_pct > 0:
        tp = close * tp_pct / 100
    elif atr:
        tp = atr * tp_atr
    else:
        return None
    if sl <= 0 or tp <= 0:
        return None
    return sl, tp


def rule_factory(name: str, params: Mapping[str, Any]) -> RuleFactory:
    """A factory of fresh rule instances (one per symbol) for ``STRATEGY=name``: see
    ``core.strategies.catalog.rule_factory``.

    Raises:
        ValueError: unknown rule name, or parameters the rule rejects.
    """
    from core.strategies.catalog import rule_factory as build

    return build(name, params)
