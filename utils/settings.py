"""Settings: one frozen object read from the environment and ``.env`` (pydantic-settings).

Every variable is documented in ``.env.example`` with a safe default (paper mode). Units are in
the names: ``*_PCT`` are percents (``1.5`` = 1.5 %), ``*_FRACTION`` are fractions (``0.1`` =
10 %), ``*_MS`` milliseconds, money in USDT. A bad value raises ``SettingsError`` with one line
per offending variable; ``main.py`` prints it and exits with status 2.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from utils.log_setup import MIN_SECRET_LEN

ACCOUNT_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
TIMEFRAME_UNITS_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000}
_HOURS_RE = re.compile(r"\d{1,2}(-\d{1,2})?(,\d{1,2}(-\d{1,2})?)*")
_DAY = "(mon|tue|wed|thu|fri|sat|sun)"
_DAYS_RE = re.compile(rf"{_DAY}(-{_DAY})?(,{_DAY}(-{_DAY})?)*")


#: Default endpoints per TRADING_MODE (PROTOCOL.md §1: mainnet; §1.1/§1.2/§8.7: testnet REST on
#: demo-fapi, WS API on testnet.binancefuture.com, streams on fstream.binancefuture.com).
_MAINNET = {"rest": "https://fapi.binance.com", "ws_api": "wss://ws-fapi.binance.com/ws-fapi/v1",
            "stream": "wss://fstream.binance.com"}
BINANCE_URLS: dict[str, dict[str, str]] = {
    "paper": _MAINNET,
    "live": _MAINNET,
    "testnet": {"rest": "https://demo-fapi.binance.com",
                "ws_api": "wss://testnet.binancefuture.com/ws-fapi/v1",
                "stream": "wss://fstream.binancefuture.com"},
}


#: Binance USDⓈ-M kline intervals (PROTOCOL.md §4; no 1s for klines since 2026-07).
KLINE_INTERVALS = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d",
                   "3d", "1w")


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the variable and never its value."""


def parse_timeframe(text: str) -> int:
    """Turn ``"5s"``, ``"1m"``, ``"15m"``, ``"1h"`` into milliseconds (1 s to 1 h).

    Raises:
        ValueError: unknown unit, not a positive integer, or outside 1 s..1 h.
    """
    text = text.strip().lower()
    unit = text[-1:]
    if unit not in TIMEFRAME_UNITS_MS or not text[:-1].isdigit():
        raise ValueError(f"timeframe {text!r} is not like 5s, 1m, 15m or 1h")
    ms = int(text[:-1]) * TIMEFRAME_UNITS_MS[unit]
    if not 1_000 <= ms <= 3_600_000:
        raise ValueError(f"timeframe {text!r} is outside 1s..1h")
    return ms


