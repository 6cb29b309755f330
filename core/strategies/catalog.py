"""The strategy catalog: every trend rule by id, with its parameters, ranges and warm-up.

``catalog()`` maps a rule id to its ``StrategySpec``: a one-line description, the source it
follows, its parameters (``ParamSpec``: default, search range ``low..high`` by ``step``, kind)
and a factory. The optimizer samples ``low..high``; the ranges are *search* ranges, not validity
bounds (the rule's constructor rejects values that make no sense, e.g. a fast EMA slower than the
slow one). ``warmup(params)`` is the number of closed candles a rule needs before it can decide.

Built-in rules live one per module in this package. User plugins: each ``*.py`` file in
``STRATEGY_PATH`` that defines ``STRATEGY`` (a ``StrategySpec``) or ``STRATEGIES`` (several) is
added by ``load_plugins`` at startup; a broken file is reported in one line and skipped.

``ensemble`` is not a catalog rule but a combination of them (``core.strategies.ensemble``);
``rule_factory`` and ``validate_strategy`` accept it.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from core.strategies.rules import RuleFactory
from core.strategies.spec import ParamSpec, StrategySpec

__all__ = ["ENSEMBLE", "ParamSpec", "StrategySpec", "catalog", "get_spec", "load_plugins",
           "StrategyError", "parse_param_text", "plugin_errors", "rule_factory", "strategy_ids",
           "validate_strategy"]

logger = logging.getLogger(__name__)

ENSEMBLE = "ensemble"


class StrategyError(ValueError):
    """A STRATEGY, its parameters or a plugin is wrong; the message is one line saying what."""

#: Built-in rule modules, in catalog order; each defines ``SPEC``.
BUILTIN_MODULES = ("ema_adx", "macd_cross", "rsi_reversion", "donchian_breakout", "supertrend",
                   "bollinger_squeeze", "ict_fvg")


def _builtin_specs() -> list[StrategySpec]:
    import importlib

    return [importlib.import_module(f"core.strategies.{m}").SPEC for m in BUILTIN_MODULES]


_registry: dict[str, StrategySpec] = {}
_plugin_errors: list[str] = []
_loaded_paths: set[Path] = set()


def _ensure_builtins() -> None:
    if not _registry:
        for spec in _builtin_specs():
            _registry[spec.id] = spec


def catalog() -> Mapping[str, StrategySpec]:
    """Every known rule by id: the built-ins, then plugins loaded by ``load_plugins``."""
    _ensure_builtins()
    return MappingProxyType(_registry)


def strategy_ids() -> tuple[str, ...]:
    """Valid STRATEGY values: the catalog's ids and ``ensemble``."""
    return (*catalog(), ENSEMBLE)


def get_spec(name: str) -> StrategySpec:
    """The catalog entry of ``name``.

    Raises:
        StrategyError: unknown id (the message lists the valid ones).
    """
    spec = catalog().get(name)
    if spec is None:
        raise StrategyError(f"unknown strategy {name!r}; choose from "
                            f"{', '.join(strategy_ids())}")
    return spec


def rule_factory(name: str, params: Mapping[str, Any] | None = None) -> RuleFactory:
    """A factory of fresh rule instances (one per symbol) for ``STRATEGY=name``; the
    parameters are validated now, once.

    Raises:
        StrategyError: unknown id, or parameters the rule rejects (one line).
    """
    if name == ENSEMBLE:
        from core.strategies.ensemble import ensemble_factory

        try:
            return ensemble_factory(params or {})
        except StrategyError:
            raise
        except (ValueError, TypeError) as exc:
            raise StrategyError(f"ensemble: {exc}") from None
    spec = get_spec(name)
    try:
        resolved = spec.resolve(params)
        spec.factory(**resolved)  # validate once, now
    except StrategyError:
        raise
    except (ValueError, TypeError) as exc:
        raise StrategyError(f"{name}: {exc}") from None
    return lambda: spec.factory(**resolved)


