"""EngineState persistence and client order ids; Settings parsing, validation and secrecy."""

from __future__ import annotations

import json
import os
import re
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from core.events import EngineMode, PositionPhase, Side
from core.state import EngineState, TrackedOrder
from core.store import Store
from utils.settings import Settings, SettingsError, load_settings, parse_timeframe

D = Decimal
CLIENT_ID_RE = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")  # Binance newClientOrderId


# --------------------------------------------------------------------------- EngineState


def _busy_state(store: Store | None) -> EngineState:
    st_ = EngineState(mode=EngineMode.ARMED, store=store)
    st_.phase = PositionPhase.EXITING
    st_.symbol = "BTCUSDT"
    st_.side = Side.SHORT
    st_.quantity = D("0.012")
    st_.entry_price = D("64123.40")
    st_.stop_loss = D("65000.0")
    st_.take_profit = D("62000.00")
    st_.opened_ms = 1_700_000_000_123
    st_.close_pending = "TP"
    st_.exit_attempts = 2
    for intent, side, filled in (("ENTRY", "SELL", "0.012"), ("TP", "BUY", "0.00500000")):
        cid = st_.next_client_order_id("E" if intent == "ENTRY" else "X", 1_700_000_000_000)
        st_.orders[cid] = TrackedOrder(
            client_order_id=cid, symbol="BTCUSDT", side=side, quantity=D("0.012"),
            intent=intent, reduce_only=intent != "ENTRY", submitted_ms=1_700_000_000_000,
            filled_qty=D(filled), status="PARTIALLY_FILLED",
        )
    return st_


def test_state_save_load_round_trip(tmp_path):
    path = tmp_path / "sub" / "journal.sqlite3"
    original = _busy_state(Store.open(path))
    original.save()

    loaded = EngineState.load(Store.open(path), default_mode=EngineMode.DISARMED)

    assert loaded == original
    assert loaded.seq == 2 and loaded.mode is EngineMode.ARMED
    assert loaded.phase is PositionPhase.EXITING and loaded.side is Side.SHORT
    order = loaded.orders[next(iter(loaded.orders))]
    assert isinstance(order.quantity, Decimal) and isinstance(order.filled_qty, Decimal)
    # Decimals keep their exact text, trailing zeros included
    assert [str(o.filled_qty) for o in loaded.orders.values()] == ["0.012", "0.00500000"]
    assert str(loaded.entry_price) == "64123.40"


def test_flat_state_round_trip(tmp_path):
    path = tmp_path / "journal.sqlite3"
    original = EngineState(mode=EngineMode.HALTED, store=Store.open(path))
    original.save()
    assert EngineState.load(Store.open(path), default_mode=EngineMode.ARMED) == original


def test_empty_store_starts_fresh_in_the_default_mode(tmp_path):
    state = EngineState.load(Store.open(tmp_path / "db"), default_mode=EngineMode.ARMED)
    assert state.mode is EngineMode.ARMED and state.phase is PositionPhase.FLAT
    assert state.orders == {} and state.seq == 0


def test_in_memory_state_never_writes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    state = EngineState.load(None, default_mode=EngineMode.DISARMED)
    state.next_client_order_id("E", 1)
    state.save()
    assert list(tmp_path.iterdir()) == []


@settings(max_examples=50, deadline=None)
@given(
    kinds=st.lists(st.sampled_from(["E", "X"]), min_size=1, max_size=40),
    ts_ms=st.integers(min_value=0, max_value=9_999_999_999_999),  # 13 digits: year 2286
    start_seq=st.integers(min_value=0, max_value=10**12),
)
def test_client_order_ids_are_unique_short_and_valid(kinds, ts_ms, start_seq):
    state = EngineState(seq=start_seq)
    ids = [state.next_client_order_id(k, ts_ms) for k in kinds]  # same ms: seq separates them
    assert len(set(ids)) == len(ids)
    for cid in ids:
        assert len(cid) <= 36 and CLIENT_ID_RE.match(cid), cid


def test_seq_persists_so_ids_never_repeat_after_restart(tmp_path):
    path = tmp_path / "journal.sqlite3"
    first = EngineState.load(Store.open(path), default_mode=EngineMode.ARMED)
    before = {first.next_client_order_id("E", 1_000) for _ in range(3)}
    first.save()

    second = EngineState.load(Store.open(path), default_mode=EngineMode.ARMED)
    assert second.seq == first.seq == 3
    after = {second.next_client_order_id("E", 1_000) for _ in range(3)}  # same ms as before
    assert len(after) == 3 and before.isdisjoint(after)


def test_clear_position_keeps_mode_orders_and_seq():
    state = _busy_state(None)
    orders, seq = dict(state.orders), state.seq
    state.clear_position()
    assert (state.symbol, state.side, state.quantity, state.close_pending) == ("", None, 0, "")
    assert state.mode is EngineMode.ARMED and state.orders == orders and state.seq == seq


# --------------------------------------------------------------------------- settings

SECRET = "sEcReT-9f8e7d6c5b4a"
TOKEN = "123456:AAH-token-q1w2e3r4t5"


