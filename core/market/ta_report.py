"""The /ta report: what the market-data cache knows about a symbol, analysed off the loop.

``ta_report`` reads every timeframe's candles, the mark price and funding, the 24 h ticker and
the open interest through ``MarketData.get`` (cache first; Binance only on a miss or a stale
entry), snapshots the closed candles, and runs ``core.ta.analyse`` (indicators, the trend
rule's verdict, the chart) in the market data's executor (``MarketData.analyser``), so the
event loop only waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from core.binance.market_rest import INTERVAL_MS, MarkInfo, OpenInterest, Ticker24h
from core.market.data import MarketData
from core.market.series import NoMarketData, Piece
from core.market.ta import FrameReading, RuleReading, TaRequest, plain

_PROBLEMS = {"budget": "request budget spent", "error": "Binance unavailable",
             "none": "no data"}


@dataclass(frozen=True, slots=True)
class TaReport:
    """What /ta shows: readings per timeframe, mark/funding, 24 h ticker, open interest."""

    symbol: str
    timeframe: str                         # the one charted and detailed
    readings: tuple[FrameReading, ...]     # every timeframe, shortest first
    klines: Mapping[str, Piece[int]]       # closed bars and freshness per timeframe
    last_bar_ms: Mapping[str, int]         # open time of the last closed bar, per timeframe
    mark: Piece[MarkInfo]
    ticker: Piece[Ticker24h]
    open_interest: Piece[OpenInterest]
    chart: bytes | None
    live: bool
    rules: tuple[RuleReading, ...] = ()        # every catalog rule on ``timeframe``
    ensemble: RuleReading | None = None        # the ensemble's confidence on ``timeframe``


async def ta_report(market: MarketData, symbol: str, timeframe: str | None = None, *,
                    chart: bool = True) -> TaReport:
    """Everything /ta shows for ``symbol``, detailed (and charted, PNG) on ``timeframe``:
    by default the engine's TIMEFRAME when available, else 1h, else the shortest.

    Raises:
        core.market.series.UnknownSymbol: see ``MarketData.check_symbol``.
        core.market.series.NoMarketData: no candles for ``timeframe`` (the message says why).
    """
    await market.check_symbol(symbol)
    frames = market.timeframes_for(symbol)
    if timeframe is None:
        preferred = (market.default_timeframe, "1h")
        timeframe = next((tf for tf in preferred if tf in frames),
                         frames[0] if frames else market.default_timeframe)
    if timeframe not in frames:
        if not market.live or timeframe not in INTERVAL_MS:
            raise NoMarketData(f"no {timeframe} candles for {symbol}; available: "
                               f"{', '.join(frames) or 'none'}")
        frames = (*frames, timeframe)  # any Binance interval: fetched on demand, cached a TTL
    pieces = await asyncio.gather(
        *(market.get("klines", (symbol, tf)) for tf in frames),
        market.get("mark", symbol), market.get("ticker", symbol), market.get("oi", symbol))
    klines = dict(zip(frames, pieces[:len(frames)], strict=False))
    series = {tf: p.value.snapshot() for tf, p in klines.items() if p.value is not None}
    if timeframe not in series:
        raise NoMarketData(f"no {timeframe} candles for {symbol} "
                           f"({_PROBLEMS.get(klines[timeframe].problem, 'unavailable')})")
    request = TaRequest(symbol, tuple((tf, plain(s)) for tf, s in series.items()),
                        market.strategy, market.params, timeframe if chart else None,
                        rules=market.rules, ensemble=market.ensemble,
                        verdict_timeframe=timeframe, plugin_dirs=market.plugin_dirs)
    result = await market.analyser.run(request)
    return TaReport(
        symbol=symbol, timeframe=timeframe, readings=result.readings,
        klines={tf: Piece(len(p.value) if p.value is not None else None, p.age_s, p.stale,
                          p.problem) for tf, p in klines.items()},
        last_bar_ms={tf: s[-1].open_ms for tf, s in series.items() if s},
        mark=pieces[-3], ticker=pieces[-2], open_interest=pieces[-1], chart=result.chart,
        live=market.live, rules=result.rules, ensemble=result.ensemble)
