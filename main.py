"""dort5bot: composition root and command line.

    python main.py backtest DATA... [--symbol S] [--timeframe 5s] [--strategy ID]
                   [--param k=v ...] [--timerange YYYYMMDD-YYYYMMDD] [--balance 1000]
                   [--json OUT] [--plot OUT.png]
    python main.py strategies
    python main.py run [--replay DATA... [--speed N]]
    python main.py record --out data/FILE.gz [--symbols BTCUSDT,ETHUSDT] [--streams ...]
                   [--duration SECONDS]
    python main.py secrets set|show|keygen [--passphrase]

Exit status: 0 ok, 2 bad input (settings, arguments, data files), 1 unexpected failure.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pydantic loads on first use, so `--help` answers at once
    from utils.settings import Settings

logger = logging.getLogger("dort5bot")

#: Errors that mean bad input (settings, arguments, data or state files): one line, exit 2.
#: Named, not imported: a command imports only what it needs (``backtest`` never loads the
#: Telegram, web or chart libraries), and an error class whose module was never imported cannot
#: have been raised.
ONE_LINE_ERRORS = (
    ("bootstrap", "RunError"),
    ("core.backtest.runner", "BacktestError"),
    ("core.brackets", "BracketError"),
    ("core.journal", "JournalError"),
    ("core.optimize.space", "SpaceError"),
    ("core.optimize.study", "StudyError"),
    ("core.ledger", "LedgerError"),
    ("core.persisted", "PersistError"),
    ("core.replay.source", "ReplayError"),
    ("core.state", "StateError"),
    ("core.strategies.catalog", "StrategyError"),
    ("utils.settings", "SettingsError"),
    ("web.security", "DashboardConfigError"),
)


def one_line_errors() -> tuple[type[Exception], ...]:
    """The ``ONE_LINE_ERRORS`` classes among the modules imported so far, plus the CLI's own."""
    found: list[type[Exception]] = [UsageError]
    for module, name in ONE_LINE_ERRORS:
        loaded = sys.modules.get(module)
        if loaded is not None:
            found.append(getattr(loaded, name))
    return tuple(found)


