"""Request signing for Binance USDⓈ-M REST and the WebSocket API.

Facts (shared/binance/PROTOCOL.md §2.3, from Binance's "General Info" and "WebSocket API General
Info" pages and the official Python SDK):

* WS API: the signature payload is every request parameter except ``signature``, sorted by name,
  joined as ``k=v&k=v``. ``apiKey`` and ``timestamp`` are part of the signed parameters. Nested
  lists and dicts are JSON-encoded compactly first; booleans are the strings ``true``/``false``.
* REST: the payload is the query string (then the body) **in the order sent**; ``signature`` is
  appended last. REST does not sort.
* HMAC-SHA256 signatures are lowercase hex; Ed25519 signatures are base64 over the ASCII payload.
  ``session.logon`` accepts Ed25519 keys only (§2.4).

Decimals are sent as plain strings (``format(d, "f")``, never exponent notation). Floats are
refused: a price or quantity must already be a Decimal rounded to the symbol's filters.
Signers never reveal their key material in ``repr``/``str``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

_REDACTED = "'**********'"


class KeyFileError(ValueError):
    """A private-key file could not be used. The message names the path, never key material."""


@runtime_checkable
class SecretLike(Protocol):
    """Anything that hands out a secret on request, like ``pydantic.SecretStr``."""

    def get_secret_value(self) -> str: ...


def reveal(secret: SecretLike | str) -> str:
    """The secret's value (for the wire only: never log or format it)."""
    return secret.get_secret_value() if isinstance(secret, SecretLike) else secret


@runtime_checkable
class Signer(Protocol):
    """Signs a payload string. ``key_type`` is ``"HMAC_SHA256"`` or ``"ED25519"``."""

    key_type: str

    def sign(self, payload: str) -> str:
        """Signature of ``payload`` in the wire encoding (hex for HMAC, base64 for Ed25519)."""
        ...


# --------------------------------------------------------------------------- primitives


def hmac_signature(secret: bytes | str, payload: str) -> str:
    """HMAC-SHA256 of ``payload`` keyed with ``secret``, as lowercase hex (64 characters)."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


def ed25519_signature(private_key: Ed25519PrivateKey, payload: str) -> str:
    """Ed25519 signature of the ASCII ``payload``, base64-encoded (88 characters).

    Raises:
        UnicodeEncodeError: the payload is not ASCII (keep symbols and ids ASCII, §2.3).
    """
    return base64.b64encode(private_key.sign(payload.encode("ascii"))).decode("ascii")


def load_ed25519_key(path: str | Path, password: bytes | SecretLike | None = None
                     ) -> Ed25519PrivateKey:
    """Load an Ed25519 private key from a PEM file (PKCS#8, as ``openssl genpkey`` writes it).

    Raises:
        KeyFileError: the file is missing or unreadable, is not a PEM private key, is encrypted
            without the right password, or holds another key type. The message names the path
            and the reason only.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read Ed25519 key file {p}: {exc.strerror or 'I/O error'}"
                           ) from None
    pw = password.get_secret_value().encode() if isinstance(password, SecretLike) else password
    try:
        key = serialization.load_pem_private_key(data, password=pw)
    except TypeError:
        reason = "it is encrypted and needs a password" if pw is None else "it is not encrypted"
        raise KeyFileError(f"cannot load Ed25519 key file {p}: {reason}") from None
    except (ValueError, UnsupportedAlgorithm):
        raise KeyFileError(
            f"cannot load Ed25519 key file {p}: not a PEM private key (or wrong password)"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(
            f"cannot load Ed25519 key file {p}: it holds a {type(key).__name__}, not Ed25519"
        )
    return key


# --------------------------------------------------------------------------- signers


class HmacSigner:
    """HMAC-SHA256 signer over an API secret (hex output)."""

    __slots__ = ("_secret",)
    key_type = "HMAC_SHA256"

    def __init__(self, secret: SecretLike | str | bytes) -> None:
        raw = secret.get_secret_value() if isinstance(secret, SecretLike) else secret
        if isinstance(raw, str):
            raw = raw.encode()
        if not isinstance(raw, bytes) or not raw:
            raise ValueError("HMAC secret must be a non-empty string")
        self._secret = raw

    def sign(self, payload: str) -> str:
        return hmac_signature(self._secret, payload)

    def __repr__(self) -> str:
        return f"HmacSigner(secret={_REDACTED})"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("signers are not picklable (they hold a secret)")


class Ed25519Signer:
    """Ed25519 signer (base64 output). The only key type ``session.logon`` accepts."""

    __slots__ = ("_key",)
    key_type = "ED25519"

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        if not isinstance(private_key, Ed25519PrivateKey):
            raise TypeError("Ed25519Signer needs an Ed25519PrivateKey")
        self._key = private_key

    @classmethod
    def from_pem_file(cls, path: str | Path, password: bytes | SecretLike | None = None
                      ) -> Ed25519Signer:
        """Build from a PEM file; raises KeyFileError like ``load_ed25519_key``."""
        return cls(load_ed25519_key(path, password))

    def sign(self, payload: str) -> str:
        return ed25519_signature(self._key, payload)

    def public_key_pem(self) -> str:
        """The public key as PEM (what you register with Binance; not secret)."""
        return self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")

    def __repr__(self) -> str:
        return f"Ed25519Signer(key={_REDACTED})"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("signers are not picklable (they hold a secret)")


# --------------------------------------------------------------------------- payloads


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"cannot JSON-encode {type(value).__name__}")


