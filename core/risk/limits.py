"""RISK's limits: their settings and the pure checks of a proposed entry.

Every check is a function of its inputs only (no clock, no state), so live, paper and backtest
decide the same way. A check returns ``None`` when the entry passes, or a ``Breach`` naming the
limit with the measured value and the threshold in the same unit. A threshold of 0 turns the
limit off.

Units: ``*_usdt`` USDT, ``*_pct`` percent (``5`` = 5 %), ``*_s`` seconds, ``*_min`` minutes.
Times are exchange time, ms since the epoch; days and hours are UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from core.events import Side

ZERO = Decimal(0)
HUNDRED = Decimal(100)
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

#: The kill-switch limits: breaching one HALTS the engine (close, cancel, stop).
KILL_LIMITS = ("daily_loss_usdt", "daily_loss_pct", "max_drawdown_pct")


class WindowError(ValueError):
    """A trading-window setting is malformed; the message says the expected form."""


@dataclass(frozen=True, slots=True)
class Breach:
    """A limit an entry would break: ``value`` measured against ``threshold`` in ``unit``."""

    limit: str
    value: Decimal
    threshold: Decimal
    unit: str
    detail: str = ""


def parse_hours(text: str) -> frozenset[int]:
    """UTC hours from ``"0-23"``, ``"8-16,20"`` or ``"22-3"`` (wraps past midnight).

    A range ``a-b`` includes both ends: hour ``b`` (its whole 60 minutes) is allowed.

    Raises:
        WindowError: not comma-separated hours or ranges within 0..23.
    """
    hours: set[int] = set()
    for part in (p.strip() for p in text.split(",") if p.strip()):
        lo, _, hi = part.partition("-")
        if not lo.strip().isdigit() or (hi and not hi.strip().isdigit()):
            raise WindowError("must be UTC hours like 0-23 or 8-16,20")
        a, b = int(lo), int(hi) if hi else int(lo)
        if not (0 <= a <= 23 and 0 <= b <= 23):
            raise WindowError("hours must be within 0..23")
        h = a
        while True:
            hours.add(h)
            if h == b:
                break
            h = (h + 1) % 24
    if not hours:
        raise WindowError("must name at least one UTC hour, e.g. 0-23")
    return frozenset(hours)


def parse_weekdays(text: str) -> frozenset[int]:
    """Weekdays (Monday = 0) from ``"mon-sun"``, ``"mon-fri"`` or ``"sat,sun"``.

    Raises:
        WindowError: not comma-separated day names or ranges.
    """
    days: set[int] = set()
    for part in (p.strip().lower() for p in text.split(",") if p.strip()):
        lo, _, hi = part.partition("-")
        lo, hi = lo.strip()[:3], (hi.strip()[:3] if hi else lo.strip()[:3])
        if lo not in WEEKDAYS or hi not in WEEKDAYS:
            raise WindowError("must be weekdays like mon-fri or sat,sun")
        d, end = WEEKDAYS.index(lo), WEEKDAYS.index(hi)
        while True:
            days.add(d)
            if d == end:
                break
            d = (d + 1) % 7
    if not days:
        raise WindowError("must name at least one weekday, e.g. mon-sun")
    return frozenset(days)


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """Every RISK threshold (0 = off). Built from settings by ``from_settings``."""

    daily_loss_usdt: Decimal = Decimal(50)
    daily_loss_pct: Decimal = Decimal(5)
    max_drawdown_pct: Decimal = Decimal(20)
    max_consecutive_losses: int = 5
    loss_cooldown_min: int = 60
    min_entry_interval_s: int = 0
    max_entries_per_hour: int = 12
    max_entries_per_day: int = 100
    max_notional_usdt: Decimal = Decimal(5000)
    max_leverage: int = 20
    price_band_pct: Decimal = Decimal(2)
    min_liq_distance_pct: Decimal = Decimal(2)
    liq_stop_multiple: Decimal = Decimal("1.5")
    maintenance_margin_pct: Decimal = Decimal("0.4")
    funding_window_min: int = 5
    funding_rate_pct: Decimal = Decimal("0.05")
    trading_hours: frozenset[int] = frozenset(range(24))
    trading_days: frozenset[int] = frozenset(range(7))
    max_orders_per_minute: int = 20

    @classmethod
    def from_settings(cls, settings: Any) -> RiskLimits:
        """Thresholds from ``utils.settings.Settings`` (its ``risk_*`` fields).

        Raises:
            WindowError: RISK_TRADING_HOURS or RISK_TRADING_DAYS is malformed (the settings
                validate them first, so this is a bug if it happens).
        """
        s = settings
        return cls(
            daily_loss_usdt=s.risk_daily_loss_usdt, daily_loss_pct=s.risk_daily_loss_pct,
            max_drawdown_pct=s.risk_max_drawdown_pct,
            max_consecutive_losses=s.risk_max_consecutive_losses,
            loss_cooldown_min=s.risk_loss_cooldown_min,
            min_entry_interval_s=s.risk_min_entry_interval_s,
            max_entries_per_hour=s.risk_max_entries_per_hour,
            max_entries_per_day=s.risk_max_entries_per_day,
            max_notional_usdt=s.risk_max_notional, max_leverage=s.risk_max_leverage,
            price_band_pct=s.risk_price_band_pct, min_liq_distance_pct=s.risk_min_liq_distance_pct,
            liq_stop_multiple=s.risk_liq_stop_multiple,
            maintenance_margin_pct=s.maintenance_margin_pct,
            funding_window_min=s.risk_funding_window_min, funding_rate_pct=s.risk_funding_rate_pct,
            trading_hours=parse_hours(s.risk_trading_hours),
            trading_days=parse_weekdays(s.risk_trading_days),
            max_orders_per_minute=s.risk_max_orders_per_minute,
        )

    def describe(self) -> list[tuple[str, str, str]]:
        """``(limit, threshold, unit)`` rows for /risk and the dashboard; "off" when 0."""
        def v(x: Any) -> str:
            return "off" if not x else str(x)
        hours = "all" if len(self.trading_hours) == 24 else ",".join(
            str(h) for h in sorted(self.trading_hours))
        days = "all" if len(self.trading_days) == 7 else ",".join(
            WEEKDAYS[d] for d in sorted(self.trading_days))
        return [
            ("daily_loss_usdt", v(self.daily_loss_usdt), "USDT"),
            ("daily_loss_pct", v(self.daily_loss_pct), "%"),
            ("max_drawdown_pct", v(self.max_drawdown_pct), "%"),
            ("consecutive_losses", v(self.max_consecutive_losses), "count"),
            ("loss_cooldown", v(self.loss_cooldown_min), "min"),
            ("min_entry_interval", v(self.min_entry_interval_s), "s"),
            ("entries_per_hour", v(self.max_entries_per_hour), "count"),
            ("entries_per_day", v(self.max_entries_per_day), "count"),
            ("max_notional", v(self.max_notional_usdt), "USDT"),
            ("max_leverage", v(self.max_leverage), "x"),
            ("price_band", v(self.price_band_pct), "%"),
            ("liq_distance", v(self.min_liq_distance_pct), "%"),
            ("liq_stop_multiple", v(self.liq_stop_multiple), "x"),
            ("funding_window", v(self.funding_window_min), "min"),
            ("funding_rate", v(self.funding_rate_pct), "%"),
            ("trading_hours", hours, "UTC"),
            ("trading_days", days, "UTC"),
            ("orders_per_minute", v(self.max_orders_per_minute), "count"),
        ]


# ---------------------------------------------------------------------- pure checks


def check_exposure(limits: RiskLimits, notional: Decimal, leverage: int) -> Breach | None:
    """Position notional (USDT) and leverage against their caps."""
    if limits.max_leverage and leverage > limits.max_leverage:
        return Breach("max_leverage", Decimal(leverage), Decimal(limits.max_leverage), "x")
    if limits.max_notional_usdt and notional > limits.max_notional_usdt:
        return Breach("max_notional", notional.quantize(Decimal("0.01")),
                      limits.max_notional_usdt, "USDT")
    return None


def check_price_band(limits: RiskLimits, price: Decimal, mark: Decimal | None) -> Breach | None:
    """The signal's reference price at most ``price_band_pct`` % from the mark price.
    Passes when no mark price is known yet (a klines backtest without stored mark-price
    klines has none)."""
    if not limits.price_band_pct or mark is None or mark <= 0:
        return None
    dev = abs(price - mark) / mark * HUNDRED
    if dev > limits.price_band_pct:
        return Breach("price_band", dev.quantize(Decimal("0.001")), limits.price_band_pct, "%",
                      f"price {price} vs mark {mark}")
    return None


def estimated_liquidation(side: Side, entry: Decimal, leverage: int, mmr: Decimal) -> Decimal:
    """Isolated-margin liquidation price of a fresh position, no bracket ``cum``:
    LONG ``EP·(1 − 1/L)/(1 − mmr)``, SHORT ``EP·(1 + 1/L)/(1 + mmr)`` (the paper exchange's
    formula with margin ``q·EP/L``; ``mmr`` a fraction). An estimate: the live exchange's
    bracket can only move it closer for large notionals."""
    inv = Decimal(1) / Decimal(max(leverage, 1))
    if side is Side.LONG:
        return entry * (1 - inv) / (1 - mmr)
    return entry * (1 + inv) / (1 + mmr)


def check_liquidation(limits: RiskLimits, side: Side, entry: Decimal, stop: Decimal,
                      leverage: int) -> Breach | None:
    """The stop must sit before the liquidation price, and the liquidation price must be at
    least ``min_liq_distance_pct`` % and ``liq_stop_multiple`` × the stop distance away."""
    if entry <= 0:
        return None
    liq = estimated_liquidation(side, entry, leverage, limits.maintenance_margin_pct / HUNDRED)
    liq_dist = abs(entry - liq)
    liq_pct = (liq_dist / entry * HUNDRED).quantize(Decimal("0.001"))
    stop_dist = (entry - stop) * side.sign  # > 0 when the stop is on the losing side
    q = Decimal("0.01")
    if stop > 0 and stop_dist >= liq_dist:
        return Breach("liq_distance", liq_pct, (stop_dist / entry * HUNDRED).quantize(q), "%",
                      f"stop {stop} is beyond the liquidation price ~{liq.quantize(q)}")
    if limits.min_liq_distance_pct and liq_pct < limits.min_liq_distance_pct:
        return Breach("liq_distance", liq_pct, limits.min_liq_distance_pct, "%",
                      f"liquidation ~{liq.quantize(q)}")
    if limits.liq_stop_multiple and stop > 0 and stop_dist > 0:
        multiple = liq_dist / stop_dist
        if multiple < limits.liq_stop_multiple:
            return Breach("liq_stop_multiple", multiple.quantize(q), limits.liq_stop_multiple,
                          "x", f"liquidation ~{liq.quantize(q)}, stop {stop}")
    return None


def check_funding(limits: RiskLimits, side: Side, now_ms: int, rate: Decimal | None,
                  next_funding_ms: int) -> Breach | None:
    """No entry in the last ``funding_window_min`` minutes before a settlement when the rate is
    against the position (longs pay a positive rate, shorts a negative one) and its size is
    above ``funding_rate_pct`` %."""
    if not limits.funding_window_min or rate is None or next_funding_ms <= now_ms:
        return None
    if (next_funding_ms - now_ms) > limits.funding_window_min * MINUTE_MS:
        return None
    against = rate * side.sign * HUNDRED  # percent the position would pay
    if against > limits.funding_rate_pct:
        minutes = Decimal(next_funding_ms - now_ms) / MINUTE_MS
        return Breach("funding_window", against.quantize(Decimal("0.0001")),
                      limits.funding_rate_pct, "%",
                      f"funding in {minutes.quantize(Decimal('0.1'))} min")
    return None


def check_trading_window(limits: RiskLimits, now_ms: int) -> Breach | None:
    """New entries only in the allowed UTC hours and weekdays."""
    hour = (now_ms // HOUR_MS) % 24
    weekday = (now_ms // DAY_MS + 3) % 7  # 1970-01-01 was a Thursday (Monday = 0)
    if weekday not in limits.trading_days:
        return Breach("trading_days", Decimal(weekday), Decimal(0), "weekday",
                      f"{WEEKDAYS[weekday]} is outside the trading days")
    if hour not in limits.trading_hours:
        return Breach("trading_hours", Decimal(hour), Decimal(0), "UTC hour",
                      f"{hour:02d}h UTC is outside the trading hours")
    return None