class UsageError(ValueError):
    """A command-line argument is wrong; the message says which."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="main.py", description="Binance USDⓈ-M futures bot")
    sub = p.add_subparsers(dest="command", required=True)

    bt = sub.add_parser("backtest", help="run the engine over recorded data, as fast as possible")
    bt.add_argument("data", nargs="*", help="data files (captures .gz, Binance CSVs); none: "
                                            "the stored history of --symbol (main.py download)")
    bt.add_argument("--symbol", help="trade this symbol (default: SYMBOLS, else the data's)")
    bt.add_argument("--timeframe", help="candle length, 1s..1h (e.g. 5s, 1m); klines: their "
                                        "own interval by default, or a multiple of it")
    bt.add_argument("--timerange", help="cut the data, Freqtrade syntax YYYYMMDD-YYYYMMDD "
                                        "(UTC, end exclusive; either side may be empty)")
    bt.add_argument("--strategy", help="a catalog id (see `main.py strategies`) or ensemble "
                                       "(default STRATEGY)")
    bt.add_argument("--param", action="append", default=[], metavar="K=V",
                    help="a parameter of the strategy or any setting, e.g. --param ema_fast=5 "
                         "(repeatable)")
    bt.add_argument("--balance", help="initial balance, USDT (default INITIAL_BALANCE)")
    bt.add_argument("--json", type=Path, help="write the result as JSON here")
    bt.add_argument("--plot", type=Path, help="write the equity/price chart (PNG) here")
    _add_range_args(bt, timerange=False)  # --timerange is above

    run = sub.add_parser("run", help="run the bot (paper mode by default)")
    run.add_argument("--replay", nargs="+", metavar="DATA", help="market data from files")
    run.add_argument("--speed", type=float, default=1.0,
                     help="replay speed, N x real time; 0 = as fast as possible")

    sub.add_parser("strategies", help="list the strategy catalog: ids, descriptions, "
                                      "parameters with defaults and search ranges")

    rec = sub.add_parser("record", help="record live market streams to a capture file "
                                        "that `backtest`/`run --replay` read back exactly")
    rec.add_argument("--symbols", help="comma-separated, e.g. BTCUSDT,ETHUSDT (default SYMBOLS)")
    rec.add_argument("--out", type=Path, required=True, help="output file, e.g. data/FILE.gz")
    rec.add_argument("--streams", help="stream kinds, e.g. aggTrade,bookTicker,markPrice@1s "
                                       "(default BINANCE_MARKET_STREAMS)")
    rec.add_argument("--duration", type=float, help="seconds to record (default: until Ctrl-C)")

    sec = sub.add_parser("secrets", help="API secrets encrypted at rest (SECRETS_FILE)")
    sec.add_argument("action", choices=("set", "show", "keygen"),
                     help="set: ask for the secrets (or read NAME=value lines from stdin) and "
                          "encrypt them; show: which are stored; keygen: print a new SECRETS_KEY")
    sec.add_argument("--passphrase", action="store_true",
                     help="encrypt with a passphrase (asked, or SECRETS_PASSPHRASE) instead of "
                          "SECRETS_KEY")
    _add_optimize_parser(sub)
    _add_download_parser(sub)
    return p


def _add_range_args(p: argparse.ArgumentParser, *, timerange: bool = True) -> None:
    p.add_argument("--from", dest="start", metavar="DATE", help="from this day, 00:00 UTC")
    p.add_argument("--to", dest="end", metavar="DATE", help="through this day (inclusive, UTC)")
    if timerange:
        p.add_argument("--timerange", help="cut the data, Freqtrade syntax YYYYMMDD-YYYYMMDD "
                                           "(UTC, end exclusive; either side may be empty)")


def _add_download_parser(sub: argparse._SubParsersAction) -> None:
    dl = sub.add_parser("download", help="fetch Binance's public futures archive "
                                         "(data.binance.vision) into DATA_DIR/history")
    dl.add_argument("--symbols", required=True, help="comma-separated, e.g. BTCUSDT,ETHUSDT")
    dl.add_argument("--from", dest="start", required=True, metavar="DATE", help="first day (UTC)")
    dl.add_argument("--to", dest="end", metavar="DATE", help="last day (default yesterday, UTC)")
    dl.add_argument("--kinds", default="klines:1m,fundingRate",
                    help="klines:<interval>, aggTrades, bookTicker, fundingRate, "
                         "markPriceKlines:<interval>, trades (default klines:1m,fundingRate)")
    dl.add_argument("--base-url", help="archive root or mirror (default HISTORY_BASE_URL)")


def data_range(args: argparse.Namespace) -> tuple[str | None, int | None, int | None]:
    """``(timerange, start_ms, end_ms)`` of ``--timerange`` or ``--from``/``--to`` (whole UTC
    days, inclusive: turned into the timerange ``FROM-(TO+1)``); one parser,
    core/backtest/inputs.py's."""
    from datetime import timedelta

    from core.backtest.inputs import parse_timerange
    from core.history.layout import HistoryError, parse_day

    text = args.timerange
    if args.start or args.end:
        if text:
            raise UsageError("give either --timerange or --from/--to, not both")
        try:
            first = parse_day(args.start, "--from").strftime("%Y%m%d") if args.start else ""
            last = (parse_day(args.end, "--to") + timedelta(1)).strftime("%Y%m%d") \
                if args.end else ""
        except HistoryError as exc:
            raise UsageError(str(exc)) from None
        text = f"{first}-{last}"
    try:
        start_ms, end_ms = parse_timerange(text)
    except ValueError as exc:
        raise UsageError(str(exc).replace("--timerange", "--from/--to" if args.start or
                                          args.end else "--timerange")) from None
    return text, start_ms, end_ms


def stored_data(args: argparse.Namespace, settings: Settings,
                start_ms: int | None, end_ms: int | None) -> list[str]:
    """The data files a command names, or else the stored history of ``--symbol``."""
    if args.data:
        return list(args.data)
    if not args.symbol:
        raise UsageError("give data files, or --symbol (and --from/--to) to use the history "
                         "stored by `main.py download`")
    from core.history.store import find_history

    notes: list[str] = []
    paths = find_history(settings.data_dir / "history", args.symbol, start_ms, end_ms, notes)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return [str(p) for p in paths]


