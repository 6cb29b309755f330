"""JOURNAL, the witness: every signal, order, fill, round trip, equity snapshot, state change,
connection status and error, persisted to SQLite (aiosqlite, WAL mode) or, with ``JOURNAL_URL``,
to PostgreSQL (``core/journal_backend.py``, ``core/journal_pg.py``: same tables). Every row
carries the bot's ``account``; every query reads only that account's rows.

Bus handlers only turn the event into row tuples and append them to an in-memory pending list
(a few microseconds, no I/O). An owned task writes the pending rows in one transaction every
``flush_interval_s``; ``stop()`` writes whatever is left. If a write fails (disk full, database
locked) the rows stay pending and the next flush retries; the failure is logged and published
as an ``EngineError`` once per failure streak, and nothing is raised into the bus.

Tables (money is TEXT holding a ``Decimal`` string, never REAL):

* ``events``: one row per event, the payload as JSON (``to_jsonable``).
* ``fills``: one row per execution, deduplicated on (symbol, trade_id, client_order_id) because
  the user data stream may deliver a fill twice around a reconnect.
* ``trades``: one row per round trip (``ClosedTrade``).
* ``equity``: one row per ``EquitySnapshot``.

A bot that persists (``run``) with the SQLite journal has the store of record (``core/store.py``)
write ``fills`` and ``trades`` in the same transaction as the state and ledger change that
produced them: those rows cannot be rebuilt, so they never wait in the batch.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from core.crashpoints import crash_point
from core.event_bus import EventBus
from core.events import (
    AccountConfigChanged,
    BalanceUpdate,
    ClosedTrade,
    CloseRequest,
    ConnectionStatus,
    EngineError,
    EquitySnapshot,
    ExitReason,
    HaltRequest,
    InputRejected,
    MarginCall,
    OrderRequest,
    OrderUpdate,
    PositionAdopted,
    PositionOpened,
    PositionUpdate,
    ProtectiveOrderUpdate,
    RateLimitBackoff,
    RiskRejected,
    Side,
    SignalRejected,
    StateChanged,
    TradeClosed,
    TradeSignal,
)
from core.journal_backend import (
    SCHEMA_VERSION,
    TRADE_FIELDS,
    JournalBackend,
    JournalError,
    SqliteBackend,
)
from core.persisted import Fields
from utils.aio import cancel_and_wait

if TYPE_CHECKING:
    from core.store import Store

__all__ = ["JOURNALED_EVENTS", "SCHEMA_VERSION", "Journal", "JournalError", "to_jsonable"]

logger = logging.getLogger(__name__)

_TRADE_FIELDS = TRADE_FIELDS
_TRADE_PARSE = {"symbol": str, "side": Side, "exit_reason": ExitReason, "entry_ts_ms": int,
                "exit_ts_ms": int}  # every other column is a Decimal string

_TABLES = ("events", "fills", "trades", "equity")

JOURNALED_EVENTS = (
    TradeSignal, SignalRejected, CloseRequest, OrderRequest, OrderUpdate, PositionOpened,
    PositionUpdate, BalanceUpdate, TradeClosed, EquitySnapshot, StateChanged, ConnectionStatus,
    EngineError, ProtectiveOrderUpdate, PositionAdopted, MarginCall, AccountConfigChanged,
    RateLimitBackoff, RiskRejected, HaltRequest, InputRejected,
)


_PLAIN = frozenset({str, int, float, bool, type(None)})
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}  # dataclass type -> field names, filled lazily


def to_jsonable(value: Any) -> Any:
    """Turn an event (frozen dataclass) into plain JSON types.

    Dataclasses become dicts of their fields, ``Decimal`` its exact string, ``Enum`` its value,
    tuples and lists lists, dict keys strings. Anything else orjson cannot encode becomes
    ``str(value)``.
    """
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is Decimal:
        return str(value)
    names = _FIELD_NAMES.get(kind)
    if names is not None:
        return {name: to_jsonable(getattr(value, name)) for name in names}
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        _FIELD_NAMES[kind] = tuple(f.name for f in dataclasses.fields(value))
        return to_jsonable(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (bool, int, float, str)):  # subclasses of the plain types
        return value
    return str(value)


def _symbol_of(event: Any) -> str | None:
    if isinstance(event, (SignalRejected, RiskRejected)):
        return event.signal.symbol
    if isinstance(event, TradeClosed):
        return event.trade.symbol
    return getattr(event, "symbol", None) or None


def trade_row(trade: ClosedTrade) -> tuple:
    """The ``trades`` row of a round trip (``account`` is added by the writer)."""
    return tuple(to_jsonable(getattr(trade, name)) for name in _TRADE_FIELDS)


def fill_row(event: OrderUpdate) -> tuple:
    """The ``fills`` row of an OrderUpdate with a fill (``last_fill_qty > 0``)."""
    return (
        event.ts_ms, event.symbol, event.client_order_id, event.order_id,
        event.trade_id or None,  # NULL never collides: fills without an id are all kept
        event.side.value, str(event.last_fill_qty), str(event.last_fill_price),
        str(event.commission), event.commission_asset, str(event.realized_pnl),
    )


_SIGNED = frozenset({"gross_pnl", "fees", "funding", "net_pnl"})  # may be negative (USDT)


def _trade_from_row(row: tuple, where: str) -> ClosedTrade:
    """A ``trades`` row ``(id, *TRADE_FIELDS)`` -> ClosedTrade, validated like every persisted
    document (core/persisted.py): a known symbol name, side and exit reason, exchange times
    (ms, entry <= exit), finite Decimal strings, prices and quantity >= 0.

    Raises:
        PersistError: names ``where`` (the journal), the row id and the field.
    """
    f = Fields(dict(zip(("id", *_TRADE_FIELDS), row, strict=True)), f"{where} [trades row "
               f"{row[0]}]")
    values: dict[str, Any] = {}
    for name in _TRADE_FIELDS:
        if name == "symbol":
            values[name] = f.symbol(name)
        elif name in ("side", "exit_reason"):
            values[name] = f.enum(name, _TRADE_PARSE[name])
        elif name.endswith("_ts_ms"):
            values[name] = f.ts(name)
        else:
            values[name] = f.dec(name, minimum=None if name in _SIGNED else Decimal(0))
    if values["exit_ts_ms"] < values["entry_ts_ms"]:
        f.fail("exit_ts_ms", f"is {values['exit_ts_ms']}, before entry_ts_ms")
    return ClosedTrade(**values)


def _equity_from_row(row: tuple, where: str) -> tuple[int, Decimal]:
    """An ``equity`` row ``(id, ts_ms, equity)`` -> ``(ts_ms, equity USDT)``, validated.

    Raises:
        PersistError: names ``where`` (the journal), the row id and the field.
    """
    f = Fields({"ts_ms": row[1], "equity": row[2]}, f"{where} [equity row {row[0]}]")
    return f.ts("ts_ms"), f.dec("equity", minimum=None)


class Journal:
    """Persists journaled events to ``db_path`` (SQLite, WAL) or ``url`` (PostgreSQL) and
    answers history queries about ``account``'s rows.

    Args:
        bus: subscribed to at construction, so events published before ``start()`` are kept
            pending and written once the database is open.
        db_path: the SQLite file (parent directories are created), or None for an in-memory
            database (backtests: full query API, nothing on disk, gone after ``stop()``).
        flush_interval_s: seconds between background writes.
        busy_timeout_s: how long a write waits for a lock held by another connection before
            failing (and being retried at the next flush).
        url: a ``postgresql://`` URL (``JOURNAL_URL``); when set, ``db_path`` is not used.
        account: the account (``ACCOUNT``) every row is written with and every query reads.
        store: the store of record (``core/store.py``) on the same SQLite file, its only
            writer: it writes fills and round trips in the same transaction as the state that
            produced them, and the journal hands it its batches (event log, equity) instead of
            writing them over its own connection, which then only reads. Not with ``url``.
    """

    def __init__(
        self,
        bus: EventBus,
        db_path: Path | None,
        *,
        flush_interval_s: float = 0.5,
        busy_timeout_s: float = 2.0,
        url: str = "",
        account: str = "main",
        store: Store | None = None,
    ) -> None:
        self._bus = bus
        self._account = account
        self._store = None if url else store
        self._rows_in_store = self._store is not None
        self._flush_interval_s = flush_interval_s
        self._backend: JournalBackend
        if url:
            from core.journal_pg import PostgresBackend  # psycopg only when asked for

            self._backend = PostgresBackend(url, account)
        else:
            self._backend = SqliteBackend(db_path, account, busy_timeout_s=busy_timeout_s)
        self._pending: dict[str, list[tuple]] = {name: [] for name in _TABLES}
        self._conn: JournalBackend | None = None  # the backend, while open
        self._task: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self._failing = False
        self.write_errors = 0  # failed flush attempts since construction
        for event_type in JOURNALED_EVENTS:
            bus.subscribe(event_type, self._on_event)

    # ------------------------------------------------------------------ bus side (sync, fast)

    def _on_event(self, event: Any) -> None:
        kind = type(event).__name__
        try:
            payload = orjson.dumps(to_jsonable(event)).decode()
        except Exception as exc:  # never raise into the bus; keep a trace of the event
            payload = orjson.dumps({"unserializable": repr(event), "error": str(exc)}).decode()
        pending = self._pending
        pending["events"].append((event.ts_ms, kind, _symbol_of(event), payload))
        if kind == "OrderUpdate" and event.last_fill_qty > 0:
            if not self._rows_in_store:  # else the store writes it, with the transition
                pending["fills"].append(fill_row(event))
        elif kind == "TradeClosed":
            if not self._rows_in_store:
                pending["trades"].append(trade_row(event.trade))
        elif kind == "EquitySnapshot":
            pending["equity"].append((
                event.ts_ms, str(event.equity), str(event.wallet_balance),
                str(event.unrealized_pnl),
            ))

    @property
    def pending_count(self) -> int:
        """Rows (all tables) waiting to be written."""
        return sum(len(rows) for rows in self._pending.values())

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open (or create) the database, check its schema, start the flush task.

        Raises:
            JournalError: the file is not a SQLite database (corrupt; it is left untouched),
                cannot be opened, the PostgreSQL server cannot be reached or refuses the
                login, or the schema is newer than this code understands. The message names
                the file or JOURNAL_URL, never its password.
        """
        if self._conn is not None:
            return
        await self._backend.open()
        self._conn = self._backend
        self._task = asyncio.create_task(self._flush_loop(), name="journal-flush")
        logger.info("journal open: %s", self._describe())

    async def stop(self) -> None:
        """Stop the flush task, write every pending row, close the database."""
        await self._close(flush=True)

    async def abandon(self) -> None:
        """Close the database without writing the pending rows (a start that stops: the
        journal is left exactly as it was found)."""
        await self._close(flush=False)

    async def _close(self, *, flush: bool) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        if self._conn is None:
            return
        if flush and not await self.flush():
            logger.error("journal closed with %d rows unwritten (%s)", self.pending_count,
                         self._describe())
        async with self._lock:  # no flush may be using the connection while it closes
            conn, self._conn = self._conn, None
            if conn is not None:
                await conn.close()

    def _describe(self) -> str:
        return self._backend.describe()

    # ------------------------------------------------------------------ writing

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self._flush_interval_s)
            if self.pending_count:
                try:
                    await self.flush()
                except Exception:  # keep the witness alive; the rows stay pending
                    logger.exception("journal flush failed unexpectedly")

    async def flush(self) -> bool:
        """Write all pending rows in one transaction.

        The write runs to completion even if the caller is cancelled, so a row is never both
        committed and still pending.

        Returns:
            True when nothing is left pending; False when the journal is not open or the write
            failed (rows stay pending for the next attempt). Never raises for a write error.
        """
        return await asyncio.shield(self._flush_now())

    async def _flush_now(self) -> bool:
        async with self._lock:
            conn = self._conn
            if conn is None:
                return not self.pending_count
            batch = {name: rows[:] for name, rows in self._pending.items() if rows}
            if not batch:
                return True
            crash_point("journal:flush")
            if self._store is not None:  # the file's single writer; it keeps them until written
                self._store.add_rows(batch)
                for name, rows in batch.items():
                    del self._pending[name][: len(rows)]
                return not self.pending_count
            try:
                await conn.execute_many(batch)
            except JournalError as exc:
                self._on_write_failure(exc)
                return False
            for name, rows in batch.items():
                del self._pending[name][: len(rows)]  # rows appended meanwhile stay
            if self._failing:
                self._failing = False
                logger.info("journal writes recovered: %s", self._describe())
            return not self.pending_count

    def _on_write_failure(self, exc: Exception) -> None:
        self.write_errors += 1
        if self._failing:
            return
        self._failing = True
        message = (f"journal write to {self._describe()} failed, {self.pending_count} rows kept"
                   f" for retry: {exc}")
        logger.error("%s", message)
        last = self._pending["events"][-1:]  # exchange time of the newest unwritten event
        self._bus.publish(EngineError(source="journal", message=message,
                                      ts_ms=last[0][0] if last else 0))

    # ------------------------------------------------------------------ queries

    async def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        await self.flush()
        async with self._lock:  # stop() may be closing the connection
            if self._conn is None:
                raise JournalError(f"journal {self._describe()} is not open")
            return await self._conn.query(sql, params)

    async def trades(self, since_ms: int | None = None,
                     limit: int | None = None) -> list[ClosedTrade]:
        """Round trips that closed at or after ``since_ms``, the newest ``limit``, newest last.

        Raises:
            core.persisted.PersistError: a row read is invalid (names journal, row and field).
        """
        rows = await self._query(
            f"SELECT id, {', '.join(_TRADE_FIELDS)} FROM trades WHERE account = ?"
            " AND exit_ts_ms >= ?"
            " ORDER BY exit_ts_ms DESC, id DESC" + ("" if limit is None else " LIMIT ?"),
            (self._account, since_ms if since_ms is not None else -(2**62),
             *(() if limit is None else (limit,))),
        )
        where = f"journal {self._describe()}"
        return [_trade_from_row(r, where) for r in reversed(rows)]

    async def equity_curve(self, since_ms: int | None = None) -> list[tuple[int, Decimal]]:
        """``(ts_ms, equity)`` points (ms, USDT), oldest first, from equity snapshots.

        Raises:
            core.persisted.PersistError: a row read is invalid (names journal, row and field).
        """
        rows = await self._query(
            "SELECT id, ts_ms, equity FROM equity WHERE account = ? AND ts_ms >= ?"
            " ORDER BY ts_ms, id",
            (self._account, since_ms if since_ms is not None else -(2**62)),
        )
        where = f"journal {self._describe()}"
        return [_equity_from_row(r, where) for r in rows]

    async def entry_times(self, since_ms: int, limit: int = 1000) -> list[int]:
        """Exchange times (ms) of entry ``OrderRequest``s at or after ``since_ms``, oldest
        first (the newest ``limit``). RISK counts entries per hour and day from them."""
        intent = self._backend.dialect.json_text.format(col="payload", key="intent")
        rows = await self._query(
            "SELECT ts_ms FROM events WHERE account = ? AND kind = 'OrderRequest'"
            f" AND ts_ms >= ? AND {intent} = 'ENTRY' ORDER BY ts_ms DESC LIMIT ?",
            (self._account, since_ms, limit),
        )
        return [ts for (ts,) in reversed(rows)]

    async def peak_equity(self, since_ms: int = 0) -> Decimal | None:
        """The highest journaled equity at or after ``since_ms`` (USDT), None without any.

        Raises:
            core.persisted.PersistError: the row is invalid (names journal, row and field).
        """
        number = self._backend.dialect.number.format(col="equity")
        rows = await self._query(
            f"SELECT id, ts_ms, equity FROM equity WHERE account = ? AND ts_ms >= ?"
            f" ORDER BY {number} DESC LIMIT 1", (self._account, since_ms),
        )
        return _equity_from_row(rows[0], f"journal {self._describe()}")[1] if rows else None

    async def recent_events(self, limit: int) -> list[dict]:
        """The last ``limit`` events, oldest first, as
        ``{"id", "ts_ms", "kind", "symbol", "payload"}`` with the payload decoded (money as
        decimal strings)."""
        rows = await self._query(
            "SELECT id, ts_ms, kind, symbol, payload FROM events WHERE account = ?"
            " ORDER BY id DESC LIMIT ?",
            (self._account, limit),
        )
        return [
            {"id": i, "ts_ms": ts, "kind": kind, "symbol": sym, "payload": orjson.loads(p)}
            for i, ts, kind, sym, p in reversed(rows)
        ]

    async def pnl_summary(self, since_ms: int | None = None) -> dict:
        """Realized results of round trips closed at or after ``since_ms``.

        Returns:
            ``{"trades": int, "wins": int, "losses": int, "win_rate": float (0..1, net PnL > 0
            is a win), "gross_pnl", "fees", "funding", "net_pnl": Decimal (USDT)}``.
        """
        trades = await self.trades(since_ms)
        zero = Decimal(0)
        wins = sum(1 for t in trades if t.net_pnl > 0)
        return {
            "trades": len(trades),
            "wins": wins,
            "losses": sum(1 for t in trades if t.net_pnl < 0),
            "win_rate": wins / len(trades) if trades else 0.0,
            "gross_pnl": sum((t.gross_pnl for t in trades), zero),
            "fees": sum((t.fees for t in trades), zero),
            "funding": sum((t.funding for t in trades), zero),
            "net_pnl": sum((t.net_pnl for t in trades), zero),
        }
