"""The backtest report: the result, invariant checks, a JSON document and a terminal table.

Money stays ``Decimal`` end to end (core/backtest/stats.py); in JSON it is a decimal string
rounded to the margin asset's precision (8 decimals for USDT), prices likewise. Ratios are
numbers; the ones that are fractions (0..1, not percent) are listed in the document's
``units.fractions``. See README "Backtest" for the document's shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from core.backtest.stats import (  # noqa: F401  (re-exported: the report's public surface)
    MIN_RATIO_SPAN_MS,
    Stats,
    breakdowns,
    compute_stats,
    equity_points,
    exposure,
    max_drawdown,
    profit_factor,
    sharpe_ratio,
    sortino_ratio,
)
from core.backtest.tracking import Drawdown
from core.events import ClosedTrade
from core.risk.view import format_risk

_TABLE_EDGE = 20  # format_report shows this many trades at each end of a long list
ASSET_DECIMALS = {"USDT": 8, "USDC": 8, "BTC": 8, "BNB": 8, "FDUSD": 8}
FRACTIONS = ("win_rate", "max_drawdown", "exposure", "cagr", "market_change",
             "net_pnl_fraction", "expectancy_ratio")


class InvariantError(ValueError):
    """A backtest result is internally inconsistent (the accounting or the one-position rule)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BacktestResult:
    """Everything a backtest run produced.

    ``trades`` are in exit order. ``equity_curve`` is ``(ts_ms, equity)`` in USDT including
    unrealized PnL, sampled on candle closes and position changes; ``drawdown`` is measured on
    every equity change (core/backtest/tracking.py). ``price_series`` is the first symbol's
    ``(ts_ms, close)`` and ``symbol_prices`` every traded symbol's, downsampled for the chart.
    ``market_change`` maps a symbol to its (first, last) price. ``params`` are the effective
    settings (no secrets), ``file_info`` the data files' path/bytes/sha256, ``notes`` what the
    trader should know (symbols ignored, timeframe chosen, tight stops), ``no_trade_reasons``
    why there was no trade. ``wall_s`` is the run's wall-clock time.
    """

    symbol: str
    timeframe: str
    files: list[str]
    events: int
    first_ts_ms: int
    last_ts_ms: int
    initial_balance: Decimal
    final_balance: Decimal
    trades: list[ClosedTrade]
    equity_curve: list[tuple[int, float]]
    price_series: list[tuple[int, float]]
    wall_s: float
    symbols: tuple[str, ...] = ()
    symbol_prices: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    market_change: dict[str, tuple[float, float]] = field(default_factory=dict)
    drawdown: Drawdown | None = None
    notes: list[str] = field(default_factory=list)
    no_trade_reasons: list[str] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    file_info: list[dict[str, Any]] = field(default_factory=list)
    code_version: str = ""
    timerange: str = ""
    asset: str = "USDT"
    risk: dict[str, Any] | None = None  # core/risk/view.py risk_summary: refusals, halt


# --------------------------------------------------------------------------- invariants


def check_invariants(result: BacktestResult) -> None:
    """Verify the result's accounting and the single-position rule.

    Checks, exactly in ``Decimal``: every trade's ``net_pnl == gross_pnl - fees + funding``;
    ``final_balance - initial_balance == Σ net_pnl``. In time: no trade exits before it enters,
    and, sorted by entry, each trade exits no later than the next one enters (one position at a
    time, across symbols).

    Raises:
        InvariantError: naming every violation found.
    """
    problems: list[str] = []
    for i, t in enumerate(result.trades):
        expected = t.gross_pnl - t.fees + t.funding
        if t.net_pnl != expected:
            problems.append(
                f"trade #{i + 1} {t.symbol}: net_pnl {t.net_pnl} != gross_pnl - fees + funding "
                f"= {t.gross_pnl} - {t.fees} + {t.funding} = {expected}"
            )
        if t.exit_ts_ms < t.entry_ts_ms:
            problems.append(
                f"trade #{i + 1} {t.symbol}: exit_ts_ms {t.exit_ts_ms} before "
                f"entry_ts_ms {t.entry_ts_ms}"
            )
    total = sum((t.net_pnl for t in result.trades), Decimal(0))
    change = result.final_balance - result.initial_balance
    if change != total:
        problems.append(
            f"final_balance - initial_balance = {result.final_balance} - "
            f"{result.initial_balance} = {change} != sum of net_pnl {total} "
            f"(difference {change - total})"
        )
    ordered = sorted(result.trades, key=lambda t: (t.entry_ts_ms, t.exit_ts_ms))
    for a, b in zip(ordered, ordered[1:], strict=False):
        if a.exit_ts_ms > b.entry_ts_ms:
            problems.append(
                f"overlapping trades: {a.symbol} {a.side.value} {a.entry_ts_ms}..{a.exit_ts_ms} "
                f"is still open when {b.symbol} {b.side.value} enters at {b.entry_ts_ms}"
            )
    if problems:
        raise InvariantError("backtest invariants violated: " + "; ".join(problems))


