"""/ta SYMBOL [tf] and /watch add|remove|list: the market-data cache, read and steered.

Thin: ``core.market.ta_report.ta_report`` reads ``services.market``
(``core.market.data.MarketData``), whose cache goes to Binance only on a miss or a stale
entry, and computes the indicators, the trend rule's verdict and the chart in its executor
(off the event loop); this module parses, formats and sends. ``answer_ta`` is the whole /ta
minus Telegram (the bench calls it).
"""

from __future__ import annotations

import html
import math
import re
import time
from dataclasses import dataclass

from telegram import Update
from telegram.ext import ContextTypes

from core.market.data import MarketData
from core.market.series import NoMarketData, Piece, UnknownSymbol, WatchlistFull
from core.market.ta_report import TaReport, ta_report
from handlers.common import deps, num, reply, reply_chat_id, utc
from handlers.i18n import N_, Texts
from handlers.registry import Command, UsageError

_SYMBOL = re.compile(r"^[A-Z0-9]{2,20}$")
_TIMEFRAME = re.compile(r"^[1-9][0-9]{0,2}[smhdw]$")
_COLUMNS = (N_("tf"), "RSI", "MACD-h", "ADX", "ATR%", "%B", N_("Vol×"), "EMA", N_("trend"))
_WIDTHS = (4, 5, 8, 5, 5, 4, 5, 4, 0)
_PROBLEMS = {"budget": N_("request budget spent"), "error": N_("Binance unavailable"),
             "stream": N_("stream down"), "none": N_("no data")}


@dataclass(frozen=True, slots=True)
class TaAnswer:
    text: str                # HTML
    chart: bytes | None      # PNG
    caption: str = ""
    filename: str = "ta.png"


def _symbol(text: str) -> str:
    symbol = text.upper()
    if not _SYMBOL.match(symbol):
        raise UsageError(text)
    return symbol


# ---------------------------------------------------------------------- formatting


def _price(v: float | None) -> str:
    """A price with decimals that suit its size; "-" when unknown."""
    if v is None or not math.isfinite(v):
        return "-"
    a = abs(v)
    places = 1 if a >= 1000 else 2 if a >= 10 else 4 if a >= 1 else 6
    return num(v, places)


def _fixed(v: float, places: int, *, sign: bool = False) -> str:
    return "-" if not math.isfinite(v) else f"{v:{'+' if sign else ''}.{places}f}"


def _small(v: float) -> str:
    """An oscillator value (MACD) with decimals that suit its size."""
    if not math.isfinite(v):
        return "-"
    a = abs(v)
    return f"{v:.{2 if a >= 10 else 4 if a >= 0.01 else 8}f}"


