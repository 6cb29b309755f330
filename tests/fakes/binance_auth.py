"""Authentication and rate accounting of the fake Binance, written from the exchange's side and
independently of core/binance/signing.py (so a payload bug there cannot hide behind the fake).

PROTOCOL.md §2.3: REST signs ``totalParams`` = query string + body as sent, without the
``signature`` parameter; the WS API signs all params but ``signature``, sorted by name, as
``k=v&k=v``. HMAC keys sign hex, Ed25519 keys base64. A request is accepted when
``timestamp < serverTime + 1000`` and ``serverTime - timestamp <= recvWindow`` (default 5000).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tests.fakes.binance_data import ApiError, Params, as_text

NONE, USER_STREAM, SIGNED = "NONE", "USER_STREAM", "SIGNED"

BAD_KEY = ApiError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
BAD_SIGNATURE = ApiError(-1022, "Signature for this request is not valid.")


@dataclass
class ApiKey:
    """An API key of the fake's single account: HMAC (``secret``) or Ed25519 (``public_key``)."""

    key: str
    secret: bytes | None = None
    public_key: Ed25519PublicKey | None = None

    @property
    def is_ed25519(self) -> bool:
        return self.public_key is not None

    def verify(self, payload: str, signature: str) -> bool:
        if self.public_key is not None:
            try:
                self.public_key.verify(base64.b64decode(signature, validate=True),
                                       payload.encode("ascii"))
                return True
            except (InvalidSignature, ValueError):
                return False
        expected = hmac.new(self.secret or b"", payload.encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, signature)


def new_key_id(prefix: str) -> str:
    return prefix + secrets.token_hex(28)


def split_rest_signature(query: str, body: str) -> tuple[str, str | None]:
    """(totalParams without the signature parameter, the decoded signature or None)."""
    signature = None
    parts = []
    for text in (query, body):
        kept = []
        for item in text.split("&") if text else []:
            if item.startswith("signature="):
                signature = unquote_plus(item[len("signature="):])
            else:
                kept.append(item)
        parts.append("&".join(kept))
    return parts[0] + parts[1], signature


def ws_payload(params: Mapping[str, Any]) -> str:
    return "&".join(f"{k}={as_text(params[k])}" for k in sorted(params)
                    if k != "signature" and params[k] is not None)


def check_timestamp(p: Params, server_ms: int) -> None:
    ts = p.integer("timestamp")
    window = p.integer("recvWindow", 5000)
    if ts >= server_ms + 1000:
        raise ApiError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
    if server_ms - ts > window:
        raise ApiError(-1021, "Timestamp for this request is outside of the recvWindow.")


@dataclass
class Window:
    """A fixed rate-limit window (Binance counts per calendar interval)."""

    rate_limit_type: str
    interval: str
    interval_num: int
    limit: int
    span_ms: int
    start_ms: int = 0
    count: int = 0

    def add(self, n: int, now_ms: int) -> None:
        start = now_ms - now_ms % self.span_ms
        if start != self.start_ms:
            self.start_ms, self.count = start, 0
        self.count += n

    def as_json(self) -> dict[str, Any]:
        return {"rateLimitType": self.rate_limit_type, "interval": self.interval,
                "intervalNum": self.interval_num, "limit": self.limit, "count": self.count}


@dataclass
class RateCounters:
    """REQUEST_WEIGHT per IP (shared by REST and WS API) and ORDERS per account."""

    weight: Window = field(default_factory=lambda: Window("REQUEST_WEIGHT", "MINUTE", 1, 2400,
                                                          60_000))
    orders_10s: Window = field(default_factory=lambda: Window("ORDERS", "SECOND", 10, 300,
                                                              10_000))
    orders_1m: Window = field(default_factory=lambda: Window("ORDERS", "MINUTE", 1, 1200,
                                                             60_000))

    def add(self, weight: int, orders: bool, now_ms: int) -> None:
        self.weight.add(weight, now_ms)
        self.orders_10s.add(1 if orders else 0, now_ms)
        self.orders_1m.add(1 if orders else 0, now_ms)

    def ws_json(self, orders: bool) -> list[dict[str, Any]]:
        out = [self.weight.as_json()]
        if orders:
            out += [self.orders_10s.as_json(), self.orders_1m.as_json()]
        return out

    def headers(self, orders: bool) -> dict[str, str]:
        out = {"X-MBX-USED-WEIGHT-1M": str(self.weight.count)}
        if orders:
            out["X-MBX-ORDER-COUNT-10S"] = str(self.orders_10s.count)
            out["X-MBX-ORDER-COUNT-1M"] = str(self.orders_1m.count)
        return out
