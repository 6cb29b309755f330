"""Composition helpers: Settings -> the Binance connection and the live market feed.

``live_connection_factory(settings)`` returns a ``LiveSetup`` the runner plugs into the engine:

* ``connection_factory``: ``bus -> BinanceConnection`` for TRADING_MODE=testnet|live, None in
  paper mode (the engine's default paper exchange trades on the live streams);
* ``feed``: ``async (engine, stop) -> int``, the market feed task. It starts the connection
  (setup checks, WS API, user stream, reconciliation) when there is one, streams market data
  onto the bus until ``stop`` is set, then stops both (exchange orders and stops stay). Returns
  the number of market events published.
* ``market_data``: ``() -> MarketDataRest``, public market-data REST for the market-data worker:
  through the connection's own client and rate limiter (testnet/live), or a stand-alone public
  client (paper).

The factory remembers the connection it built, so the feed and ``market_data`` use it without
asking the engine's connection what it is.

Keys: BINANCE_API_KEY with BINANCE_API_SECRET (HMAC) or BINANCE_PRIVATE_KEY_PATH (Ed25519).
Orders and SL/TP of the previous run are read (read-only) from the store of record, so a
restart resolves them and can re-place missing stops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from core.binance.adapter import BinanceConfig, BinanceConnection, SetupError
from core.binance.adopt import AdoptPolicy
from core.binance.public_rest import PublicRest
from core.binance.signing import Ed25519Signer, HmacSigner, KeyFileError, Signer
from core.binance.streams import MarketStreams, stream_names
from core.event_bus import EventBus
from core.events import EngineMode, StateChanged
from core.migrate import store_for
from core.persisted import PersistError
from core.ports import LiveConnection, MarketDataRest
from core.state import EngineState
from utils.settings import Settings

logger = logging.getLogger(__name__)

FeedFn = Callable[[Any, asyncio.Event], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class LiveSetup:
    """What the runner needs for live market data (and, in testnet/live, the exchange)."""

    connection_factory: Callable[[EventBus], LiveConnection] | None
    feed: FeedFn
    streams: tuple[str, ...]
    market_data: Callable[[], MarketDataRest]


def signer_from_settings(settings: Settings) -> Signer:
    """Ed25519 from BINANCE_PRIVATE_KEY_PATH, else HMAC from BINANCE_API_SECRET.

    Raises:
        SetupError: no usable key (the message names the variables, never their values).
    """
    if settings.binance_api_key is None:
        raise SetupError(f"TRADING_MODE={settings.trading_mode} needs BINANCE_API_KEY with "
                         "BINANCE_API_SECRET (HMAC) or BINANCE_PRIVATE_KEY_PATH (Ed25519)")
    if settings.binance_private_key_path is not None:
        try:
            return Ed25519Signer.from_pem_file(settings.binance_private_key_path)
        except KeyFileError as exc:
            raise SetupError(f"BINANCE_PRIVATE_KEY_PATH: {exc}") from None
    if settings.binance_api_secret is None:
        raise SetupError("BINANCE_API_KEY is set but neither BINANCE_API_SECRET nor "
                         "BINANCE_PRIVATE_KEY_PATH is")
    return HmacSigner(settings.binance_api_secret)


def stream_paths(settings: Settings) -> str:
    """BINANCE_STREAM_PATHS, with ``auto`` meaning routed on mainnet (the unrouted paths are
    retired there) and routed-with-fallback on the testnet (its routes are unverified)."""
    paths = settings.binance_stream_paths
    if paths == "auto" and settings.trading_mode != "testnet":
        return "routed"
    return paths


def binance_config(settings: Settings, **overrides: Any) -> BinanceConfig:
    """A BinanceConfig from settings (``overrides`` for tests: timeouts, backoff ...)."""
    resume_orders: tuple[tuple[Any, ...], ...] = ()
    resume_levels: dict[str, tuple[Decimal, Decimal]] = {}
    try:
        store = store_for(settings)
        try:
            state = EngineState.load(store, default_mode=EngineMode.DISARMED)
        finally:
            store.close()
        resume_orders = tuple((o.symbol, o.client_order_id, o.side, o.quantity, o.reduce_only,
                               o.submitted_ms) for o in state.orders.values())
        if state.symbol and (state.stop_loss > 0 or state.take_profit > 0):
            resume_levels[state.symbol] = (state.stop_loss, state.take_profit)
    except PersistError:
        pass  # build_engine reports it
    kw: dict[str, Any] = dict(
        name=settings.trading_mode, rest_url=settings.binance_url("rest"),
        ws_api_url=settings.binance_url("ws_api"), stream_url=settings.binance_url("stream"),
        api_key=settings.binance_api_key, signer=signer_from_settings(settings),
        symbols=tuple(settings.symbols), leverage=settings.leverage,
        margin_type=settings.binance_margin_type, working_type=settings.working_type,
        recv_window_ms=settings.recv_window_ms,
        rate_limit_fraction=settings.binance_rate_limit_fraction,
        asset=settings.quote_asset, resume_orders=resume_orders, resume_levels=resume_levels,
        adopt_policy=AdoptPolicy(sl_pct=settings.adopt_sl_pct, tp_pct=settings.adopt_tp_pct,
                                 sl_atr=settings.adopt_sl_atr,
                                 atr_interval=settings.adopt_atr_interval,
                                 atr_period=settings.atr_period),
        stop_failure_action=settings.stop_failure_action,
        reconcile_interval_s=settings.reconcile_interval_s,
        unknown_timeout_s=settings.unknown_order_timeout_s,
        exchange_info_refresh_s=settings.exchange_info_refresh_s,
        pong_timeout_s=settings.binance_pong_timeout_s,
        stream_paths=stream_paths(settings))
    kw.update(overrides)
    return BinanceConfig(**kw)


def live_connection_factory(settings: Settings, **overrides: Any) -> LiveSetup:
    """The connection factory and market feed for ``settings.trading_mode``.

    Raises:
        SetupError: testnet/live without usable keys.
    """
    streams = tuple(stream_names(settings.symbols, settings.binance_market_streams))
    built: list[BinanceConnection] = []  # the connection the factory made (testnet/live)
    factory: Callable[[EventBus], LiveConnection] | None = None
    if settings.trading_mode != "paper":
        config = binance_config(settings, **overrides)

        def factory(bus: EventBus) -> LiveConnection:
            conn = BinanceConnection(bus, config)
            built[:] = [conn]
            return conn

    def market_data() -> MarketDataRest:
        """The worker's REST: the built connection's client and limiter (one REQUEST_WEIGHT
        pool), or in paper mode a public client of its own.

        Raises:
            RuntimeError: testnet/live before the connection was built.
        """
        if settings.trading_mode == "paper":
            return PublicRest.standalone(settings.binance_url("rest"),
                                         rate_limit_fraction=settings.binance_rate_limit_fraction)
        if not built:
            raise RuntimeError("market data asked for before the Binance connection was built")
        return PublicRest.shared(built[0].rest, built[0].limiter)

    async def feed(engine: Any, stop: asyncio.Event) -> int:
        bus = engine.bus
        conn = built[0] if built else None
        market = MarketStreams(settings.binance_url("stream"), streams, publish=bus.publish,
                               bus_status=bus.publish,
                               silence_s=settings.binance_stream_silence_s,
                               public_silence_s=settings.binance_public_silence_s,
                               paths=stream_paths(settings))
        try:
            if conn is not None:
                if engine.state.mode is not EngineMode.ARMED:
                    mode = engine.state.mode.value
                    logger.warning("TRADING_MODE=%s: the engine starts %s; arm it to trade",
                                   settings.trading_mode, mode)
                    bus.publish(StateChanged(what="mode", old=mode, new=mode,
                                             reason=f"{settings.trading_mode} mode starts "
                                                    f"{mode}: arm to trade",
                                             ts_ms=conn.clock.now_ms()))
                await conn.start()
            await market.start()
            await stop.wait()
        finally:
            await market.stop()
            if conn is not None:
                await conn.stop()
        return market.events

    return LiveSetup(connection_factory=factory, feed=feed, streams=streams,
                     market_data=market_data)