def _ago(t: Texts, seconds: float) -> str:
    if seconds < 120:
        return t("{n} s", n=int(seconds))
    if seconds < 7200:
        return t("{n} min", n=int(seconds // 60))
    return t("{n} h", n=int(seconds // 3600))


def _row(cells: list[str]) -> str:
    return " ".join(c.rjust(w) if i else c.ljust(w)
                    for i, (c, w) in enumerate(zip(cells, _WIDTHS, strict=False))).rstrip()


def _table(t: Texts, report: TaReport) -> str:
    lines = [_row([t.plain(c) for c in _COLUMNS])]
    for r in report.readings:
        v = r.values
        close = v.close
        atr_pct = v.atr / close * 100 if close else math.nan
        width = v.bb_upper - v.bb_lower
        pct_b = (close - v.bb_lower) / width * 100 if width > 0 else math.nan
        emas = "".join("-" if not math.isfinite(e) else "↑" if close > e else "↓"
                       for e in (v.ema20, v.ema50, v.ema200))
        lines.append(_row([r.timeframe, _fixed(v.rsi, 1), f"{v.macd_hist:+.3g}"
                           if math.isfinite(v.macd_hist) else "-", _fixed(v.adx, 1),
                           _fixed(atr_pct, 2 if atr_pct >= 1 else 3), _fixed(pct_b, 0),
                           _fixed(v.volume_ratio, 2),
                           emas, r.bias]))
    return "<pre>" + html.escape("\n".join(lines), quote=False) + "</pre>"


def _stale_note(t: Texts, what: str, piece: Piece) -> str | None:
    why = t.plain(_PROBLEMS.get(piece.problem, _PROBLEMS["error"]))
    if piece.value is None and piece.problem:
        return t("{what}: unavailable ({why})", what=what, why=why)
    if piece.stale and piece.age_s is not None:
        return t("{what} is {age} old ({why})", what=what, age=_ago(t, piece.age_s), why=why)
    return None


def strategy_lines(t: Texts, report: TaReport) -> list[str]:
    """Every catalog rule's verdict on the report's timeframe, and the ensemble's confidence."""
    if not report.rules and report.ensemble is None:
        return []
    lines = [t("<b>Strategies</b> on {timeframe}:", timeframe=report.timeframe)]
    for r in report.rules:
        lines.append(t("<code>{rule}</code> {bias}: {detail}", rule=r.rule, bias=r.bias,
                       detail=r.detail))
    e = report.ensemble
    if e is not None:
        if e.bias == "ERROR":
            lines.append(t("Ensemble: unavailable ({detail})", detail=e.detail))
        else:
            lines.append(t("Ensemble: <b>{bias}</b>, confidence {confidence} ({detail})",
                           bias=e.bias, confidence=f"{e.strength:.2f}", detail=e.detail))
    return lines


def ta_text(t: Texts, report: TaReport, *, quote_asset: str = "USDT",
            now_ms: int | None = None) -> str:
    """The /ta reply (HTML) for a report."""
    main = next(r for r in report.readings if r.timeframe == report.timeframe)
    lines = [t("<b>{symbol} {timeframe}</b>: {bias} ({detail})", symbol=report.symbol,
               timeframe=report.timeframe, bias=main.bias, detail=main.detail)]
    tick, mark, oi = report.ticker.value, report.mark.value, report.open_interest.value
    if tick is not None:
        lines.append(t("Price {price}, 24h {change}% (high {high}, low {low}, volume {volume})",
                       price=_price(tick.last_price), change=_fixed(tick.change_pct, 2, sign=True),
                       high=_price(tick.high), low=_price(tick.low), volume=num(tick.volume, 0)))
    else:
        lines.append(t("Last close {price}", price=_price(main.values.close)))
    if mark is not None:
        now = now_ms if now_ms is not None else (
            int(time.time() * 1000) if report.live else mark.ts_ms)
        funding = t("Mark {mark}, funding {rate}%", mark=_price(mark.mark_price),
                    rate=_fixed(mark.funding_rate * 100, 4, sign=True))
        if mark.next_funding_ms > 0:
            funding += t(", next {time} UTC (in {left})", time=utc(mark.next_funding_ms)[11:16],
                         left=_ago(t, max(0, mark.next_funding_ms - now) / 1000))
        lines.append(funding)
    if oi is not None:
        base = report.symbol.removesuffix(quote_asset) or report.symbol
        notional = oi.open_interest * mark.mark_price if mark is not None else None
        lines.append(t("Open interest {oi} {base} (≈ {notional} {asset})",
                       oi=num(oi.open_interest, 1), base=base, notional=num(notional, 0),
                       asset=quote_asset))
    lines.append(_table(t, report))
    v = main.values
    lines.append(t("{timeframe}: EMA20 {ema20}, EMA50 {ema50}, EMA200 {ema200}",
                   timeframe=report.timeframe, ema20=_price(v.ema20), ema50=_price(v.ema50),
                   ema200=_price(v.ema200)))
    lines.append(t("Bollinger {lower} / {middle} / {upper}; MACD {macd}, signal {signal}; "
                   "ATR {atr}", lower=_price(v.bb_lower), middle=_price(v.bb_middle),
                   upper=_price(v.bb_upper), macd=_small(v.macd), signal=_small(v.macd_signal),
                   atr=_price(v.atr)))
    lines += strategy_lines(t, report)
    if report.timeframe in report.last_bar_ms:
        lines.append(t("Last closed bar {time} UTC, {bars} bars", bars=main.bars,
                       time=utc(report.last_bar_ms[report.timeframe])[:16]))
    notes = [_stale_note(t, t.plain("{timeframe} candles", timeframe=tf), p)
             for tf, p in report.klines.items()]
    if report.live:
        notes += [_stale_note(t, t.plain("Mark price and funding"), report.mark),
                  _stale_note(t, t.plain("24h ticker"), report.ticker),
                  _stale_note(t, t.plain("Open interest"), report.open_interest)]
    lines += [f"<i>{n}</i>" for n in notes if n]
    return "\n".join(lines)


async def answer_ta(market: MarketData, t: Texts, symbol: str, timeframe: str | None, *,
                    chart: bool = True, quote_asset: str = "USDT") -> TaAnswer:
    """/ta without Telegram: the reply text and the chart (None when not asked or not
    possible)."""
    try:
        report = await ta_report(market, symbol, timeframe, chart=chart)
    except UnknownSymbol:
        if market.live:
            return TaAnswer(t("Unknown symbol {symbol}: Binance USDⓈ-M futures does not list "
                              "it.", symbol=symbol), None)
        return TaAnswer(t("No data for {symbol} in this replay; it has {symbols}.",
                          symbol=symbol, symbols=", ".join(_replay_symbols(market)) or "-"),
                        None)
    except NoMarketData as exc:
        return TaAnswer(t("No analysis for {symbol}: {reason}", symbol=symbol, reason=str(exc)),
                        None)
    caption = t("{symbol} {timeframe}: candles, EMA 20/50/200, Bollinger, volume, RSI, MACD",
                symbol=report.symbol, timeframe=report.timeframe)
    return TaAnswer(ta_text(t, report, quote_asset=quote_asset), report.chart, caption,
                    f"ta_{report.symbol}_{report.timeframe}.png")


def _replay_symbols(market: MarketData) -> list[str]:
    return sorted({s for s in market.traded if market.timeframes_for(s)})


# ---------------------------------------------------------------------- commands


async def ta(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    args = context.args or []
    if not 1 <= len(args) <= 2:
        raise UsageError(" ".join(args))
    symbol = _symbol(args[0])
    timeframe = args[1].lower() if len(args) == 2 else None
    if timeframe is not None and not _TIMEFRAME.match(timeframe):
        raise UsageError(args[1])
    d = deps(context)
    answer = await answer_ta(d.services.market, d.texts, symbol, timeframe,
                             quote_asset=d.settings.quote_asset)
    reply(update, context, answer.text)
    chat_id = reply_chat_id(update)
    if answer.chart is not None and chat_id is not None:
        d.outbox.send_photo(chat_id, answer.chart, answer.caption, filename=answer.filename)


async def watch(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    args = context.args or []
    action = args[0].lower() if args else ""
    if not ((action == "list" and len(args) == 1)
            or (action in ("add", "remove") and len(args) == 2)):
        raise UsageError(" ".join(args))
    d = deps(context)
    t = d.texts
    market: MarketData = d.services.market
    if action == "list":
        traded = [t("{symbol} (traded)", symbol=s) for s in market.traded]
        others = list(market.watchlist.symbols)
        reply(update, context, t("Watched ({count} of at most {limit} on the watchlist): "
                                 "{symbols}", count=len(others), limit=market.watchlist.max_size,
                                 symbols=", ".join([*traded, *others])))
        return
    symbol = _symbol(args[1])
    if not market.live:
        reply(update, context, t("/watch needs live market data; this run replays recorded "
                                 "data."))
        return
    if action == "remove":
        if symbol in market.traded:
            text = t("{symbol} is traded, so it is always watched.", symbol=symbol)
        elif market.unwatch(symbol):
            text = t("Stopped watching {symbol}.", symbol=symbol)
        else:
            text = t("{symbol} is not on the watchlist.", symbol=symbol)
        reply(update, context, text)
        return
    try:
        added = await market.watch(symbol)
    except UnknownSymbol:
        text = t("Unknown symbol {symbol}: Binance USDⓈ-M futures does not list it.",
                 symbol=symbol)
    except NoMarketData as exc:
        text = t("Cannot check {symbol} now: {reason}", symbol=symbol, reason=str(exc))
    except WatchlistFull:
        text = t("The watchlist is full ({limit} symbols); remove one first.",
                 limit=market.watchlist.max_size)
    else:
        text = (t("Watching {symbol}; its data is loading.", symbol=symbol) if added else
                t("{symbol} is already watched.", symbol=symbol))
    reply(update, context, text)


COMMANDS = (
    Command(name="ta", help="Indicators, trend verdict, funding and chart of a symbol",
            usage="/ta SYMBOL [tf]", admin_only=False, callback=ta),
    Command(name="watch", help="Symbols the market-data worker keeps current",
            usage="/watch add|remove|list [SYMBOL]", admin_only=False, callback=watch),
)
