"""The real engine + BinanceConnection wired against the fake Binance (tests only).

``async with LiveBot(fake, tmp_path) as bot`` builds the engine with ``build_engine`` and the
adapter from ``core.binance.live`` (settings pointing at the fake), starts it and waits until
the adapter has reconciled. Timeouts and backoffs are shortened so faults resolve quickly; no
test sleeps: they await conditions with ``eventually``.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from core.binance.adapter import BinanceConnection
from core.binance.live import live_connection_factory
from core.engine import Engine, build_engine
from core.events import EngineMode, ProtectiveOrderUpdate, Side, TradeSignal
from core.journal import Journal
from tests.conftest import eventually
from tests.fakes.binance import FakeBinance
from utils.settings import Settings, load_settings

D = Decimal

FAST = dict(request_timeout_s=0.5, backoff_base_s=0.02, backoff_cap_s=0.1, ping_interval_s=None,
            exit_retry_s=5.0, rate_wait_s=0.3)


def settings_for(fake: FakeBinance, data_dir: Path, **kw: Any) -> Settings:
    base: dict[str, Any] = dict(
        _env_file=None, trading_mode="testnet", symbols="BTCUSDT", data_dir=data_dir,
        binance_rest_url=fake.rest_url, binance_ws_api_url=fake.ws_api_url,
        binance_stream_url=fake.stream_url, binance_api_key=fake.api_key,
        binance_api_secret=fake.api_secret, leverage=5, max_notional=D("5000"),
        binance_stream_silence_s=0.5, log_json=False)
    base.update(kw)
    return load_settings(**base)


class LiveBot:
    """Engine + adapter (+ journal) against ``fake``; ``armed`` arms the engine once ready."""

    def __init__(self, fake: FakeBinance, data_dir: Path, *, armed: bool = True,
                 persist: bool = False, journal: bool = False, settings: Settings | None = None,
                 wait_ready: bool = True, **overrides: Any) -> None:
        self.fake = fake
        self.settings = settings or settings_for(fake, data_dir)
        self.setup = live_connection_factory(self.settings, **(FAST | overrides))
        self.armed, self.persist, self.wait_ready = armed, persist, wait_ready
        self.engine: Engine = build_engine(self.settings, connection_factory=self.setup.
                                           connection_factory, persist=persist,
                                           default_mode=EngineMode.DISARMED)
        self.conn: BinanceConnection = self.engine.connection  # type: ignore[assignment]
        self.journal = Journal(self.engine.bus, None if not journal else data_dir / "j.sqlite3",
                               flush_interval_s=0.05) if journal else None
        self.events: list[Any] = []
        self.engine.bus.subscribe_all(self.events.append)

    async def __aenter__(self) -> LiveBot:
        if self.journal is not None:
            await self.journal.start()
        await self.conn.start()
        if self.wait_ready:
            await eventually(lambda: self.conn.ready, timeout=5)
            if self.armed:
                self.engine.arm(reason="test")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.conn.stop()
        if self.journal is not None:
            await self.journal.stop()

    # ------------------------------------------------------------------ helpers

    @property
    def bus(self):
        return self.engine.bus

    @property
    def phase(self) -> str:
        return self.engine.state.phase.value

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if type(e) is kind]

    def signal(self, side: Side = Side.LONG, qty: str = "0.010", *, price: str = "68000",
               sl: str = "67000", tp: str = "69000", symbol: str = "BTCUSDT") -> None:
        self.bus.publish(TradeSignal(
            symbol=symbol, side=side, entry_price=D(price), quantity=D(qty), stop_loss=D(sl),
            take_profit=D(tp), leverage=self.settings.leverage, reason="test",
            ts_ms=self.conn.clock.now_ms()))

    def open_algos(self) -> list[Any]:
        """The fake's open algo orders (the exchange's view; the bot learns of changes later)."""
        return self.fake.account.open_algos(None)

    def stops(self) -> dict[str, str]:
        """The bot's own view of its protective orders: kind ("SL", "TP") -> the latest status
        it published (ProtectiveOrderUpdate)."""
        return {e.kind: e.status for e in self.events if type(e) is ProtectiveOrderUpdate}

    def closed(self) -> bool:
        """FLAT, and no protective order left working, in the bot's view and on the fake."""
        return (self.phase == "FLAT" and not self.open_algos()
                and "NEW" not in self.stops().values())

    def protected(self) -> bool:
        """The bot knows both its SL and TP are working on the exchange (not only the fake)."""
        return self.stops() == {"SL": "NEW", "TP": "NEW"} and len(self.open_algos()) == 2

    def placed_orders(self) -> int:
        """Orders that reached the fake's matching engine (not algo triggers)."""
        return sum(1 for o in self.fake.account.orders.values() if not o.orig_type)