# --------------------------------------------------------------------------- JSON


def _json_float(x: float | None) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _rounder(asset: str):  # noqa: ANN202
    quantum = Decimal(1).scaleb(-ASSET_DECIMALS.get(asset, 8))

    def money(x: Decimal | None) -> str | None:
        if x is None:
            return None
        if x.as_tuple().exponent < quantum.as_tuple().exponent:  # type: ignore[operator]
            x = x.quantize(quantum)
        return str(x)

    return money


def _trade_json(t: ClosedTrade, money) -> dict[str, Any]:  # noqa: ANN001
    return {
        "symbol": t.symbol,
        "side": t.side.value,
        "entry_ts_ms": t.entry_ts_ms,
        "exit_ts_ms": t.exit_ts_ms,
        "entry_price": money(t.entry_price),
        "exit_price": money(t.exit_price),
        "quantity": str(t.quantity),
        "gross_pnl": money(t.gross_pnl),
        "fees": money(t.fees),
        "funding": money(t.funding),
        "net_pnl": money(t.net_pnl),
        "exit_reason": t.exit_reason.value,
        "holding_s": (t.exit_ts_ms - t.entry_ts_ms) / 1000,
    }


def _profit_factor_json(pf: float | None) -> dict[str, Any]:
    if pf is None:
        return {"profit_factor": None, "profit_factor_state": "undefined"}
    if math.isinf(pf):
        return {"profit_factor": None, "profit_factor_state": "infinite"}
    return {"profit_factor": float(pf), "profit_factor_state": "finite"}