def validate_strategy(name: str, params: Mapping[str, Any] | None = None) -> None:
    """Check a STRATEGY value (and optionally its parameters) against the catalog.

    Raises:
        StrategyError: one line naming the problem (unknown id, unknown parameter, bad value).
    """
    rule_factory(name, params)


def parse_param_text(text: str, *, sep: str = ",") -> dict[str, str]:
    """``"period=10,multiplier=2.5"`` -> ``{"period": "10", "multiplier": "2.5"}``.

    Raises:
        StrategyError: an item is not ``key=value``.
    """
    out: dict[str, str] = {}
    for item in text.split(sep):
        item = item.strip()
        if not item:
            continue
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        if not eq or not key or not value.strip():
            raise StrategyError(f"parameter {item!r} is not key=value")
        out[key] = value.strip()
    return out


# --------------------------------------------------------------------------- plugins


def load_plugins(path: Path | None) -> list[str]:
    """Add the rules defined by the ``*.py`` files in ``path`` to the catalog (once per path).

    A file defines ``STRATEGY = StrategySpec(...)`` or ``STRATEGIES = [...]``. A file that
    fails to import, defines neither, or reuses an existing id is skipped, with one line logged
    and kept in ``plugin_errors()``; the others still load.

    Returns:
        The ids added.
    """
    _ensure_builtins()
    if path is None or not path.is_dir():
        return []
    path = path.resolve()
    if path in _loaded_paths:
        return []
    _loaded_paths.add(path)
    added: list[str] = []
    for file in sorted(path.glob("*.py")):
        if file.name.startswith("_"):
            continue
        try:
            specs = _load_file(file)
            for spec in specs:
                if spec.id in _registry or spec.id == ENSEMBLE:
                    raise ValueError(f"strategy id {spec.id!r} is already taken")
            for spec in specs:
                _check_plugin(spec)
                _registry[spec.id] = spec
                added.append(spec.id)
        except (Exception, SystemExit) as exc:  # a user file: nothing fatal
            line = f"strategy plugin {file.name} skipped: {type(exc).__name__}: {exc}"
            line = " ".join(line.split())[:300]
            _plugin_errors.append(line)
            logger.warning("%s", line)
    if added:
        logger.info("strategy plugins loaded from %s: %s", path, ", ".join(added))
    return added


def plugin_errors() -> tuple[str, ...]:
    """One line per plugin file that failed to load."""
    return tuple(_plugin_errors)


def _load_file(file: Path) -> list[StrategySpec]:
    module_name = f"dort5bot_strategy_plugin_{file.stem}"
    loader_spec = importlib.util.spec_from_file_location(module_name, file)
    if loader_spec is None or loader_spec.loader is None:
        raise ImportError("not a Python module")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module
    try:
        loader_spec.loader.exec_module(module)
    except (Exception, SystemExit):
        sys.modules.pop(module_name, None)
        raise
    found: Iterable[Any]
    if hasattr(module, "STRATEGIES"):
        found = list(module.STRATEGIES)
    elif hasattr(module, "STRATEGY"):
        found = [module.STRATEGY]
    else:
        raise ValueError("defines neither STRATEGY nor STRATEGIES")
    specs = []
    for spec in found:
        if not isinstance(spec, StrategySpec):
            raise TypeError(f"{spec!r} is not a StrategySpec")
        if spec.origin == "builtin":
            spec = StrategySpec(spec.id, spec.description, spec.params, spec.factory,
                                source=spec.source, origin=str(file))
        specs.append(spec)
    return specs


def _check_plugin(spec: StrategySpec) -> None:
    """Build the plugin's rule once with its defaults and read its warm-up and verdict."""
    if not spec.id or not spec.id.replace("_", "").isalnum() or spec.id != spec.id.lower():
        raise ValueError(f"strategy id {spec.id!r} must be lower-case letters, digits, _")
    rule = spec.build()
    int(rule.warmup)
    rule.verdict()


def reset_plugins_for_tests() -> None:
    """Forget loaded plugins (tests only)."""
    _registry.clear()
    _plugin_errors.clear()
    _loaded_paths.clear()
