"""Fault switches of the fake Binance for issue 9 ("never naked"), as ``fake.faults``:

* ``late_next_order(n)``: the next ``n`` ``order.place``/``algoOrder.place`` (WS API) are *held*:
  answered 503 "Unknown error" without executing; queries answer -2013 (order queries lag,
  PROTOCOL.md §10) until ``release_late()`` executes them, late, with their client ids;
* ``before(method, hook)``: run ``hook`` (sync or async) once before the next REST request of
  ``method`` ("GET /fapi/v1/openAlgoOrders") is answered: a fill during a reconciliation pass;
* ``extra_open_algos`` / ``extra_open_orders``: raw rows appended to ``openAlgoOrders`` /
  ``openOrders`` answers (algo and regular orders the bot did not place, odd values);
* ``klines``: ``{symbol: rows}`` served by ``GET /fapi/v1/klines``;
* ``no_pong`` / ``pong_delay_s``: the client's pings go unanswered / are answered late
  (``Conn.pings`` and ``Conn.pongs_sent`` count them);
* ``unrouted_only``: the routed stream paths answer 404 and the unrouted ``/stream`` and
  ``/ws/<listenKey>`` carry the data (the USD-M testnet's routes are unverified, §10);
* ``brackets_payload``: served by ``GET /fapi/v1/leverageBracket`` instead of the real brackets
  (``fake.exchange.brackets``, which the leverage and order checks use).

Matching-engine faults live on ``fake.exchange``: ``fail_next_trigger`` (a stop that triggers
and then ends REJECTED / EXPIRED / FINISHED with ``aq`` = 0) and ``hold_market`` (MARKET orders
rest until ``release_market``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any


class Faults:
    def __init__(self) -> None:
        self._late = 0
        self.held: list[tuple[str, dict[str, Any]]] = []
        self._hooks: dict[str, list[Callable[[], Any]]] = {}
        self.extra_open_algos: list[dict[str, Any]] = []
        self.extra_open_orders: list[dict[str, Any]] = []
        self.klines: dict[str, list[list[Any]]] = {}
        self.brackets_payload: Any = None
        self.no_pong = False  # leave the client's pings unanswered (a lossy link)
        self.pong_delay_s = 0.0  # answer the client's pings this late (a loaded link)
        self.unrouted_only = False  # a testnet without /public, /market, /private
        self.execute: Callable[[str, dict[str, Any]], Any] | None = None  # set by the fake

    def late_next_order(self, n: int = 1) -> None:
        self._late += n

    def take_late(self) -> bool:
        if self._late:
            self._late -= 1
            return True
        return False

    def release_late(self) -> list[Any]:
        """Execute the held placements now (their events reach the user stream)."""
        held, self.held = self.held, []
        assert self.execute is not None
        out = []
        for method, params in held:
            try:
                out.append(self.execute(method, params))
            except Exception as exc:  # e.g. -4116: a retry with the same client id got in first
                out.append(exc)
        return out

    def before(self, method: str, hook: Callable[[], Any]) -> None:
        self._hooks.setdefault(method, []).append(hook)

    async def run_hooks(self, method: str) -> None:
        for hook in self._hooks.pop(method, []):
            result = hook()
            if inspect.isawaitable(result):
                await result