def to_json(result: BacktestResult, stats: Stats) -> dict[str, Any]:
    """The report as a JSON-ready dict (shape in README "Backtest"). Money and prices are
    decimal strings rounded to the asset's precision; an undefined ratio is ``null``;
    ``profit_factor_state`` says whether a null profit factor is infinite or undefined."""
    money = _rounder(result.asset)
    rows = breakdowns(result.trades, result.initial_balance)
    for table in rows.values():
        for row in table:
            row["net_pnl"], row["avg_net_pnl"] = money(row["net_pnl"]), money(row["avg_net_pnl"])
    return {
        "symbol": result.symbol,
        "symbols": list(result.symbols) or result.symbol.split(","),
        "timeframe": result.timeframe,
        "timerange": result.timerange or None,
        "asset": result.asset,
        "reproduce": {
            "code_version": result.code_version or "unknown",
            "parameters": dict(result.params),
        },
        "data": {
            "files": [dict(f) for f in result.file_info] or [{"path": f} for f in result.files],
            "events": result.events,
            "first_ts_ms": result.first_ts_ms,
            "last_ts_ms": result.last_ts_ms,
        },
        "initial_balance": money(result.initial_balance),
        "final_balance": money(result.final_balance),
        "trades": [_trade_json(t, money) for t in result.trades],
        "stats": {
            "net_pnl": money(stats.net_pnl),
            "net_pnl_fraction": float(stats.net_pnl / result.initial_balance)
            if result.initial_balance > 0 else None,
            "win_rate": float(stats.win_rate),
            "max_drawdown": float(stats.max_drawdown),
            "max_drawdown_usdt": money(Decimal(repr(round(stats.max_drawdown_usdt, 8)))),
            "max_drawdown_start_ts_ms": stats.drawdown_start_ms,
            "max_drawdown_end_ts_ms": stats.drawdown_end_ms,
            "sharpe": _json_float(stats.sharpe),
            "sortino": _json_float(stats.sortino),
            "cagr": _json_float(stats.cagr),
            "calmar": _json_float(stats.calmar),
            **_profit_factor_json(stats.profit_factor),
            "expectancy": money(stats.expectancy),
            "expectancy_ratio": _json_float(stats.expectancy_ratio),
            "trades": stats.trades,
            "wins": stats.wins,
            "draws": stats.draws,
            "losses": stats.losses,
            "gross_pnl": money(stats.gross_pnl),
            "fees": money(stats.fees),
            "funding": money(stats.funding),
            "exposure": float(stats.exposure),
            "avg_trade": money(stats.avg_trade),
            "best": money(stats.best),
            "worst": money(stats.worst),
            "avg_holding_s": float(stats.avg_holding_s),
            "max_holding_s": float(stats.max_holding_s),
            "market_change": {k: float(v) for k, v in stats.market_change.items()},
        },
        "breakdowns": rows,
        "notes": list(result.notes),
        "no_trade_reasons": list(result.no_trade_reasons),
        "risk": result.risk if result.risk is not None else {
            "refusals": {}, "refused": [], "halt": None},
        "units": {"money": result.asset, "time": "ms since the Unix epoch (UTC), durations s",
                  "fractions": list(FRACTIONS),
                  "ratios_min_span_s": MIN_RATIO_SPAN_MS // 1000},
        "perf": {"wall_s": float(result.wall_s), "events_per_s": float(stats.events_per_s)},
    }


def write_json(path: str | Path, doc: dict[str, Any]) -> None:
    """Write ``doc`` as indented JSON (orjson), creating the parent directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))


# --------------------------------------------------------------------------- terminal


def _utc(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    days, rest = divmod(s, 86_400)
    h, rest = divmod(rest, 3_600)
    m, sec = divmod(rest, 60)
    return f"{days}d {h:02d}:{m:02d}:{sec:02d}" if days else f"{h:02d}:{m:02d}:{sec:02d}"


def _table(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in rows if len(r) > 1) for i in range(len(rows[0]))]
    lines = []
    for r in rows:
        if len(r) == 1:  # an elision marker spans the row
            lines.append(r[0])
            continue
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=False))
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def _trade_rows(trades: list[ClosedTrade], multi: bool) -> list[list[str]]:
    head = ["#", "side", "entry (UTC)", "exit (UTC)", "entry", "exit", "qty", "net PnL", "reason"]
    rows = [head[:1] + ["symbol"] + head[1:] if multi else head]
    hidden = max(0, len(trades) - 2 * _TABLE_EDGE)
    for i, t in enumerate(trades, 1):
        if hidden and i == _TABLE_EDGE + 1:
            rows.append([f"… {hidden} more"])
        if hidden and _TABLE_EDGE < i <= _TABLE_EDGE + hidden:
            continue
        row = [str(i), t.side.value, _utc(t.entry_ts_ms), _utc(t.exit_ts_ms), str(t.entry_price),
               str(t.exit_price), str(t.quantity), str(t.net_pnl), t.exit_reason.value]
        rows.append(row[:1] + [t.symbol] + row[1:] if multi else row)
    return rows


def _pf_text(pf: float | None) -> str:
    if pf is None:
        return "n/a (no winning or losing trade)"
    return "∞ (no losing trade)" if math.isinf(pf) else f"{pf:.2f}"


def _ratio(x: float | None, pct: bool = False) -> str:
    if x is None:
        return f"n/a (under {MIN_RATIO_SPAN_MS // 3_600_000} h of data)"
    return f"{x * 100:.2f} %" if pct else f"{x:.2f}"


def _breakdown_lines(result: BacktestResult) -> list[str]:
    tables = breakdowns(result.trades, result.initial_balance)
    days = len(tables["day"])
    chosen = ["symbol", "exit_reason", "side", "day" if days <= 31 else "week", "month"]
    lines: list[str] = []
    for name in dict.fromkeys(chosen):
        rows = [[name.replace("_", " "), "trades", "won/draw/lost", "win %", "net PnL",
                 "avg hold"]]
        for r in tables[name]:
            rows.append([r["key"], str(r["trades"]), f"{r['wins']}/{r['draws']}/{r['losses']}",
                         f"{r['win_rate'] * 100:.1f}", f"{r['net_pnl']:.4f}",
                         _duration(r["avg_holding_s"])])
        lines += ["", f"By {name.replace('_', ' ')}:", *_table(rows, right={1, 2, 3, 4, 5})]
    return lines


def format_report(result: BacktestResult, stats: Stats) -> str:
    """A plain fixed-width text report for the terminal (trade table elided past 40 rows)."""
    span_s = (result.last_ts_ms - result.first_ts_ms) / 1000
    asset = result.asset
    lines = [
        f"Backtest {result.symbol} {result.timeframe}"
        + (f" (timerange {result.timerange})" if result.timerange else ""),
        f"Data:    {_utc(result.first_ts_ms)} → {_utc(result.last_ts_ms)} UTC "
        f"({_duration(span_s)}), {result.events:,} events, {len(result.files)} file(s)",
        *(f"Note:    {n}" for n in result.notes),
        "",
    ]
    multi = len(set(result.symbols or result.symbol.split(","))) > 1
    if result.trades:
        lines += _table(_trade_rows(result.trades, multi), right={0, 5, 6, 7, 8} if multi
                        else {0, 4, 5, 6, 7})
        lines += _breakdown_lines(result)
    else:
        lines.append("No trades." + (" " if result.no_trade_reasons else ""))
        lines += [f"  - {why}" for why in result.no_trade_reasons]
    pct = (
        f" ({stats.net_pnl / result.initial_balance * 100:+.2f} %)"
        if result.initial_balance > 0 else ""
    )
    market = ", ".join(f"{s} {v * 100:+.2f} %" for s, v in stats.market_change.items())
    dd_when = (f", {_utc(stats.drawdown_start_ms)} → {_utc(stats.drawdown_end_ms)}"
               if stats.max_drawdown > 0 else "")
    summary = [
        ("Balance", f"{result.initial_balance} → {result.final_balance} {asset}"),
        ("Net PnL", f"{stats.net_pnl} {asset}{pct}"),
        ("Gross PnL", f"{stats.gross_pnl} {asset}"),
        ("Fees", f"{stats.fees} {asset}"),
        ("Funding", f"{stats.funding} {asset}"),
        ("Trades", f"{stats.trades} ({stats.wins} won, {stats.draws} even, {stats.losses} lost)"),
        ("Win rate", f"{stats.win_rate * 100:.2f} %"),
        ("Max drawdown", f"{stats.max_drawdown * 100:.2f} % ({stats.max_drawdown_usdt:.2f} "
                         f"{asset}{dd_when})"),
        ("CAGR", _ratio(stats.cagr, pct=True)),
        ("Sharpe", _ratio(stats.sharpe)),
        ("Sortino", _ratio(stats.sortino)),
        ("Calmar", _ratio(stats.calmar) if stats.cagr is None or stats.max_drawdown > 0
         else "n/a (no drawdown)"),
        ("Profit factor", _pf_text(stats.profit_factor)),
        ("Expectancy", "n/a" if stats.expectancy is None else
         f"{stats.expectancy:.4f} {asset}/trade"
         + ("" if stats.expectancy_ratio is None else f" (ratio {stats.expectancy_ratio:.2f})")),
        ("Exposure", f"{stats.exposure * 100:.2f} %"),
        ("Best / worst", "n/a" if stats.best is None else f"{stats.best} / {stats.worst} {asset}"),
        ("Holding", f"avg {_duration(stats.avg_holding_s)}, max {_duration(stats.max_holding_s)}"),
        ("Market change", market or "n/a"),
        ("Events", f"{result.events:,} ({stats.events_per_s:,.0f} events/s)"),
        ("Wall time", f"{result.wall_s:.2f} s"),
    ]
    lines.append("")
    lines += [f"{label + ':':<15}{value}" for label, value in summary]
    if result.risk is not None:
        lines += format_risk(result.risk)
    return "\n".join(lines) + "\n"
