"""Which strategy runs: settings, the persisted `/strategy set` choice, and plugin folders.

Resolution, lowest to highest priority:

1. the rule's defaults (catalog);
2. for ``ema_adx`` only, the historical settings ``EMA_FAST``, ``EMA_SLOW``, ``ADX_PERIOD``,
   ``ADX_MIN``, ``ATR_PERIOD``, ``SL_ATR``, ``TP_ATR``, ``SL_PCT``, ``TP_PCT``;
3. ``STRATEGY`` and ``STRATEGY_PARAMS`` (``k=v,k=v``);
4. when the engine persists (paper/live runs, not backtests), ``DATA_DIR/strategy.json`` written
   by ``/strategy set`` (``{"version": 1, "strategy": id, "params": {k: v}}``): it replaces 3
   entirely. It is validated on load like the store of record: a damaged file, an unknown
   strategy or parameters the rule rejects stop the start (``PersistError`` naming the file and
   the field); the file is never rewritten behind the trader's back.

``STRATEGY=ensemble`` takes ``ENSEMBLE_MEMBERS``, ``ENSEMBLE_THRESHOLD``, ``ENSEMBLE_STOPS`` and,
for ATR stops, ``ATR_PERIOD``/``SL_ATR``/``TP_ATR``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.persisted import Fields, read_json_file
from core.strategies.catalog import (
    ENSEMBLE,
    StrategyError,
    load_plugins,
    parse_param_text,
    rule_factory,
    strategy_ids,
)
from core.strategies.rules import RuleFactory
from utils.files import write_json_atomic
from utils.settings import Settings

#: ema_adx parameters that are settings of their own (EMA_FAST, ...), for compatibility.
EMA_ADX_SETTINGS = ("ema_fast", "ema_slow", "adx_period", "adx_min", "atr_period", "sl_atr",
                    "tp_atr", "sl_pct", "tp_pct")
PROJECT_DIR = Path(__file__).resolve().parents[2]
CHOICE_FILE = "strategy.json"
CHOICE_VERSION = 1


@dataclass(frozen=True, slots=True)
class StrategyChoice:
    """The active strategy: id, its parameters (the overrides given, not the defaults) and
    where it came from (``settings`` or ``persisted``)."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    origin: str = "settings"

    def factory(self) -> RuleFactory:
        """Raises StrategyError (one line) if the choice is not valid."""
        return rule_factory(self.name, self.params)


def plugin_dirs(settings: Settings) -> list[Path]:
    """``STRATEGY_PATH``, or else ``DATA_DIR/strategies`` and the project's ``strategies/``."""
    if settings.strategy_path is not None:
        return [settings.strategy_path]
    return [settings.data_dir / "strategies", PROJECT_DIR / "strategies"]


def load_strategy_plugins(settings: Settings) -> list[str]:
    """Load the plugin folders (once per folder per process); the ids added."""
    added: list[str] = []
    for folder in plugin_dirs(settings):
        added += load_plugins(folder)
    return added


def params_from_settings(settings: Settings, name: str | None = None) -> dict[str, Any]:
    """The parameters of ``name`` (default ``STRATEGY``) as the settings give them.

    Raises:
        StrategyError: ``STRATEGY_PARAMS`` is not ``k=v,...``.
    """
    name = name or settings.strategy
    if name == ENSEMBLE:
        return {"members": settings.ensemble_members, "threshold": settings.ensemble_threshold,
                "stops": settings.ensemble_stops, "atr_period": settings.atr_period,
                "sl_atr": settings.sl_atr, "tp_atr": settings.tp_atr}
    out: dict[str, Any] = {}
    if name == "ema_adx":
        out = {k: getattr(settings, k) for k in EMA_ADX_SETTINGS}
    if name == settings.strategy:
        try:
            out.update(parse_param_text(settings.strategy_params))
        except StrategyError as exc:
            raise StrategyError(f"STRATEGY_PARAMS: {exc}") from None
    return out


def choice_path(settings: Settings) -> Path:
    return settings.data_dir / CHOICE_FILE


def active_strategy(settings: Settings, *, persist: bool) -> StrategyChoice:
    """The strategy to run, validated (plugins are loaded first).

    Raises:
        StrategyError: the settings' strategy or parameters are not valid (one line).
        core.persisted.PersistError: ``strategy.json`` is damaged or no longer validates (a
            plugin removed, a file edited by hand); names the file and the field.
    """
    load_strategy_plugins(settings)
    if persist:
        persisted = read_choice(choice_path(settings))
        if persisted is not None:
            return persisted
    choice = StrategyChoice(settings.strategy, params_from_settings(settings))
    choice.factory()
    return choice


def save_choice(settings: Settings, choice: StrategyChoice) -> None:
    """Persist a ``/strategy set`` choice atomically (after validating it).

    Raises:
        StrategyError: not a valid choice. OSError: the file cannot be written.
    """
    choice.factory()
    write_json_atomic(choice_path(settings), {"version": CHOICE_VERSION,
                                              "strategy": choice.name,
                                              "params": dict(choice.params)}, indent=1)


def read_choice(path: Path) -> StrategyChoice | None:
    """The persisted ``/strategy set`` choice, validated against the catalog (load the plugins
    first); None when there is no file.

    Raises:
        core.persisted.PersistError: not JSON, an unknown field or schema version, an unknown
            strategy id, a parameter that is not a string, integer, finite number or boolean,
            or parameters the rule rejects (names the file and the field).
    """
    doc = read_json_file(path)
    if doc is None:
        return None
    f = Fields(doc, str(path))
    f.only("version", "strategy", "params")
    f.version(CHOICE_VERSION)
    name = f.str_("strategy")
    if name not in strategy_ids():
        f.fail("strategy", f"is {name[:40]!r}, not a known strategy (main.py strategies lists"
                           " them; a plugin removed?)")
    params = f.obj("params")
    for key, value in params.items():
        if not isinstance(value, (str, int, float)) or (
                isinstance(value, float) and not math.isfinite(value)):
            f.fail(f"params.{key}", f"must be a string, integer, finite number or boolean,"
                                    f" got {value!r}"[:120])
    choice = StrategyChoice(name, dict(params), origin="persisted")
    try:
        choice.factory()
    except StrategyError as exc:
        f.fail("params", f"is not valid ({exc})")
    return choice
