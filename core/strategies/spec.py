"""Catalog entries: a rule's parameters (``ParamSpec``) and its description (``StrategySpec``).

Kept apart from the registry (``core.strategies.catalog``) so rule modules and user plugins can
declare their spec without importing the registry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from core.strategies.rules import TrendRule

ParamKind = Literal["int", "float", "bool"]


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One parameter: its default and its search range (inclusive) for the optimizer.

    ``kind`` is ``int``, ``float`` or ``bool``; for ``bool`` the range is 0..1 step 1.
    """

    default: float | int | bool
    low: float | int
    high: float | int
    step: float | int
    kind: ParamKind = "float"
    help: str = ""

    def coerce(self, name: str, value: Any) -> float | int | bool:
        """``value`` (a number or its text, e.g. from ``--param``) as this kind.

        Raises:
            ValueError: not a valid number/boolean of this kind.
        """
        try:
            if self.kind == "bool":
                if isinstance(value, str):
                    text = value.strip().lower()
                    if text not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                        raise ValueError
                    return text in ("true", "1", "yes", "on")
                return bool(value)
            if self.kind == "int":
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError
                return int(value.strip() if isinstance(value, str) else value)
            out = float(value)
            if out != out or out in (float("inf"), float("-inf")):
                raise ValueError
            return out
        except (TypeError, ValueError):
            raise ValueError(f"parameter {name}={value!r} is not a valid {self.kind}") from None


@dataclass(frozen=True, slots=True)
class StrategySpec:
    """A catalog entry: ``factory(**params)`` builds a fresh rule (one per symbol).

    Args:
        id: the STRATEGY value, lower case.
        description: one line for ``main.py strategies``, /strategy and /ta.
        params: name -> ParamSpec; every parameter the factory takes.
        factory: a callable taking the parameters as keyword arguments and returning a
            ``TrendRule``; raises ValueError for parameters it rejects.
        source: the book, paper or indicator definition the rule follows.
        origin: ``builtin`` or the plugin file's path.
    """

    id: str
    description: str
    params: Mapping[str, ParamSpec]
    factory: Callable[..., TrendRule]
    source: str = ""
    origin: str = "builtin"
    defaults: Mapping[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        object.__setattr__(self, "defaults",
                           MappingProxyType({k: p.default for k, p in self.params.items()}))

    def resolve(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults with ``overrides`` applied and coerced to each parameter's kind.

        Raises:
            ValueError: an unknown parameter name or a value of the wrong kind.
        """
        out = dict(self.defaults)
        for key, value in (overrides or {}).items():
            spec = self.params.get(key)
            if spec is None:
                known = ", ".join(self.params) or "none"
                raise ValueError(f"{self.id} has no parameter {key!r} (parameters: {known})")
            out[key] = spec.coerce(key, value)
        return out

    def build(self, overrides: Mapping[str, Any] | None = None) -> TrendRule:
        """A fresh rule with ``overrides`` on the defaults. Raises ValueError as ``resolve``
        does, or when the rule rejects the combination."""
        return self.factory(**self.resolve(overrides))

    def warmup(self, overrides: Mapping[str, Any] | None = None) -> int:
        """Closed candles the rule needs before its first possible decision."""
        return int(self.build(overrides).warmup)
