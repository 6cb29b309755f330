"""Stored backtest and optimization results under DATA_DIR, for the Backtests screen.

A result is a JSON file anywhere below ``DATA_DIR`` (at most ``MAX_DEPTH`` folders deep, e.g.
``data/results/capture.json`` written by ``main.py backtest --json``, or the optimizer's
files), recognised by its content:

* backtest: an object with ``trades`` (list) and ``stats`` (object), the README's "JSON result";
* optimization: ``main.py optimize``'s ``DATA_DIR/optimize/<study>/result.json`` (or
  ``walk_forward.json``): an object with ``study`` and ``objective``; also any object with
  ``best_params`` or a ``trials`` list.

The engine's own files (state, ledger, paper account, watchlist) are never listed. Files are
read in a worker thread (never on the event loop) and the classification is cached by
(path, mtime, size). A result's id is its path relative to DATA_DIR; only ids that the listing
returns can be opened, so no path outside DATA_DIR is ever read.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import orjson

logger = logging.getLogger(__name__)

MAX_DEPTH = 3
MAX_BYTES = 50 * 1024 * 1024
ENGINE_FILES = {"state.json", "ledger.json", "paper_account.json", "watchlist.json"}


class ResultNotFound(LookupError):
    """No stored result has this id."""


def classify(doc: Any) -> str | None:
    """"backtest", "optimization" or None (not a result)."""
    if not isinstance(doc, dict):
        return None
    if isinstance(doc.get("trades"), list) and isinstance(doc.get("stats"), dict):
        return "backtest"
    if ("study" in doc and "objective" in doc) or "best_params" in doc or isinstance(
            doc.get("trials"), list):
        return "optimization"
    return None


def _summary(doc: dict[str, Any], kind: str) -> dict[str, Any]:
    if kind == "backtest":
        stats = doc.get("stats") or {}
        return {"symbol": doc.get("symbol"), "timeframe": doc.get("timeframe"),
                "trades": len(doc.get("trades") or []), "net_pnl": stats.get("net_pnl"),
                "win_rate": stats.get("win_rate"), "max_drawdown": stats.get("max_drawdown")}
    raw_best = doc.get("best")
    best: dict[str, Any] = raw_best if isinstance(raw_best, dict) else {}
    trials = doc.get("trials")
    if isinstance(trials, dict):  # optuna state counts, e.g. {"COMPLETE": 40, "PRUNED": 2}
        trials = sum(v for v in trials.values() if isinstance(v, int))
    elif isinstance(trials, list):
        trials = len(trials)
    return {"strategy": doc.get("strategy"), "objective": doc.get("objective"),
            "trials": trials, "best_value": best.get("value", doc.get("best_value")),
            "best_params": best.get("params", doc.get("best_params")),
            "net_pnl": best.get("net_pnl")}


class ResultStore:
    """Lists and opens result files below ``root`` (DATA_DIR)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[Path, tuple[float, int, dict[str, Any] | None]] = {}

    def _scan(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        root = self.root
        if not root.is_dir():
            return out
        for path in sorted(root.rglob("*.json")):
            rel = path.relative_to(root)
            if len(rel.parts) > MAX_DEPTH + 1 or (len(rel.parts) == 1 and
                                                    rel.name in ENGINE_FILES):
                continue
            try:
                st = path.stat()
            except OSError:
                continue
            if st.st_size > MAX_BYTES:
                continue
            cached = self._cache.get(path)
            if cached is not None and cached[:2] == (st.st_mtime, st.st_size):
                entry = cached[2]
            else:
                entry = None
                try:
                    doc = orjson.loads(path.read_bytes())
                    kind = classify(doc)
                    if kind is not None:
                        entry = {"id": rel.as_posix(), "kind": kind, "name": path.stem,
                                 "modified_ms": int(st.st_mtime * 1000), "bytes": st.st_size,
                                 "summary": _summary(doc, kind)}
                except (OSError, orjson.JSONDecodeError):
                    entry = None
                self._cache[path] = (st.st_mtime, st.st_size, entry)
            if entry is not None:
                out.append(entry)
        out.sort(key=lambda e: e["modified_ms"], reverse=True)
        return out

    async def list(self) -> list[dict[str, Any]]:
        """Results, newest first: ``{"id", "kind", "name", "modified_ms", "bytes",
        "summary"}``."""
        return await asyncio.to_thread(self._scan)

    async def open(self, result_id: str) -> dict[str, Any]:
        """``{"id", "kind", "result": <the file's JSON>}``.

        Raises:
            ResultNotFound: the id is not in the listing (or the file went away).
        """
        listing = {e["id"]: e for e in await self.list()}
        entry = listing.get(result_id)
        if entry is None:
            raise ResultNotFound(result_id)
        path = self.root / entry["id"]
        try:
            doc = await asyncio.to_thread(lambda: orjson.loads(path.read_bytes()))
        except (OSError, orjson.JSONDecodeError):
            raise ResultNotFound(result_id) from None
        return {"id": entry["id"], "kind": entry["kind"], "result": doc}
