"""BALANCE: the small shared store of margin-asset balances (USDT, USDC, ...).

Fed only by ``BalanceUpdate`` events (from the paper exchange or Binance's ACCOUNT_UPDATE and
``v2/account.balance``); read by TRENDING for sizing and by ORDERING for pre-trade checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from core.event_bus import EventBus
from core.events import BalanceUpdate


@dataclass(frozen=True, slots=True)
class AssetBalance:
    """One asset's balances in that asset's units. ``available`` is what may back a new
    position (wallet minus margin in use, as the exchange reports it)."""

    asset: str
    wallet: Decimal
    available: Decimal
    updated_ms: int


class BalanceStore:
    """Latest balance per asset."""

    def __init__(self, bus: EventBus) -> None:
        self._balances: dict[str, AssetBalance] = {}
        bus.subscribe(BalanceUpdate, self._on_balance)

    def _on_balance(self, ev: BalanceUpdate) -> None:
        prev = self._balances.get(ev.asset)
        if ev.available_balance is not None:
            available = ev.available_balance
        elif prev is not None:  # exchange did not say: move available by the same change
            available = prev.available + (ev.wallet_balance - prev.wallet)
        else:
            available = ev.wallet_balance
        self._balances[ev.asset] = AssetBalance(ev.asset, ev.wallet_balance, available, ev.ts_ms)

    def get(self, asset: str) -> AssetBalance | None:
        return self._balances.get(asset)

    def available(self, asset: str) -> Decimal:
        """Available balance of ``asset``, 0 when unknown."""
        b = self._balances.get(asset)
        return b.available if b else Decimal(0)

    def wallet(self, asset: str) -> Decimal:
        b = self._balances.get(asset)
        return b.wallet if b else Decimal(0)

    def all(self) -> list[AssetBalance]:
        return sorted(self._balances.values(), key=lambda b: b.asset)
