"""Search spaces: which parameters a study varies, and over which range.

A range is ``name=low:high[:step]`` on the command line (``--space ema_fast=3:20``), where
``name`` is a parameter of the strategy (``main.py strategies`` lists them) or a setting (lower
case, as ``--param``: ``trailing_pct``, ``leverage``...). The strategy's own parameters are
searched over the ranges its catalog entry declares (``core.strategies.spec.ParamSpec``);
``--space`` overrides one of them or adds a setting. Integers are searched over integers (step
1 unless given), floats continuously or on a grid of ``step``, booleans over {False, True}.

A trial's values reach the engine as settings: the strategy's parameters through
``STRATEGY_PARAMS`` (over any fixed ``--param`` ones), settings directly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from utils.settings import Settings

Kind = Literal["int", "float", "bool"]


class SpaceError(ValueError):
    """A search range is malformed or names nothing searchable; one-line message."""


@dataclass(frozen=True, slots=True)
class ParamRange:
    """Search ``name`` over ``[low, high]``; ``step`` None = continuous (floats only).
    ``rule`` is True for a parameter of the strategy, False for a setting."""

    name: str
    low: float
    high: float
    step: float | None = None
    kind: Kind = "float"
    rule: bool = True

    def suggest(self, trial: Any) -> int | float | bool:
        """Ask an Optuna trial for a value in this range."""
        if self.kind == "bool":
            return bool(trial.suggest_categorical(self.name, [False, True]))
        if self.kind == "int":
            return int(trial.suggest_int(self.name, int(self.low), int(self.high),
                                         step=int(self.step or 1)))
        return float(trial.suggest_float(self.name, self.low, self.high, step=self.step))

    def text(self) -> str:
        """``low:high[:step]`` as typed on the command line."""
        def num(x: float) -> str:
            return str(int(x)) if self.kind != "float" or float(x).is_integer() else repr(x)
        return f"{num(self.low)}:{num(self.high)}" + (f":{num(self.step)}" if self.step else "")


def _rule_params(strategy: str) -> Mapping[str, Any]:
    from core.strategies.catalog import ENSEMBLE, get_spec

    return {} if strategy == ENSEMBLE else get_spec(strategy).params


def _setting_kind(name: str) -> Kind | None:
    field = Settings.model_fields.get(name)
    if field is None:
        return None
    if field.annotation is bool:
        return "bool"
    return "int" if field.annotation is int else "float"


def parse_range(item: str, strategy: str) -> ParamRange:
    """``"ema_fast=3:20"`` / ``"sl_atr=0.5:4:0.25"`` -> ParamRange.

    Raises:
        SpaceError: not ``name=low:high[:step]``, neither a parameter of ``strategy`` nor a
            setting, low > high, step <= 0, or a fraction for an integer.
        core.strategies.catalog.StrategyError: unknown strategy.
    """
    name, sep, spec = item.partition("=")
    name = name.strip().lower()
    parts = spec.split(":")
    if not sep or not name or len(parts) not in (2, 3):
        raise SpaceError(f"--space {item!r} is not name=low:high[:step]")
    params = _rule_params(strategy)
    kind: Kind | None = params[name].kind if name in params else _setting_kind(name)
    if kind is None or name in ("strategy", "strategy_params"):
        raise SpaceError(f"--space {name!r} is neither a parameter of {strategy} nor a setting "
                         f"(see `main.py strategies` and .env.example)")
    try:
        nums = [float(p) for p in parts]
    except ValueError:
        raise SpaceError(f"--space {item!r}: bounds must be numbers") from None
    if not all(math.isfinite(x) for x in nums):
        raise SpaceError(f"--space {item!r}: bounds must be finite")
    low, high = nums[0], nums[1]
    step = nums[2] if len(nums) == 3 else None
    if low > high:
        raise SpaceError(f"--space {item!r}: low is above high")
    if step is not None and step <= 0:
        raise SpaceError(f"--space {item!r}: step must be > 0")
    if kind != "float" and not all(x.is_integer() for x in nums):
        raise SpaceError(f"--space {item!r}: {name} takes whole numbers")
    return ParamRange(name, low, high, step, kind, name in params)


def strategy_space(strategy: str, overrides: Iterable[str] = ()) -> list[ParamRange]:
    """The ranges a study searches: the strategy's catalog ranges, then ``--space`` items.

    Raises:
        SpaceError: a bad ``--space`` item, or nothing to search (``ensemble`` without
            ``--space``).
        core.strategies.catalog.StrategyError: unknown strategy.
    """
    ranges: dict[str, ParamRange] = {}
    for name, p in _rule_params(strategy).items():
        if p.low == p.high:
            continue
        step = None if p.kind == "float" and not p.step else p.step
        ranges[name] = ParamRange(name, float(p.low), float(p.high),
                                  None if step is None else float(step), p.kind, True)
    for item in overrides:
        r = parse_range(item, strategy)
        ranges[r.name] = r
    if not ranges:
        raise SpaceError(f"strategy {strategy!r} has no search ranges; give --space "
                         f"name=low:high for each parameter to search")
    return list(ranges.values())


def check_bounds(strategy: str, ranges: Iterable[ParamRange]) -> None:
    """Each bound must be a valid value of its parameter or setting, on its own.

    Raises:
        SpaceError: naming the range and the bound.
    """
    from utils.settings import SettingsError, load_settings

    params = _rule_params(strategy)
    for r in ranges:
        for bound in (r.low, r.high):
            value: Any = int(bound) if r.kind != "float" else bound
            if r.rule:
                try:
                    params[r.name].coerce(r.name, value)
                except ValueError as exc:
                    raise SpaceError(f"--space {r.name}={r.text()}: {exc}") from None
                continue
            try:
                load_settings(**{r.name: bool(value) if r.kind == "bool" else value})
            except SettingsError as exc:
                if f"{r.name.upper()}:" in str(exc):
                    raise SpaceError(f"--space {r.name}={r.text()}: {value} is not a valid "
                                     f"{r.name.upper()}") from None


def apply(settings: Settings, ranges: Iterable[ParamRange], values: Mapping[str, Any]
          ) -> Settings:
    """``settings`` with a trial's ``values``: rule parameters appended to ``STRATEGY_PARAMS``
    (so they win over the fixed ones), settings replaced. Not validated here: the engine's
    rule factory rejects a bad combination (``StrategyError``) when it is built."""
    rule = {r.name for r in ranges if r.rule}
    update: dict[str, Any] = {k: v for k, v in values.items() if k not in rule}
    pairs = [f"{k}={_text(v)}" for k, v in values.items() if k in rule]
    if pairs:
        base = settings.strategy_params.strip().strip(",")
        update["strategy_params"] = ",".join(([base] if base else []) + pairs)
    return settings.model_copy(update=update)


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:g}" if v == float(f"{v:g}") else repr(v)
    return str(v)