def wire_value(value: Any) -> str | int:
    """A parameter value as it goes on the wire and into the signature payload.

    bool -> "true"/"false"; Decimal -> plain string; Enum -> its value; int stays int (INT params
    such as ``timestamp`` must be JSON integers, §2.1); list/dict -> compact JSON string.

    Raises:
        TypeError: a float (prices and quantities must be Decimal) or another unsupported type.
        ValueError: a NaN or infinite Decimal.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return value
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot send non-finite Decimal {value}")
        return format(value, "f")
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, separators=(",", ":"), default=_json_default)
    if isinstance(value, float):
        raise TypeError("float parameter refused: pass prices and quantities as Decimal or str")
    raise TypeError(f"unsupported parameter type {type(value).__name__}")


def _wire_params(params: Mapping[str, Any]) -> dict[str, str | int]:
    return {k: wire_value(v) for k, v in params.items() if v is not None}


def ws_params(params: Mapping[str, Any]) -> dict[str, str | int]:
    """``params`` wire-encoded for an unsigned WS API request (``userDataStream.*`` with
    ``apiKey`` only, or a request on a ``session.logon``-authenticated connection, which still
    carries ``timestamp``). None values are dropped."""
    return _wire_params(params)


def ws_api_payload(params: Mapping[str, Any]) -> str:
    """The WS API signature payload: params except ``signature`` (and None values), sorted by
    name, as ``k=v&k=v`` with wire-encoded values (see ``wire_value``)."""
    wired = _wire_params(params)
    return "&".join(f"{k}={wired[k]}" for k in sorted(wired) if k != "signature")


def sign_ws_params(params: Mapping[str, Any], *, api_key: str | SecretLike, signer: Signer,
                   timestamp_ms: int) -> dict[str, Any]:
    """Return the ``params`` of a SIGNED WS API request: wire-encoded values plus ``apiKey``,
    ``timestamp`` and ``signature`` (§2.3). None values are dropped; the input is not changed."""
    key = api_key.get_secret_value() if hasattr(api_key, "get_secret_value") else api_key
    out: dict[str, Any] = _wire_params(params)
    out.pop("signature", None)
    out["apiKey"] = key
    out["timestamp"] = int(timestamp_ms)
    out["signature"] = signer.sign(ws_api_payload(out))
    return out


def rest_query(params: Mapping[str, Any]) -> str:
    """URL-encode ``params`` in the given order (REST does not sort), ``signature`` moved last.

    Values are wire-encoded (see ``wire_value``) and percent-encoded except the unreserved
    characters and ``:``/``/``, so ids in Binance's ``[.A-Za-z0-9:/_-]`` pass unchanged.
    """
    wired = _wire_params(params)
    sig = wired.pop("signature", None)
    parts = [f"{quote(k, safe='')}={quote(str(v), safe=':/')}" for k, v in wired.items()]
    if sig is not None:
        parts.append(f"signature={quote(str(sig), safe='')}")
    return "&".join(parts)


def signed_rest_query(params: Mapping[str, Any], *, signer: Signer, timestamp_ms: int,
                      recv_window_ms: int | None = None) -> str:
    """A SIGNED REST query string: ``params`` in order, then ``recvWindow`` (if given) and
    ``timestamp``, then ``signature`` over exactly the preceding text (§2.3). Send the API key
    in the ``X-MBX-APIKEY`` header."""
    body = {k: v for k, v in params.items() if k != "signature"}
    if recv_window_ms is not None:
        body["recvWindow"] = int(recv_window_ms)
    body["timestamp"] = int(timestamp_ms)
    payload = rest_query(body)
    return f"{payload}&signature={quote(signer.sign(payload), safe='')}"