def _add_optimize_parser(sub: argparse._SubParsersAction) -> None:
    op = sub.add_parser("optimize", help="search a strategy's parameters (Optuna) over data")
    op.add_argument("data", nargs="*", help="data files, as for backtest (none: the stored "
                                            "history of --symbol over --from/--to)")
    _add_range_args(op)
    op.add_argument("--strategy", help="strategy id (default STRATEGY)")
    op.add_argument("--space", action="append", default=[], metavar="K=LO:HI[:STEP]",
                    help="search range of a setting, overrides the strategy's (repeatable)")
    op.add_argument("--trials", type=int, default=100, help="trials to run now (default 100)")
    op.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    op.add_argument("--objective", default="sharpe",
                    choices=["sharpe", "sortino", "calmar", "net_pnl", "profit_factor"])
    op.add_argument("--min-trades", type=int, default=1,
                    help="a trial with fewer round trips is not scored (default 1)")
    op.add_argument("--study", help="study name (default <strategy>-<objective>-<data>); "
                                    "an existing study resumes")
    op.add_argument("--storage", help="postgresql://user@host/db or sqlite:///file "
                                      "(default DATA_DIR/optuna.sqlite3)")
    op.add_argument("--symbol", help="trade this symbol (default: as backtest)")
    op.add_argument("--param", action="append", default=[], metavar="K=V",
                    help="fixed setting for every trial, as for backtest (repeatable)")
    op.add_argument("--top", type=int, default=10, help="rows of the top table (default 10)")
    op.add_argument("--out", type=Path, help="folder for JSON, .env and charts "
                                             "(default DATA_DIR/optimize/<study>)")
    op.add_argument("--seed", type=int, help="sampler seed (reproducible suggestions)")
    op.add_argument("--walk-forward", type=int, metavar="K", help="walk-forward with K folds")
    op.add_argument("--train-days", type=float, help="walk-forward in-sample length, days")
    op.add_argument("--test-days", type=float, help="walk-forward out-of-sample length, days")


def cmd_backtest(args: argparse.Namespace) -> int:
    from core.backtest.report import (
        check_invariants,
        compute_stats,
        format_report,
        to_json,
        write_json,
    )
    from core.backtest.runner import run_backtest, stderr_progress
    from utils.settings import load_settings

    overrides = backtest_overrides(args.param, args.strategy)
    if args.timeframe:
        overrides["timeframe"] = args.timeframe
    if args.balance:
        overrides["initial_balance"] = args.balance
    overrides["trading_mode"] = "paper"
    settings = load_settings(**overrides)
    asked = args.timeframe or overrides.get("timeframe")
    timerange, start_ms, end_ms = data_range(args)
    paths = stored_data(args, settings, start_ms, end_ms)
    result = run_backtest(settings, paths, symbol=args.symbol, timeframe=asked,
                          timerange=timerange, progress=stderr_progress())
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    stats = compute_stats(result)
    check_invariants(result)
    print(format_report(result, stats))
    if args.json:
        write_json(args.json, to_json(result, stats))
        print(f"JSON written to {args.json}")
    if args.plot:
        from core.backtest.chart import render_backtest_chart
        from utils.charts import write_chart

        write_chart(args.plot, render_backtest_chart(result))
        print(f"chart written to {args.plot}")
    return 0


def backtest_overrides(items: list[str], strategy: str | None) -> dict[str, str]:
    """Settings overrides for ``backtest --strategy ID --param k=v ...``.

    A key the chosen strategy declares is one of its parameters (collected into
    ``STRATEGY_PARAMS``); any other key must be a setting. With ``--strategy`` the environment's
    ``STRATEGY_PARAMS`` is replaced by the ``--param`` values.

    Raises:
        UsageError: an item is not ``key=value`` or names neither a parameter nor a setting.
        SettingsError: a setting's value is invalid.
        core.strategies.catalog.StrategyError: unknown strategy id.
    """
    from core.strategies.catalog import ENSEMBLE, get_spec
    from core.strategies.selection import load_strategy_plugins
    from utils.settings import Settings, load_settings

    raw: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep or not key:
            raise UsageError(f"--param {item!r} is not key=value")
        raw[key] = value.strip()
    setting_keys = {k: v for k, v in raw.items() if k in Settings.model_fields}
    if strategy:
        setting_keys["strategy"] = strategy
    base = load_settings(**setting_keys)
    load_strategy_plugins(base)
    declared: frozenset[str] = frozenset()
    if base.strategy != ENSEMBLE:
        declared = frozenset(get_spec(base.strategy).params)
    rule_params = {k: v for k, v in raw.items() if k in declared}
    for key in raw:
        if key not in declared and key not in Settings.model_fields:
            raise UsageError(f"--param {key!r} is neither a parameter of {base.strategy} nor "
                             "a setting (see `main.py strategies` and .env.example)")
    out = dict(setting_keys)
    if strategy or rule_params:
        out["strategy_params"] = ",".join(f"{k}={v}" for k, v in rule_params.items())
        if not strategy and base.strategy_params:  # keep the environment's, ours on top
            out["strategy_params"] = base.strategy_params + "," + out["strategy_params"]
    return out