class Settings(BaseSettings):
    """The bot's configuration. Field names are the environment variables, upper-cased."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True,
        env_ignore_empty=True,
        case_sensitive=False, populate_by_name=True,
    )

    # --- mode and market
    trading_mode: Literal["paper", "testnet", "live"] = "paper"
    symbols: Annotated[tuple[str, ...], NoDecode] = ("BTCUSDT",)
    data_dir: Path = Path("data")
    quote_asset: str = "USDT"
    exchange_info_path: Path | None = None  # a saved GET /fapi/v1/exchangeInfo for paper filters
    paper_start_armed: bool = True
    account: str = "main"  # this bot's account: the journal tags and filters its rows by it
    # journal in PostgreSQL (postgresql://user:password@host:5432/db); unset: DATA_DIR SQLite
    journal_url: SecretStr | None = None

    # --- risk and sizing
    leverage: int = Field(5, ge=1, le=125)
    risk_fraction: float = Field(0.1, gt=0, le=1)
    max_notional: Decimal = Field(Decimal("1000"), gt=0)
    initial_balance: Decimal = Field(Decimal("1000"), gt=0)

    # --- RISK limits (core/risk/); 0 turns a limit off. Days and hours are UTC.
    risk_daily_loss_usdt: Decimal = Field(Decimal("50"), ge=0)  # kill switch
    risk_daily_loss_pct: Decimal = Field(Decimal("5"), ge=0, le=100)  # of start-of-day equity
    risk_max_drawdown_pct: Decimal = Field(Decimal("20"), ge=0, le=100)  # from the equity peak
    risk_max_consecutive_losses: int = Field(5, ge=0)
    risk_loss_cooldown_min: int = Field(60, ge=0, le=10_080)
    risk_min_entry_interval_s: int = Field(0, ge=0, le=86_400)
    risk_max_entries_per_hour: int = Field(12, ge=0)
    risk_max_entries_per_day: int = Field(100, ge=0)
    risk_max_notional: Decimal = Field(Decimal("5000"), ge=0)  # USDT, besides MAX_NOTIONAL
    risk_max_leverage: int = Field(20, ge=0, le=125)
    risk_price_band_pct: Decimal = Field(Decimal("2"), ge=0)  # entry price vs mark price
    risk_min_liq_distance_pct: Decimal = Field(Decimal("2"), ge=0, lt=100)
    risk_liq_stop_multiple: Decimal = Field(Decimal("1.5"), ge=0)  # liq distance / stop distance
    risk_funding_window_min: int = Field(5, ge=0, le=480)
    risk_funding_rate_pct: Decimal = Field(Decimal("0.05"), ge=0)  # per settlement
    risk_trading_hours: str = "0-23"
    risk_trading_days: str = "mon-sun"
    risk_max_orders_per_minute: int = Field(20, ge=0)

    # --- strategy (TRENDING); see core/strategies/ (catalog.py lists the rules)
    strategy: str = "ema_adx"  # a catalog id (main.py strategies) or "ensemble"
    strategy_params: str = ""  # the rule's parameters, "k=v,k=v" (over its defaults)
    strategy_path: Path | None = None  # plugin folder; None: DATA_DIR/strategies + ./strategies
    ensemble_members: str = "ema_adx:1,macd:1,supertrend:1"  # id[:weight][(k=v,...)],...
    ensemble_threshold: float = Field(0.6, gt=0, le=1)  # confidence needed for a signal
    ensemble_stops: Literal["strongest", "atr"] = "strongest"  # SL/TP of the ensemble
    timeframe: str = "1m"
    ema_fast: int = Field(9, ge=1)
    ema_slow: int = Field(21, ge=2)
    adx_period: int = Field(14, ge=2)
    adx_min: float = Field(20.0, ge=0, le=100)
    atr_period: int = Field(14, ge=1)
    sl_atr: float = Field(1.5, gt=0)
    tp_atr: float = Field(3.0, gt=0)
    sl_pct: float = Field(0.0, ge=0, lt=100)  # > 0: fixed-percent SL instead of ATR
    tp_pct: float = Field(0.0, ge=0)  # > 0: fixed-percent TP instead of ATR

    # --- FOLLOW_ORDERS
    trailing_pct: float = Field(0.0, ge=0, lt=100)  # 0 = no trailing stop
    trailing_activation_pct: float = Field(0.0, ge=0)
    exit_on_reverse: bool = True
    price_source: Literal["mark", "last"] = "mark"

    # --- paper exchange
    taker_fee_pct: Decimal = Field(Decimal("0.05"), ge=0, lt=1)
    slippage_ticks: int = Field(1, ge=0, le=1000)  # ticks beyond the touch on every market fill
    slippage_pct: Decimal = Field(Decimal("0"), ge=0, lt=5)  # percent, on top of the ticks
    maintenance_margin_pct: Decimal = Field(Decimal("0.4"), gt=0, lt=50)  # symbols w/o brackets
    leverage_brackets_path: Path | None = None  # saved GET /fapi/v1/leverageBracket (paper)
    price_stale_s: float = Field(60.0, ge=0, le=86_400)  # paper: prices older expire; 0 = never

    # --- replay
    replay_reorder_ms: int = Field(2_000, ge=0, le=600_000)

    # --- edge sanity checks of exchange and market input (core/sanity.py)
    sanity_max_price_jump_pct: float = Field(10.0, gt=0, le=1000)  # from the last price
    sanity_max_future_s: float = Field(60.0, gt=0, le=86_400)  # timestamp ahead of the clock

    # --- logging
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = True

    # --- health and metrics over HTTP (GET /healthz, /metrics); off when unset. PORT (set by
    # Render and most container platforms) is read too.
    http_port: int | None = Field(None, ge=0, le=65535,
                                  validation_alias=AliasChoices("HTTP_PORT", "PORT"))
    http_host: str = "127.0.0.1"  # 0.0.0.0 in the Docker image

    # --- dashboard API and page on the same server (web/dashboard): /api/v1, /ws, /
    api_token: SecretStr | None = None  # bearer token; unset = API off
    api_enabled: bool = True  # False: only /healthz and /metrics (no API, no page)
    api_cors_origins: Annotated[tuple[str, ...], NoDecode] = ()  # allowed origins; none = closed
    api_action_rate_per_min: int = Field(6, ge=1, le=600)  # POST actions per minute, all clients
    api_ws_queue: int = Field(256, ge=8, le=100_000)  # messages buffered per WebSocket client
    api_auth_failures_per_min: int = Field(30, ge=1, le=100_000)  # wrong tokens, then 429

    # --- secrets (later adapters); never formatted
    binance_api_key: SecretStr | None = None
    binance_api_secret: SecretStr | None = None
    telegram_bot_token: SecretStr | None = None
    # encrypted at rest (`main.py secrets set`); plain variables above win over the file
    secrets_file: Path | None = None  # default DATA_DIR/secrets.enc
    secrets_key: SecretStr | None = None  # a Fernet key (`main.py secrets keygen`)
    secrets_passphrase: SecretStr | None = None  # or a passphrase (scrypt)

    # --- Binance: endpoints (None = the TRADING_MODE default, see BINANCE_URLS), keys, adapter
    binance_rest_url: str | None = None  # base, e.g. https://fapi.binance.com
    binance_ws_api_url: str | None = None  # full, e.g. wss://ws-fapi.binance.com/ws-fapi/v1
    binance_stream_url: str | None = None  # base; the bot appends /public, /market, /private
    binance_private_key_path: Path | None = None  # Ed25519 PEM (instead of BINANCE_API_SECRET)
    binance_margin_type: Literal["CROSSED", "ISOLATED"] | None = None  # None: leave as it is
    working_type: Literal["MARK_PRICE", "CONTRACT_PRICE"] = "MARK_PRICE"  # SL/TP trigger price
    recv_window_ms: int = Field(5_000, ge=100, le=60_000)
    binance_rate_limit_fraction: float = Field(0.8, gt=0, le=1)  # share of each limit we use
    binance_market_streams: Annotated[tuple[str, ...], NoDecode] = (
        "aggTrade", "bookTicker", "markPrice@1s")
    binance_stream_silence_s: float = Field(10.0, gt=0, le=600)  # watchdog: reconnect after
    binance_public_silence_s: float = Field(600.0, gt=0, le=86_400)  # /public: pinged meanwhile
    binance_pong_timeout_s: float = Field(120.0, gt=0, le=600)  # our pings' pong deadline
    # routed (/public, /market, /private) | unrouted (/stream, /ws/<key>) | auto: routed on
    # mainnet, routed with a fallback to unrouted on the testnet
    binance_stream_paths: Literal["auto", "routed", "unrouted"] = "auto"
    # --- never naked (core/binance/adopt.py, protective.py, reconcile_loop.py)
    adopt_sl_pct: Decimal = Field(Decimal(3), gt=0, le=50)  # stop of an adopted position, %
    adopt_tp_pct: Decimal = Field(Decimal(0), ge=0, le=500)  # its take profit, % (0: none)
    adopt_sl_atr: Decimal = Field(Decimal(0), ge=0, le=50)  # or this many ATRs (0: use the %)
    adopt_atr_interval: Literal["1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "1d"] = "15m"
    stop_failure_action: Literal["replace", "close"] = "replace"  # stop ended unfilled
    reconcile_interval_s: float = Field(300.0, ge=0, le=86_400)  # periodic pass (0: off)
    unknown_order_timeout_s: float = Field(600.0, ge=1, le=86_400)  # UNKNOWN outcome horizon
    exchange_info_refresh_s: float = Field(3600.0, ge=0, le=86_400)  # filters re-read (0: off)

    # --- Telegram (token above, with the secrets): see handlers/host.py
    telegram_admin_ids: Annotated[tuple[int, ...], NoDecode] = ()  # numeric user ids
    telegram_api_base_url: str | None = None  # e.g. http://127.0.0.1:8081/bot (local Bot API)
    bot_language: Literal["en", "tr"] = "en"
    daily_report_hour: int = Field(0, ge=0, le=23)  # UTC hour of the daily summary

    # --- market data: the worker cache behind /ta and /watch (core/market/data.py)
    watchlist: Annotated[tuple[str, ...], NoDecode] = ()  # watched besides SYMBOLS
    market_timeframes: Annotated[tuple[str, ...], NoDecode] = ("1m", "5m", "15m", "1h", "4h")
    market_history_bars: int = Field(499, ge=50, le=1500)  # klines per timeframe (499: weight 2)
    market_worker_budget_fraction: float = Field(0.2, gt=0, le=1)  # of REQUEST_WEIGHT per minute
    market_refresh_s: float = Field(5.0, ge=0.5, le=3600)  # worker pass interval
    market_ttl_klines_s: float = Field(60.0, gt=0, le=86_400)
    market_ttl_mark_s: float = Field(10.0, gt=0, le=86_400)
    market_ttl_ticker_s: float = Field(60.0, gt=0, le=86_400)
    market_ttl_open_interest_s: float = Field(60.0, gt=0, le=86_400)
    market_ttl_symbols_s: float = Field(3600.0, gt=0, le=86_400)
    market_watchlist_max: int = Field(30, ge=1, le=100)
    market_analysis_executor: Literal["process", "thread"] = "process"

    # --- research: historical data and parameter search (core/history, core/optimize)
    history_base_url: str = "https://data.binance.vision"  # archive root (or a mirror)
    optimize_heartbeat_s: int = Field(10, ge=1, le=3600)  # a dead worker's trial fails after 3x

    @field_validator("binance_api_key", "binance_api_secret", "telegram_bot_token")
    @classmethod
    def _check_secret(cls, v: SecretStr | None) -> SecretStr | None:
        # A short or everyday value cannot be masked in logs without revealing itself (every
        # "USDT" would become "***"); real keys are 64 characters, bot tokens about 46.
        if v is not None and v.get_secret_value():
            text = v.get_secret_value().strip()
            if len(text) < MIN_SECRET_LEN or text.upper() in _COMMON_WORDS:
                raise ValueError(f"must be the real credential (at least {MIN_SECRET_LEN} "
                                 "characters); a short or common value cannot be kept out of "
                                 "logs")
        return v

    @field_validator("telegram_admin_ids", mode="before")
    @classmethod
    def _split_admin_ids(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool):
            v = [v]
        if isinstance(v, str):
            v = [p.strip() for p in v.split(",") if p.strip()]
        if isinstance(v, (list, tuple)):
            out = []
            for item in v:
                text = str(item).strip()
                if isinstance(item, bool) or not text.isdigit() or int(text) <= 0:
                    raise ValueError("must be comma-separated numeric Telegram user ids, "
                                     "e.g. 123456789,987654321")
                out.append(int(text))
            return tuple(dict.fromkeys(out))
        return v

    @field_validator("binance_rest_url", "binance_ws_api_url", "binance_stream_url")
    @classmethod
    def _check_binance_url(cls, v: str | None, info: Any) -> str | None:
        if v is None or not v.strip():
            return None
        v = v.strip().rstrip("/")
        schemes = ("http://", "https://") if info.field_name == "binance_rest_url" else (
            "ws://", "wss://")
        if not v.startswith(schemes):
            raise ValueError(f"must start with {' or '.join(schemes)}")
        return v

    @field_validator("binance_market_streams", mode="before")
    @classmethod
    def _split_streams(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [p.strip() for p in v.split(",") if p.strip()]
        if isinstance(v, (list, tuple)):
            out = tuple(str(s).strip() for s in v)
            for s in out:
                if not s or not all(c.isalnum() or c in "@_" for c in s):
                    raise ValueError("must be comma-separated stream kinds like "
                                     "aggTrade,bookTicker,markPrice@1s,kline_1m")
            return out
        return v

    @field_validator("telegram_api_base_url")
    @classmethod
    def _check_base_url(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        v = v.strip()
        if not v.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL ending in /bot, "
                             "e.g. http://127.0.0.1:8081/bot")
        return v

    @model_validator(mode="after")
    def _check_telegram(self) -> Settings:
        if self.telegram_bot_token is not None and not self.telegram_admin_ids:
            raise ValueError("TELEGRAM_ADMIN_IDS is required when TELEGRAM_BOT_TOKEN is set "
                             "(only those users may control the bot)")
        return self

    @field_validator("symbols", mode="before")
    @classmethod
    def _split_symbols(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [s for s in (p.strip() for p in v.split(",")) if s]
        if isinstance(v, (list, tuple)):
            out = tuple(str(s).strip().upper() for s in v)
            for s in out:
                if not s.isalnum():
                    # never echo the value (SettingsError contract)
                    raise ValueError("each symbol must be letters and digits, e.g. BTCUSDT")
            if not out:
                raise ValueError("at least one symbol is required")
            return out
        return v

    @field_validator("risk_trading_hours")
    @classmethod
    def _check_trading_hours(cls, v: str) -> str:
        if not _HOURS_RE.fullmatch(v.replace(" ", "")):
            raise ValueError("must be UTC hours like 0-23 or 8-16,20 (22-3 wraps midnight)")
        if any(int(h) > 23 for h in re.findall(r"\d+", v)):
            raise ValueError("hours must be within 0..23")
        return v.strip()

    @field_validator("risk_trading_days")
    @classmethod
    def _check_trading_days(cls, v: str) -> str:
        if not _DAYS_RE.fullmatch(v.replace(" ", "").lower()):
            raise ValueError("must be weekdays like mon-sun, mon-fri or sat,sun")
        return v.strip().lower()

    @field_validator("timeframe")
    @classmethod
    def _check_timeframe(cls, v: str) -> str:
        try:
            parse_timeframe(v)
        except ValueError:  # its message quotes the value; SettingsError must not
            raise ValueError("must be like 5s, 1m, 15m or 1h, within 1s..1h") from None
        return v.strip().lower()

    @field_validator("account")
    @classmethod
    def _check_account(cls, v: str) -> str:
        v = v.strip()
        if not ACCOUNT_RE.fullmatch(v):
            raise ValueError("must be 1-64 letters, digits, '_', '-' or '.'")
        return v

    @field_validator("journal_url")
    @classmethod
    def _check_journal_url(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not v.get_secret_value().strip().startswith(
                ("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql://user:password@host:port/database URL")
        return v

    @field_validator("strategy")
    @classmethod
    def _check_strategy(cls, v: str) -> str:
        v = v.strip().lower()
        if not v or not v.replace("_", "").isalnum():
            raise ValueError("must be a strategy id (see `main.py strategies`)")
        return v

    @model_validator(mode="after")
    def _check_emas(self) -> Settings:
        if self.ema_fast >= self.ema_slow:
            raise ValueError("EMA_FAST must be smaller than EMA_SLOW")
        return self

    @property
    def timeframe_ms(self) -> int:
        return parse_timeframe(self.timeframe)

    def binance_url(self, which: str) -> str:
        """The effective Binance endpoint ``which`` ("rest", "ws_api" or "stream"): the
        BINANCE_*_URL override, else the default of TRADING_MODE (paper uses mainnet market
        data). Defaults: shared/binance/PROTOCOL.md §1 and §8.7."""
        override = getattr(self, f"binance_{which}_url")
        return override or BINANCE_URLS[self.trading_mode][which]

    @property
    def db_path(self) -> Path:
        return self.data_dir / "journal.sqlite3"

    @property
    def secrets_path(self) -> Path:
        return self.secrets_file or self.data_dir / "secrets.enc"

    @property
    def state_path(self) -> Path:
        return self.data_dir / "state.json"

    def public_view(self) -> dict[str, str]:
        """Effective settings as strings, secrets shown only as set/unset."""
        out: dict[str, str] = {}
        for name, value in self:
            if isinstance(value, SecretStr) or name in _SECRET_FIELDS:
                out[name] = "(set)" if value else "(unset)"
            elif isinstance(value, tuple):
                out[name] = ",".join(str(v) for v in value)
            else:
                out[name] = "" if value is None else str(value)
        return out

    # --- market data validators

    @field_validator("api_cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [p.strip() for p in v.split(",") if p.strip()]
        if isinstance(v, (list, tuple)):
            out = tuple(dict.fromkeys(str(o).strip().rstrip("/") for o in v))
            if not all(o.startswith(("http://", "https://")) for o in out):
                raise ValueError("must be comma-separated origins, e.g. http://127.0.0.1:8080")
            return out
        return v

    @field_validator("watchlist", mode="before")
    @classmethod
    def _split_watchlist(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [p.strip() for p in v.split(",") if p.strip()]
        if isinstance(v, (list, tuple)):
            out = tuple(dict.fromkeys(str(s).strip().upper() for s in v))
            if not all(s.isalnum() for s in out):
                raise ValueError("must be comma-separated symbols, e.g. ETHUSDT,SOLUSDT")
            return out
        return v

    @field_validator("market_timeframes", mode="before")
    @classmethod
    def _split_market_timeframes(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [p.strip() for p in v.split(",") if p.strip()]
        if isinstance(v, (list, tuple)):
            out = tuple(dict.fromkeys(str(s).strip() for s in v))
            if not out or not all(s in KLINE_INTERVALS for s in out):
                raise ValueError("must be comma-separated Binance kline intervals, e.g. "
                                 "1m,5m,15m,1h,4h")
            return out
        return v


_SECRET_FIELDS = {"binance_api_key", "binance_api_secret", "telegram_bot_token", "api_token",
                  "secrets_key", "secrets_passphrase"}
_COMMON_WORDS = frozenset({"USDT", "BTCUSDT", "ETHUSDT", "BUSD", "TEST", "SECRET", "PASSWORD",
                           "CHANGEME", "CHANGE_ME", "NONE", "NULL", "YOUR_API_KEY",
                           "YOUR_API_SECRET", "XXXXXXXXXXXXXXXXXXXX"})


def load_settings(**overrides: Any) -> Settings:
    """Build Settings from environment, ``.env`` and ``overrides`` (highest priority), then
    fill unset secrets from the encrypted SECRETS_FILE when it exists.

    Raises:
        SettingsError: one line per invalid variable, naming it; values are not echoed.
    """
    return _load(overrides, decrypt_secrets=True)


def load_settings_plain(**overrides: Any) -> Settings:
    """``load_settings`` without reading SECRETS_FILE (for `main.py secrets`, which manages it).

    Raises:
        SettingsError: as ``load_settings``.
    """
    return _load(overrides, decrypt_secrets=False)


def _load(overrides: dict[str, Any], *, decrypt_secrets: bool) -> Settings:
    """Settings from the environment and ``overrides``.

    Raises:
        SettingsError: one line per invalid variable, naming it; values are not echoed.
    """
    try:
        settings = Settings(**overrides)
        from_file = _secrets_from_file(settings) if decrypt_secrets else {}
        if from_file:
            settings = Settings(**{**from_file, **overrides})
        return settings
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "settings"
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{loc.upper()}: {msg}")
        raise SettingsError("invalid settings: " + "; ".join(lines)) from None


def _secrets_from_file(settings: Settings) -> dict[str, str]:
    """Secrets from the encrypted SECRETS_FILE for the fields still unset (the environment and
    overrides win). Nothing when the file does not exist.

    Raises:
        SettingsError: the file exists but cannot be decrypted (no or wrong key/passphrase,
            damaged); the message names SECRETS_FILE, never a value.
    """
    path = settings.secrets_path
    if not path.is_file():
        return {}
    from utils.secret_store import SecretStoreError, decrypt

    key = settings.secrets_key.get_secret_value() if settings.secrets_key else None
    passphrase = (settings.secrets_passphrase.get_secret_value()
                  if settings.secrets_passphrase else None)
    try:
        values = decrypt(path.read_bytes(), key=key, passphrase=passphrase,
                         name=f"SECRETS_FILE {path}")
    except (OSError, SecretStoreError) as exc:
        raise SettingsError(f"invalid settings: {exc}") from None
    out = {}
    for name, value in values.items():
        field = name.lower()
        if field in Settings.model_fields and getattr(settings, field) is None:
            out[field] = value
    return out
