"""Signing: payload construction (PROTOCOL.md §2.3), HMAC/Ed25519, key loading, no secret leaks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import pickle
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr

from core.binance.signing import (
    Ed25519Signer,
    HmacSigner,
    KeyFileError,
    Signer,
    ed25519_signature,
    hmac_signature,
    load_ed25519_key,
    rest_query,
    sign_ws_params,
    signed_rest_query,
    ws_api_payload,
)
from core.events import OrderSide

# Binance's published HMAC example (API docs, "SIGNED Endpoint Examples").
DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
DOC_QUERY = ("symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
             "&recvWindow=5000&timestamp=1499827319559")
DOC_SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"


def test_hmac_matches_binance_documented_example() -> None:
    assert hmac_signature(DOC_SECRET, DOC_QUERY) == DOC_SIGNATURE
    assert hmac_signature(DOC_SECRET.encode(), DOC_QUERY) == DOC_SIGNATURE
    assert HmacSigner(SecretStr(DOC_SECRET)).sign(DOC_QUERY) == DOC_SIGNATURE


def test_ed25519_signature_is_base64_and_verifies() -> None:
    key = Ed25519PrivateKey.generate()
    sig = ed25519_signature(key, "apiKey=k&timestamp=1")
    raw = base64.b64decode(sig, validate=True)
    assert len(raw) == 64
    key.public_key().verify(raw, b"apiKey=k&timestamp=1")
    with pytest.raises(UnicodeEncodeError):
        ed25519_signature(key, "symbol=币安人生USDT")


def test_ws_api_payload_sorts_and_encodes_values() -> None:
    params = {
        "timestamp": 1705311512994, "symbol": "BTCUSDT", "reduceOnly": True,
        "price": Decimal("42088.0"), "quantity": Decimal("1E-3"), "side": OrderSide.BUY,
        "apiKey": "k", "newClientOrderId": "a:b/c", "orders": [{"p": Decimal("1.50")}],
        "recvWindow": None, "signature": "ignored", "priceProtect": False,
    }
    assert ws_api_payload(params) == (
        "apiKey=k&newClientOrderId=a:b/c&orders=[{\"p\":\"1.50\"}]&price=42088.0"
        "&priceProtect=false&quantity=0.001&reduceOnly=true&side=BUY&symbol=BTCUSDT"
        "&timestamp=1705311512994")


@pytest.mark.parametrize("value", [0.1, Decimal("NaN"), object()])
def test_floats_and_bad_values_are_refused(value: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        ws_api_payload({"price": value})


def test_sign_ws_params_adds_key_timestamp_signature() -> None:
    signer = HmacSigner("s3cret")
    params = {"symbol": "BTCUSDT", "quantity": Decimal("0.010"), "reduceOnly": False}
    out = sign_ws_params(params, api_key=SecretStr("my-key"), signer=signer,
                         timestamp_ms=1700000000000)
    assert params == {"symbol": "BTCUSDT", "quantity": Decimal("0.010"), "reduceOnly": False}
    assert out["apiKey"] == "my-key" and out["timestamp"] == 1700000000000
    assert out["quantity"] == "0.010" and out["reduceOnly"] == "false"
    payload = ("apiKey=my-key&quantity=0.010&reduceOnly=false&symbol=BTCUSDT"
               "&timestamp=1700000000000")
    expected = hmac.new(b"s3cret", payload.encode(), hashlib.sha256).hexdigest()
    assert out["signature"] == expected
    assert list(out)[-1] == "signature"


def test_sign_ws_params_with_ed25519() -> None:
    key = Ed25519PrivateKey.generate()
    out = sign_ws_params({"symbol": "ETHUSDT"}, api_key="ed", signer=Ed25519Signer(key),
                         timestamp_ms=5)
    key.public_key().verify(base64.b64decode(out["signature"]),
                            b"apiKey=ed&symbol=ETHUSDT&timestamp=5")


def test_rest_query_keeps_order_and_puts_signature_last() -> None:
    q = rest_query({"signature": "abc+/=", "symbol": "BTCUSDT", "side": "SELL",
                    "newClientOrderId": "x:y/z", "note": "a b&c", "reduceOnly": True})
    assert q == ("symbol=BTCUSDT&side=SELL&newClientOrderId=x:y/z&note=a%20b%26c"
                 "&reduceOnly=true&signature=abc%2B%2F%3D")


def test_signed_rest_query_signs_exactly_what_precedes_the_signature() -> None:
    q = signed_rest_query({"symbol": "LTCBTC", "side": "BUY", "type": "LIMIT",
                           "timeInForce": "GTC", "quantity": 1, "price": Decimal("0.1")},
                          signer=HmacSigner(DOC_SECRET), timestamp_ms=1499827319559,
                          recv_window_ms=5000)
    assert q == f"{DOC_QUERY}&signature={DOC_SIGNATURE}"


def test_signers_never_reveal_secrets(tmp_path: Path) -> None:
    hmac_signer = HmacSigner(SecretStr("top-secret-value"))
    ed_signer = Ed25519Signer(Ed25519PrivateKey.generate())
    for signer in (hmac_signer, ed_signer):
        assert isinstance(signer, Signer)
        text = repr(signer) + str(signer) + f"{signer}" + repr([signer])
        assert "top-secret-value" not in text and "PRIVATE" not in text
        assert not hasattr(signer, "__dict__")
        with pytest.raises(TypeError):
            pickle.dumps(signer)
    assert "BEGIN PUBLIC KEY" in ed_signer.public_key_pem()
    with pytest.raises(ValueError):
        HmacSigner("")


def _write(path: Path, key: object, password: bytes | None = None) -> Path:
    enc = (serialization.BestAvailableEncryption(password) if password
           else serialization.NoEncryption())
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,  # type: ignore[attr-defined]
                                       serialization.PrivateFormat.PKCS8, enc))
    return path


def test_load_ed25519_key(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    path = _write(tmp_path / "ed.pem", key)
    loaded = load_ed25519_key(path)
    assert loaded.public_key().public_bytes_raw() == key.public_key().public_bytes_raw()
    assert Ed25519Signer.from_pem_file(str(path)).sign("x") == ed25519_signature(key, "x")
    enc = _write(tmp_path / "enc.pem", key, b"pw")
    assert load_ed25519_key(enc, SecretStr("pw")).public_key().public_bytes_raw() == \
        key.public_key().public_bytes_raw()


def test_key_file_errors_name_the_path_but_not_the_key(tmp_path: Path) -> None:
    ed = _write(tmp_path / "ed.pem", Ed25519PrivateKey.generate())
    ec_key = _write(tmp_path / "ec.pem", ec.generate_private_key(ec.SECP256R1()))
    enc = _write(tmp_path / "enc.pem", Ed25519PrivateKey.generate(), b"pw")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nnot base64 at all\n"
                       "-----END PRIVATE KEY-----\n")
    cases = [
        (tmp_path / "missing.pem", None, "cannot read"),
        (garbage, None, "not a PEM private key"),
        (ec_key, None, "not Ed25519"),
        (enc, None, "needs a password"),
        (enc, b"wrong", "not a PEM private key (or wrong password)"),
        (ed, b"pw", "it is not encrypted"),
    ]
    for path, password, reason in cases:
        with pytest.raises(KeyFileError) as err:
            load_ed25519_key(path, password)
        message = str(err.value)
        assert str(path) in message and reason in message
        body = path.read_text() if path.exists() else ""
        secret_lines = [line for line in body.splitlines() if line and "-----" not in line]
        assert not any(line in message for line in secret_lines)
        assert err.value.__cause__ is None and "\n" not in message