def cmd_strategies(args: argparse.Namespace) -> int:
    from core.strategies.catalog import catalog, plugin_errors
    from core.strategies.selection import load_strategy_plugins
    from utils.settings import load_settings

    settings = load_settings()
    load_strategy_plugins(settings)
    for spec in catalog().values():
        origin = "" if spec.origin == "builtin" else f"  [plugin {spec.origin}]"
        print(f"{spec.id}: {spec.description}{origin}")
        if spec.source:
            print(f"    source: {spec.source}")
        print(f"    warm-up: {spec.warmup()} candles")
        for name, p in spec.params.items():
            print(f"    {name} = {p.default!r:<6} ({p.kind} {p.low}..{p.high} step {p.step})"
                  + (f"  {p.help}" if p.help else ""))
    print("ensemble: members vote, a signal when their weighted agreement >= "
          "ENSEMBLE_THRESHOLD (settings ENSEMBLE_MEMBERS, ENSEMBLE_THRESHOLD, ENSEMBLE_STOPS)")
    for line in plugin_errors():
        print(f"warning: {line}", file=sys.stderr)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from bootstrap import run_bot
    from utils.settings import load_settings

    settings = load_settings()
    if args.speed < 0:
        raise UsageError("--speed must be >= 0")
    return asyncio.run(run_bot(settings, replay=args.replay, speed=args.speed))


def cmd_record(args: argparse.Namespace) -> int:
    import signal

    from core.binance.recorder import record
    from utils.settings import load_settings

    overrides = {}
    if args.symbols:
        overrides["symbols"] = args.symbols
    if args.streams:
        overrides["binance_market_streams"] = args.streams
    settings = load_settings(**overrides)
    if args.duration is not None and args.duration <= 0:
        raise UsageError("--duration must be > 0")

    async def go() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
                pass
        stats = await record(settings.binance_url("stream"), settings.symbols, args.out,
                             kinds=settings.binance_market_streams, stop=stop,
                             duration_s=args.duration,
                             silence_s=settings.binance_stream_silence_s)
        print(f"recorded {stats.frames} frames in {stats.seconds:.0f}s to {stats.path}")
        if stats.frames == 0:
            print("error: nothing was recorded (no market data arrived; is Binance reachable?)",
                  file=sys.stderr)
            return 1
        return 0

    return asyncio.run(go())


def cmd_secrets(args: argparse.Namespace) -> int:
    """``secrets set|show|keygen``: values are read with getpass (never echoed) or as
    ``NAME=value`` lines from a pipe, and never printed."""
    import getpass

    from utils.secret_store import (
        SECRET_NAMES,
        SecretStoreError,
        decrypt,
        encrypt,
        generate_key,
        needs_passphrase,
        write_secrets_file,
    )
    from utils.settings import Settings, load_settings_plain

    if args.action == "keygen":
        print(generate_key())
        return 0
    settings = load_settings_plain()
    path = settings.secrets_path
    key = settings.secrets_key.get_secret_value() if settings.secrets_key else None
    passphrase = (settings.secrets_passphrase.get_secret_value()
                  if settings.secrets_passphrase else None)
    old: dict[str, str] = {}
    try:
        if path.is_file():
            data = path.read_bytes()
            if needs_passphrase(data) and passphrase is None and sys.stdin.isatty():
                passphrase = getpass.getpass("passphrase: ")
            old = decrypt(data, key=key, passphrase=passphrase, name=f"SECRETS_FILE {path}")
        if args.action == "show":
            for name in SECRET_NAMES:
                print(f"{name}: {'stored' if old.get(name) else '-'}")
            return 0
        if args.passphrase or (key is None and passphrase is not None):
            key = None
            if passphrase is None:
                passphrase = getpass.getpass("new passphrase: ")
        elif key is None:
            raise UsageError("set SECRETS_KEY (make one with `main.py secrets keygen`) or use "
                             "--passphrase")
        new = dict(old)
        if sys.stdin.isatty():
            for name in SECRET_NAMES:
                value = getpass.getpass(f"{name} (empty keeps the stored value): ").strip()
                if value:
                    new[name] = value
        else:
            for line in sys.stdin.read().splitlines():
                name, sep, value = line.strip().partition("=")
                if not sep or name.strip() not in SECRET_NAMES:
                    raise UsageError("stdin lines must be NAME=value with NAME one of "
                                     + ", ".join(SECRET_NAMES))
                new[name.strip()] = value.strip()
        for name, value in new.items():
            field = name.lower()
            if field in Settings.model_fields:
                load_settings_plain(**{field: value})  # refuses weak ones
        write_secrets_file(path, encrypt(new, key=key,
                                         passphrase=None if key else passphrase))
    except SecretStoreError as exc:
        raise UsageError(str(exc)) from None
    print(f"{len(new)} secret(s) encrypted to {path}; values live only in memory at run time")
    return 0


