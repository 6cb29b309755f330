"""Read models of RISK: what /risk, the dashboard's API, /status and the backtest report show.

``risk_snapshot`` is the one view of limits, today's usage, running cooldowns and the halt;
every front-end formats the same dict. ``risk_summary`` is the backtest report's ``risk``
object; ``format_risk`` its terminal lines.

Snapshot shape (money and measures are ``Decimal``; times exchange ms)::

    {"halted": bool, "halt_reason": str, "halted_ms": int, "halt_limit": str,
     "now_ms": int, "day_start_ms": int, "equity": Decimal | None, "peak_equity": Decimal,
     "day_start_equity": Decimal | None, "day_realized_pnl": Decimal, "loss_streak": int,
     "limits": [{"name", "used": Decimal | None, "threshold": str, "unit": str,
                 "breached": bool}],
     "cooldowns": [{"name", "until_ms": int, "remaining_s": float}],
     "refusals": {limit: count}}
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from core.events import EngineMode
from core.risk.limits import HOUR_MS, MINUTE_MS, WEEKDAYS, check_trading_window

if TYPE_CHECKING:
    from core.risk.guardian import RiskGuardian

Q2 = Decimal("0.01")


def _row(name: str, used: Decimal | None, threshold: Any, unit: str) -> dict[str, Any]:
    on = bool(threshold)
    breached = on and used is not None and used >= Decimal(threshold)
    return {"name": name, "used": used, "threshold": str(threshold) if on else "off",
            "unit": unit, "breached": breached}


def risk_snapshot(guardian: RiskGuardian, now_ms: int) -> dict[str, Any]:
    """Limits, today's usage, running cooldowns and the halt, as of ``now_ms``."""
    lim, book, st = guardian.limits, guardian.book, guardian.state
    book.roll(now_ms)
    book.prune(now_ms)
    loss_pct = book.daily_loss_pct()
    dd = book.drawdown_pct()
    rows = [
        _row("daily_loss_usdt", book.daily_loss.quantize(Q2), lim.daily_loss_usdt, "USDT"),
        _row("daily_loss_pct", None if loss_pct is None else loss_pct.quantize(Q2),
             lim.daily_loss_pct, "%"),
        _row("max_drawdown_pct", None if dd is None else dd.quantize(Q2),
             lim.max_drawdown_pct, "%"),
        _row("consecutive_losses", Decimal(book.loss_streak), lim.max_consecutive_losses,
             "count"),
        _row("entries_per_hour", Decimal(book.entries_since(now_ms - HOUR_MS)),
             lim.max_entries_per_hour, "count"),
        _row("entries_per_day", Decimal(book.entries_since(book.day_start_ms - 1)),
             lim.max_entries_per_day, "count"),
        _row("orders_per_minute", Decimal(book.orders_since(now_ms - MINUTE_MS)),
             lim.max_orders_per_minute, "count"),
        _row("max_notional", None, lim.max_notional_usdt, "USDT"),
        _row("max_leverage", None, lim.max_leverage, "x"),
        _row("price_band", None, lim.price_band_pct, "%"),
        _row("liq_distance", None, lim.min_liq_distance_pct, "%"),
        _row("liq_stop_multiple", None, lim.liq_stop_multiple, "x"),
        _row("funding_window", None, lim.funding_window_min, "min"),
    ]
    window = check_trading_window(lim, now_ms)
    hours = ("0-23" if len(lim.trading_hours) == 24
             else ",".join(str(h) for h in sorted(lim.trading_hours)))
    days = ("mon-sun" if len(lim.trading_days) == 7
            else ",".join(WEEKDAYS[d] for d in sorted(lim.trading_days)))
    rows.append({"name": "trading_window", "used": None, "threshold": f"{days} {hours}h",
                 "unit": "UTC", "breached": window is not None})
    cooldowns = []
    if book.cooldown_until_ms > now_ms:
        cooldowns.append({"name": "loss_cooldown", "until_ms": book.cooldown_until_ms,
                          "remaining_s": (book.cooldown_until_ms - now_ms) / 1000})
    if lim.min_entry_interval_s and book.last_entry_ms:
        until = book.last_entry_ms + lim.min_entry_interval_s * 1000
        if until > now_ms:
            cooldowns.append({"name": "min_entry_interval", "until_ms": until,
                              "remaining_s": (until - now_ms) / 1000})
    return {
        "halted": st.mode is EngineMode.HALTED, "halt_reason": st.halt_reason,
        "halted_ms": st.halted_ms, "halt_limit": guardian.halt_limit, "now_ms": now_ms,
        "day_start_ms": book.day_start_ms, "equity": book.equity,
        "peak_equity": book.peak_equity, "day_start_equity": book.day_start_equity,
        "day_realized_pnl": book.day_realized, "loss_streak": book.loss_streak,
        "limits": rows, "cooldowns": cooldowns, "refusals": dict(guardian.refusals),
    }


def risk_summary(guardian: RiskGuardian) -> dict[str, Any]:
    """The backtest report's ``risk`` object (JSON types; money as decimal strings)::

        {"refusals": {limit: count}, "refused": [{"ts_ms", "symbol", "side", "limit",
         "value", "threshold", "unit", "detail"}], "halt": null | {"ts_ms", "reason",
         "limit"}}
    """
    st = guardian.state
    halt = None
    if st.mode is EngineMode.HALTED:
        halt = {"ts_ms": st.halted_ms, "reason": st.halt_reason,
                "limit": guardian.halt_limit or "other"}
    return {"refusals": dict(sorted(guardian.refusals.items())),
            "refused": list(guardian.refused), "halt": halt}


def _utc(ts_ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts_ms / 1000))


def format_risk(summary: dict[str, Any], *, max_lines: int = 20) -> list[str]:
    """Terminal lines for the backtest report: refusals by limit, each refused signal (the
    first ``max_lines``), and the halt."""
    refusals = summary.get("refusals") or {}
    halt = summary.get("halt")
    if not refusals and not halt:
        return ["Risk:          no signal refused, no halt"]
    total = sum(refusals.values())
    by_limit = ", ".join(f"{k} {v}" for k, v in refusals.items()) or "none"
    lines = [f"Risk:          {total} signals refused ({by_limit})"]
    refused = summary.get("refused") or []
    for r in refused[:max_lines]:
        lines.append(f"  {_utc(r['ts_ms'])}  {r['side']:<5} {r['symbol']}  {r['limit']} "
                     f"{r['value']} / {r['threshold']} {r['unit']}"
                     + (f"  ({r['detail']})" if r.get("detail") else ""))
    if len(refused) > max_lines:
        lines.append(f"  … {len(refused) - max_lines} more in the JSON result")
    if halt:
        lines.append(f"HALTED at {_utc(halt['ts_ms'])} UTC: {halt['reason']} "
                     "(flat to the end of the data)")
    return lines
