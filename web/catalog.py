"""The strategy catalog as the page shows it (``core.strategies.catalog``)."""

from __future__ import annotations

from typing import Any

from core.strategies.catalog import catalog


def catalog_entries() -> list[dict[str, Any]]:
    """``[{"id", "description", "source", "origin", "params": [{"name", "default", "low",
    "high", "step", "kind", "help"}]}]`` sorted by id; ``origin`` is ``builtin`` or
    ``plugin`` (a plugin's file path is not shown)."""
    out = []
    for sid, spec in sorted(catalog().items()):
        out.append({
            "id": sid, "description": spec.description, "source": spec.source,
            "origin": "builtin" if spec.origin == "builtin" else "plugin",
            "params": [{"name": name, "default": p.default, "low": p.low, "high": p.high,
                        "step": p.step, "kind": p.kind, "help": p.help}
                       for name, p in spec.params.items()],
        })
    return out