def cmd_optimize(args: argparse.Namespace) -> int:
    from core.optimize.cli import run_optimize
    from utils.settings import load_settings

    overrides = backtest_overrides(args.param, args.strategy)
    overrides["trading_mode"] = "paper"
    settings = load_settings(**overrides)
    fixed = dict(item.split("=", 1) for item in args.param)
    _, start_ms, end_ms = data_range(args)
    paths = stored_data(args, settings, start_ms, end_ms)
    return run_optimize(args, settings, paths=paths, start_ms=start_ms, end_ms=end_ms,
                        fixed={k.strip().lower(): v.strip() for k, v in fixed.items()})


def cmd_download(args: argparse.Namespace) -> int:
    from core.history.cli import run_download
    from utils.settings import load_settings

    settings = load_settings()
    return run_download(args, settings)


def check_settings(*, decrypt_secrets: bool = True) -> Settings:
    """The settings every command starts from, validated the same way for every command: the
    environment and ``.env`` in full, and STRATEGY (with its parameters) against the strategy
    catalog, plugins included. A command may override values afterwards (``backtest`` always
    runs in paper mode), but ``TRADING_MODE=yolo`` is an error for it too. ``secrets`` passes
    ``decrypt_secrets=False``: it manages the SECRETS_FILE the others read.

    Raises:
        SettingsError: one line naming the variable (values are not echoed).
    """
    from core.strategies.catalog import ENSEMBLE, StrategyError, strategy_ids, validate_strategy
    from core.strategies.selection import load_strategy_plugins, params_from_settings
    from utils.settings import SettingsError, load_settings, load_settings_plain

    settings = load_settings() if decrypt_secrets else load_settings_plain()
    try:
        load_strategy_plugins(settings)
        validate_strategy(settings.strategy, params_from_settings(settings))
    except StrategyError as exc:
        known = settings.strategy == ENSEMBLE or settings.strategy in strategy_ids()
        name = "STRATEGY_PARAMS" if known and settings.strategy != ENSEMBLE else "STRATEGY"
        text = str(exc).removeprefix("STRATEGY_PARAMS: ")
        raise SettingsError(f"invalid settings: {name}: {text}") from None
    return settings


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from utils.log_setup import setup_logging
    from utils.settings import load_settings

    try:
        check_settings(decrypt_secrets=args.command != "secrets")
        if args.command == "run":
            settings = load_settings()
            setup_logging(settings.log_level, json_lines=settings.log_json)
            return cmd_run(args)
        if args.command == "record":
            setup_logging("INFO", json_lines=False)
            return cmd_record(args)
        if args.command == "secrets":
            setup_logging("WARNING", json_lines=False)
            return cmd_secrets(args)
        if args.command == "strategies":
            setup_logging("ERROR", json_lines=False)
            return cmd_strategies(args)
        setup_logging("WARNING", json_lines=False)
        if args.command == "optimize":
            return cmd_optimize(args)
        if args.command == "download":
            return cmd_download(args)
        return cmd_backtest(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if isinstance(exc, one_line_errors()):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        history = sys.modules.get("core.history.layout")
        if history is not None and isinstance(exc, history.HistoryError):
            print(f"error: {exc}", file=sys.stderr)  # a download failed: try again later
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
