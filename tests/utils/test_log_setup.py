"""Logging: secrets never reach the stream or the /logs ring. We read what the handler wrote and
assert on absence of secrets and on line structure, never on wording."""

from __future__ import annotations

import io
import logging
import secrets as pysecrets

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from utils.log_setup import add_secret, recent_log_lines, redact, setup_logging

TG_TOKEN = "7212345678:AAHk3qZx_9vYt-2mLpQrStUvWxYz0123456"
SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"


@pytest.fixture
def capture():
    """Install logging on a StringIO, restore the root logger afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)

    def install(json_lines: bool, *, secrets=(), ring_size: int = 500) -> io.StringIO:
        stream = io.StringIO()
        setup_logging("DEBUG", json_lines, secrets, stream=stream, ring_size=ring_size)
        return stream

    yield install
    for handler in root.handlers[:]:
        if handler not in saved[0]:
            root.removeHandler(handler)
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def fresh_secret() -> str:
    return "s3cr3t-" + pysecrets.token_hex(12)


@pytest.mark.parametrize("json_lines", [True, False])
def test_registered_secrets_absent_from_message_args_and_exception(capture, json_lines):
    at_setup, at_runtime, wrapped = fresh_secret(), fresh_secret(), fresh_secret()
    stream = capture(json_lines, secrets=[at_setup, None])
    add_secret(at_runtime)
    add_secret(SecretStr(wrapped))
    log = logging.getLogger("core.connection")

    log.info("connecting with key " + at_setup)
    log.warning("params %s / %r", at_runtime, {"k": wrapped})
    try:
        raise RuntimeError(f"auth failed for {at_setup} and {wrapped}")
    except RuntimeError:
        log.exception("request failed for %s", at_runtime)
    log.error("stack", stack_info=True, extra={"unused": at_setup})

    output = stream.getvalue()
    assert output.count("\n") >= 4
    ring = "\n".join(recent_log_lines(500))
    for secret in (at_setup, at_runtime, wrapped):
        assert secret not in output
        assert secret not in ring


@pytest.mark.parametrize("json_lines", [True, False])
def test_credential_patterns_are_masked_without_registration(capture, json_lines):
    stream = capture(json_lines)
    log = logging.getLogger("core.connection.rest")
    log.info("GET https://api.telegram.org/bot%s/getMe", TG_TOKEN)
    log.info("POST /fapi/v1/order?symbol=BTCUSDT&timestamp=1&signature=%s", SIGNATURE)
    log.info('ws api {"method":"order.place","params":{"apiKey":"%s","signature":"%s"}}',
             API_KEY, SIGNATURE)
    log.info("headers {'X-MBX-APIKEY': '%s'}", API_KEY)
    log.info("query apiKey=%s&recvWindow=5000", API_KEY)
    try:
        raise ValueError("bad signature=" + SIGNATURE)
    except ValueError:
        log.exception("X-MBX-APIKEY: %s", API_KEY)

    output = stream.getvalue() + "\n".join(recent_log_lines(50))
    for secret in (TG_TOKEN, SIGNATURE, API_KEY):
        assert secret not in output


def test_json_lines_are_parseable_records(capture):
    stream = capture(True)
    log = logging.getLogger("core.ordering")
    log.warning("phase %s -> %s", "FLAT", "ENTERING")
    try:
        _ = 1 / 0
    except ZeroDivisionError:
        log.exception("boom")
    records = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [r["level"] for r in records] == ["WARNING", "ERROR"]
    assert all(r["logger"] == "core.ordering" for r in records)
    assert all(r["ts"].endswith("Z") for r in records)
    assert records[0]["msg"] == "phase FLAT -> ENTERING"
    assert "ZeroDivisionError" in records[1]["exc"] and "exc" not in records[0]


def test_ring_returns_last_n_lines(capture):
    capture(False, ring_size=5)
    log = logging.getLogger("jobs.test")
    for i in range(12):
        log.info("line-%02d", i)
    last3 = recent_log_lines(3)
    assert len(last3) == 3
    assert ["line-09" in last3[0], "line-10" in last3[1], "line-11" in last3[2]] == [True] * 3
    assert len(recent_log_lines(100)) == 5
    assert recent_log_lines(0) == []


def test_bad_format_arguments_do_not_raise(capture):
    stream = capture(True)
    secret = fresh_secret()
    add_secret(secret)
    # Handed straight to our handler: pytest's own capture handler would fail the test first.
    (handler,) = [h for h in logging.getLogger().handlers if getattr(h, "stream", None) is stream]
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "two %s %s", (secret,), None)
    handler.handle(record)  # one argument missing
    assert stream.getvalue() and secret not in stream.getvalue()


def test_setup_twice_replaces_handlers(capture):
    first = capture(True)
    second = capture(False)
    logging.getLogger("x").info("once")
    assert first.getvalue() == "" and second.getvalue().count("\n") == 1


def test_redact_masks_known_secrets_and_patterns():
    secret = fresh_secret()
    add_secret(secret)
    text = redact(f"token {TG_TOKEN} key {secret} apiKey={API_KEY} signature={SIGNATURE}")
    for value in (TG_TOKEN, secret, API_KEY, SIGNATURE):
        assert value not in text
    assert redact("price 56019.20 qty 0.010 ts 1723100000000") == (
        "price 56019.20 qty 0.010 ts 1723100000000"
    )
    add_secret("")  # ignored, would otherwise match everywhere
    assert redact("plain") == "plain"


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_+/=.!",
               min_size=16, max_size=64),
       st.text(max_size=40), st.text(max_size=40),
       st.sampled_from([" ", "=", "/", '"', ":", "\n", "'", "&"]))
def test_any_registered_secret_is_absent(secret, before, after, sep):
    add_secret(secret)
    assert secret not in redact(before + sep + secret + sep + after + sep + secret)


def test_redaction_masks_whole_tokens_only_and_ignores_short_secrets():
    add_secret("USDT")  # too short to be a key: refused, never masked
    assert redact("BTCUSDT 1 USDT") == "BTCUSDT 1 USDT"
    secret = "Ab12Cd34Ef56Gh78Ij90"
    add_secret(secret)
    assert redact(f"key={secret}&x") == "key=***&x"
    assert redact(f"x{secret}9") == f"x{secret}9"  # part of a longer token: not this secret
