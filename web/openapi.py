"""The OpenAPI 3.0 document of the dashboard API, served at ``/api/v1/openapi.json``.

Money is a decimal string (``Money``), times are ms since the epoch, fractions 0..1. Every
operation needs the bearer token (``API_TOKEN``).
"""

from __future__ import annotations

from typing import Any

VERSION = "1.0.0"

_MONEY = {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?(E[-+]?[0-9]+)?$",
          "description": "decimal string, USDT unless stated"}
_MONEY_OR_NULL = {**_MONEY, "nullable": True}
_TS = {"type": "integer", "description": "ms since the epoch (UTC)"}


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": props,
            "required": list(props) if required is None else required}


def _q(name: str, schema: dict[str, Any], desc: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema,
            "description": desc}


def _ok(ref: str, desc: str) -> dict[str, Any]:
    return {"description": desc,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


_ERR = {"$ref": "#/components/responses/Error"}
_COMMON = {"401": _ERR, "503": _ERR}


def _get(summary: str, ref: str, params: list[dict[str, Any]] | None = None,
         extra: tuple[str, ...] = ()) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": _ok(ref, summary), **_COMMON}
    for code in extra:
        responses[code] = _ERR
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if params:
        op["parameters"] = params
    return {"get": op}


_SINCE = _q("since_ms", {"type": "integer", "minimum": 0, "maximum": 2**53}, "from (ms)")
_UNTIL = _q("until_ms", {"type": "integer", "minimum": 0, "maximum": 2**53}, "until (ms)")

SCHEMAS: dict[str, Any] = {
    "Error": _obj({"error": _obj({"code": {"type": "string"}, "message": {"type": "string"}})}),
    "Status": _obj({
        "trading_mode": {"type": "string", "enum": ["paper", "testnet", "live"]},
        "mode": {"type": "string", "enum": ["ARMED", "DISARMED", "HALTED"]},
        "mode_reason": {"type": "string"},
        "mode_changed_ms": {**_TS, "nullable": True},
        "phase": {"type": "string", "enum": ["FLAT", "ENTERING", "OPEN", "EXITING"]},
        "symbols": {"type": "array", "items": {"type": "string"}},
        "started_ms": _TS, "uptime_s": {"type": "number"}, "now_ms": _TS,
        "health": {"type": "object", "required": ["healthy", "feed", "streams"],
                   "properties": {"healthy": {"type": "boolean"}, "feed": {"type": "string"},
                                  "streams": {"type": "array"}}},
    }),
    "Position": _obj({"position": {"type": "object", "nullable": True, "properties": {
        "symbol": {"type": "string"}, "side": {"type": "string", "enum": ["LONG", "SHORT"]},
        "quantity": _MONEY, "entry_price": _MONEY, "mark_price": _MONEY_OR_NULL,
        "unrealized_pnl": _MONEY_OR_NULL, "stop_loss": _MONEY, "take_profit": _MONEY,
        "liquidation_price": _MONEY_OR_NULL, "notional": _MONEY_OR_NULL,
        "leverage": {"type": "integer"}, "opened_ms": _TS, "phase": {"type": "string"}}}}),
    "Balance": _obj({"asset": {"type": "string"}, "balances": {"type": "array", "items": _obj(
        {"asset": {"type": "string"}, "wallet": _MONEY, "available": _MONEY})},
        "equity": _MONEY_OR_NULL, "unrealized_pnl": _MONEY_OR_NULL,
        "initial_balance": _MONEY_OR_NULL}),
    "Trade": _obj({k: _MONEY for k in ("entry_price", "exit_price", "quantity", "gross_pnl",
                                        "fees", "funding", "net_pnl")}
                  | {"symbol": {"type": "string"},
                     "side": {"type": "string", "enum": ["LONG", "SHORT"]},
                     "entry_ts_ms": _TS, "exit_ts_ms": _TS,
                     "exit_reason": {"type": "string"}}),
    "Trades": _obj({"total": {"type": "integer"}, "offset": {"type": "integer"},
                    "limit": {"type": "integer"}, "net_pnl": _MONEY,
                    "trades": {"type": "array",
                               "items": {"$ref": "#/components/schemas/Trade"}}}),
    "Equity": _obj({"points": {"type": "array", "description": "[ts_ms, equity]",
                               "items": {"type": "array"}},
                    "total": {"type": "integer"}, "equity": _MONEY_OR_NULL}),
    "Candles": _obj({"symbol": {"type": "string"}, "timeframe": {"type": "string"},
                     "interval_ms": {"type": "integer"},
                     "age_s": {"type": "number", "nullable": True},
                     "stale": {"type": "boolean"},
                     "candles": {"type": "array", "description":
                                 "[open_ms, open, high, low, close, volume]",
                                 "items": {"type": "array"}},
                     "markers": {"type": "array", "items": _obj({
                         "ts_ms": _TS, "kind": {"type": "string", "enum": ["entry", "exit"]},
                         "side": {"type": "string"}, "price": _MONEY,
                         "text": {"type": "string"}})},
                     "levels": {"type": "object", "nullable": True}}),
    "Signals": _obj({"signals": {"type": "array", "items": _obj({
        "ts_ms": _TS, "symbol": {"type": "string"}, "side": {"type": "string"},
        "reason": {"type": "string"},
        "verdict": {"type": "string", "enum": ["ACCEPTED", "REJECTED", "PENDING"]},
        "verdict_reason": {"type": "string"}},
        ["ts_ms", "symbol", "side", "verdict"])}}),
    "Risk": _obj({"mode": {"type": "string"}, "halted": {"type": "boolean"},
                  "halt_reason": {"type": "string"},
                  "limits": {"type": "array", "items": {"type": "object"}},
                  "guardian": {"type": "object"}},
                 ["mode", "halted", "limits"]),
    "Strategy": _obj({"active": {"type": "object"},
                      "catalog": {"type": "array", "items": {"type": "object"}}}),
    "Logs": _obj({"lines": {"type": "array", "items": {"type": "string"}}}),
    "Settings": _obj({"settings": {"type": "object",
                                   "additionalProperties": {"type": "string"}}}),
    "Results": _obj({"results": {"type": "array", "items": _obj({
        "id": {"type": "string"}, "kind": {"type": "string",
                                           "enum": ["backtest", "optimization"]},
        "name": {"type": "string"}, "modified_ms": _TS, "bytes": {"type": "integer"},
        "summary": {"type": "object"}})}}),
    "Result": _obj({"id": {"type": "string"}, "kind": {"type": "string"},
                    "result": {"type": "object"}}),
    "ActionResult": _obj({"action": {"type": "string"}, "done": {"type": "boolean"},
                          "message": {"type": "string"}, "mode": {"type": "string"},
                          "phase": {"type": "string"}}),
}


def _paths() -> dict[str, Any]:
    symbol = {"type": "string", "pattern": "^[A-Za-z0-9]{2,20}$"}
    return {
        "/status": _get("Mode (with the reason of its last change), phase, health, uptime",
                        "Status"),
        "/position": _get("The open position (null when flat) at the current mark",
                          "Position"),
        "/balance": _get("Wallet, available balance, equity", "Balance"),
        "/trades": _get("Closed round trips, newest first", "Trades", [
            _SINCE, _UNTIL, _q("symbol", symbol, "only this symbol"),
            _q("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "page size"),
            _q("offset", {"type": "integer", "minimum": 0, "maximum": 10**9}, "skip")],
            ("400",)),
        "/equity": _get("Equity snapshots", "Equity", [
            _SINCE, _UNTIL,
            _q("max_points", {"type": "integer", "minimum": 2, "maximum": 10000},
               "downsample to at most this many points")], ("400",)),
        "/candles": _get("Candles from the market-data cache with entry/exit markers and "
                         "the position's SL/TP", "Candles", [
            _q("symbol", symbol, "default: the first of SYMBOLS"),
            _q("timeframe", {"type": "string", "pattern": "^[0-9]{1,4}(ms|s|m|h|d|w|M)$"},
               "default: the engine's timeframe (replay) or the first MARKET_TIMEFRAMES"),
            _q("limit", {"type": "integer", "minimum": 1, "maximum": 1500}, "bars")],
            ("400", "404")),
        "/signals": _get("Latest signals with ORDERING's verdict", "Signals", [
            _q("limit", {"type": "integer", "minimum": 1, "maximum": 200}, "how many")],
            ("400",)),
        "/risk": _get("Risk limits and their usage", "Risk"),
        "/strategy": _get("Strategy catalog, the active rule and its verdicts", "Strategy"),
        "/logs": _get("Recent log lines, redacted", "Logs", [
            _q("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "how many")],
            ("400",)),
        "/settings": _get("Effective settings, secrets hidden", "Settings"),
        "/results": _get("Stored backtest and optimization results under DATA_DIR",
                         "Results"),
        "/results/{result_id}": {"get": {
            "summary": "One stored result", "parameters": [
                {"name": "result_id", "in": "path", "required": True,
                 "schema": {"type": "string"}}],
            "responses": {"200": _ok("Result", "the result file"), "404": _ERR,
                          **_COMMON}}},
        "/openapi.json": {"get": {"summary": "This document",
                                  "responses": {"200": {"description": "OpenAPI 3.0"},
                                                **_COMMON}}},
        "/actions/{action}": {"post": {
            "summary": "arm | disarm | close | flat | halt, through the engine facade",
            "parameters": [{"name": "action", "in": "path", "required": True,
                            "schema": {"type": "string",
                                       "enum": ["arm", "disarm", "close", "flat", "halt"]}}],
            "responses": {"200": _ok("ActionResult", "what happened"), "404": _ERR,
                          "429": _ERR, **_COMMON}}},
    }


def openapi_document() -> dict[str, Any]:
    """The document (a fresh dict)."""
    return {
        "openapi": "3.0.3",
        "info": {"title": "dort5bot dashboard API", "version": VERSION,
                 "description": "Read the bot's state and steer it. WebSocket: GET "
                                "/api/v1/ws (channels metrics, trade_updates, alerts, logs, "
                                "candles); see README."},
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": SCHEMAS,
            "responses": {"Error": {"description": "error", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Error"}}}}},
        },
        "paths": _paths(),
    }