@pytest.fixture
def env(monkeypatch, tmp_path):
    """A clean environment and a cwd without a .env: only what the test sets counts."""
    fields = set(Settings.model_fields)
    for key in list(os.environ):
        if key.lower() in fields:
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def test_defaults_are_safe_paper_settings(env):
    s = load_settings()
    assert s.trading_mode == "paper"
    assert s.taker_fee_pct == D("0.05")
    assert s.symbols == ("BTCUSDT",) and s.timeframe_ms == 60_000
    assert s.binance_api_secret is None and s.telegram_bot_token is None


def test_symbols_are_split_trimmed_and_upper_cased(env):
    env.setenv("SYMBOLS", "btcusdt, ethusdt")
    assert load_settings().symbols == ("BTCUSDT", "ETHUSDT")


def test_dot_env_in_the_working_directory_is_read(env, tmp_path):
    (tmp_path / ".env").write_text("LEVERAGE=7\n", "utf-8")
    assert load_settings().leverage == 7


def test_environment_overrides_dot_env_and_overrides_win(env, tmp_path):
    (tmp_path / ".env").write_text("LEVERAGE=7\n", "utf-8")
    env.setenv("LEVERAGE", "8")
    assert load_settings().leverage == 8
    assert load_settings(leverage=9).leverage == 9


@pytest.mark.parametrize(("text", "ms"), [
    ("1s", 1_000), ("5s", 5_000), ("1m", 60_000), ("15m", 900_000), ("60m", 3_600_000),
    ("1h", 3_600_000), ("3600s", 3_600_000), (" 1M ", 60_000),
])
def test_parse_timeframe_accepts_1s_to_1h(text, ms):
    assert parse_timeframe(text) == ms


@pytest.mark.parametrize("text", ["0s", "2h", "61m", "abc", "", "m", "1d", "-1m", "1.5m",
                                  "3601s"])
def test_parse_timeframe_rejects_outside_or_malformed(text):
    with pytest.raises(ValueError):
        parse_timeframe(text)


BAD = [
    ({"LEVERAGE": "500"}, "LEVERAGE", "500"),
    ({"LEVERAGE": "0"}, "LEVERAGE", None),
    ({"TIMEFRAME": "7x"}, "TIMEFRAME", "7x"),
    ({"TIMEFRAME": "2h"}, "TIMEFRAME", "2h"),
    ({"EMA_FAST": "31", "EMA_SLOW": "29"}, "EMA_FAST", "31"),
    ({"TRADING_MODE": "moon"}, "TRADING_MODE", "moon"),
    ({"SYMBOLS": "btc-usdt"}, "SYMBOLS", "btc-usdt"),
    ({"RISK_FRACTION": "1.7"}, "RISK_FRACTION", "1.7"),
    ({"MAX_NOTIONAL": "-3"}, "MAX_NOTIONAL", "-3"),
]


@pytest.mark.parametrize(("values", "name", "bad"), BAD, ids=[b[1] + "=" + "/".join(b[0].values())
                                                             for b in BAD])
def test_bad_value_names_the_variable_but_not_the_value(env, values, name, bad):
    for k, v in values.items():
        env.setenv(k, v)
    with pytest.raises(SettingsError) as err:
        load_settings()
    text = str(err.value)
    assert name in text
    if bad is not None:
        assert bad.lower() not in text.lower()


def _with_secrets(env) -> None:
    env.setenv("BINANCE_API_SECRET", SECRET)
    env.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    if "telegram_admin_ids" in Settings.model_fields:
        env.setenv("TELEGRAM_ADMIN_IDS", "123456789")


def test_secrets_never_appear_in_repr_str_or_public_view(env):
    _with_secrets(env)
    s = load_settings()
    assert s.binance_api_secret.get_secret_value() == SECRET  # it is loaded...
    assert s.telegram_bot_token.get_secret_value() == TOKEN
    view = s.public_view()
    assert view["binance_api_secret"] == "(set)" and view["telegram_bot_token"] == "(set)"
    assert view["binance_api_key"] == "(unset)"
    for text in (repr(s), str(s), json.dumps(view), repr(view)):  # ...but never shown
        assert SECRET not in text and TOKEN not in text


def test_secrets_never_appear_in_a_settings_error(env):
    _with_secrets(env)
    env.setenv("LEVERAGE", "500")
    env.setenv("TIMEFRAME", "7x")
    with pytest.raises(SettingsError) as err:
        load_settings()
    text = str(err.value) + repr(err.value)
    assert "LEVERAGE" in text and "TIMEFRAME" in text
    assert SECRET not in text and TOKEN not in text
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_settings_are_frozen(env):
    s = load_settings()
    with pytest.raises(ValidationError, match="frozen"):
        s.leverage = 50  # type: ignore[misc]
    assert s.leverage == 5


@pytest.mark.parametrize("value", ["USDT", "short-key", "password", "CHANGEME"])
def test_a_short_or_common_secret_is_refused_without_echoing_it(value):
    from utils.settings import SettingsError, load_settings

    with pytest.raises(SettingsError) as exc:
        load_settings(binance_api_key=value)
    assert "BINANCE_API_KEY" in str(exc.value) and value not in str(exc.value)
