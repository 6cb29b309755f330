"""The dashboard's REST API against the whole bot after a replay of the shared BTCUSDT capture:
auth, every endpoint's answer, paging and filters, bad parameters, 404/405, no secret in any
answer, actions through the engine facade."""

from __future__ import annotations

import pytest

from core.events import EngineMode, PositionPhase
from tests.web.botthread import SECRET, TOKEN, BotThread

pytestmark = pytest.mark.realdata

READS = ["/api/v1/status", "/api/v1/position", "/api/v1/balance", "/api/v1/trades",
         "/api/v1/equity", "/api/v1/candles", "/api/v1/signals", "/api/v1/risk",
         "/api/v1/strategy", "/api/v1/logs", "/api/v1/settings", "/api/v1/results",
         "/api/v1/results/results/capture-5s.json", "/api/v1/openapi.json"]


@pytest.mark.parametrize("path", READS + ["/api/v1/ws", "/api/v1/nope"])
@pytest.mark.parametrize("token", [None, "wrong-token", TOKEN + "x", ""])
def test_every_endpoint_refuses_a_missing_or_wrong_token(replayed_bot: BotThread, path, token):
    status, headers, body = replayed_bot.request("GET", path, token=token)
    assert status == 401
    assert body == {"error": {"code": "unauthorized", "message": "Missing or wrong bearer token."}}
    assert headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("action", ["arm", "disarm", "close", "flat", "halt"])
def test_actions_refuse_a_wrong_token_and_change_nothing(replayed_bot: BotThread, action):
    before = replayed_bot.call(lambda: replayed_bot.services.engine.state.mode)
    status, _, _ = replayed_bot.request("POST", f"/api/v1/actions/{action}", token="nope")
    assert status == 401
    assert replayed_bot.call(lambda: replayed_bot.services.engine.state.mode) is before


def test_status_position_and_balance_describe_the_running_bot(replayed_bot: BotThread):
    engine = replayed_bot.services.engine
    _, _, s = replayed_bot.request("GET", "/api/v1/status")
    assert s["trading_mode"] == "paper" and s["mode"] in ("ARMED", "DISARMED", "HALTED")
    assert s["phase"] == replayed_bot.call(lambda: engine.state.phase.value)
    assert s["health"]["feed"] == "finished" and s["health"]["events_fed"] > 80_000
    assert s["health"]["healthy"] is True and s["uptime_s"] >= 0
    _, _, p = replayed_bot.request("GET", "/api/v1/position")
    pos = p["position"]
    assert pos is not None, "the capture ends with a position open"
    st = replayed_bot.call(lambda: engine.state)
    assert (pos["symbol"], pos["side"], pos["quantity"], pos["entry_price"]) == (
        st.symbol, st.side.value, str(st.quantity), str(st.entry_price))
    mark, entry, qty = (float(pos[k]) for k in ("mark_price", "entry_price", "quantity"))
    sign = 1 if pos["side"] == "LONG" else -1
    assert float(pos["unrealized_pnl"]) == pytest.approx((mark - entry) * qty * sign)
    assert pos["stop_loss"] == str(st.stop_loss) and pos["take_profit"] == str(st.take_profit)
    assert float(pos["liquidation_price"]) > 0
    _, _, b = replayed_bot.request("GET", "/api/v1/balance")
    wallet = float(b["balances"][0]["wallet"])
    assert float(b["equity"]) == pytest.approx(wallet + float(pos["unrealized_pnl"]))


def test_trades_are_paged_and_filtered_by_time_and_symbol(replayed_bot: BotThread):
    _, _, all_ = replayed_bot.request("GET", "/api/v1/trades")
    trades = replayed_bot.call(lambda: list(replayed_bot.services.engine.ledger.trades))
    assert all_["total"] == len(trades) >= 1
    t = all_["trades"][0]
    assert set(t) == {"symbol", "side", "entry_ts_ms", "exit_ts_ms", "entry_price",
                      "exit_price", "quantity", "gross_pnl", "fees", "funding", "net_pnl",
                      "exit_reason"}
    assert t["net_pnl"] == str(trades[-1].net_pnl)
    exit_ms = t["exit_ts_ms"]
    q = "/api/v1/trades?"
    assert replayed_bot.request("GET", q + "symbol=ETHUSDT")[2]["total"] == 0
    assert replayed_bot.request("GET", q + "symbol=btcusdt")[2]["total"] == all_["total"]
    assert replayed_bot.request("GET", q + f"since_ms={exit_ms + 1}")[2]["total"] == 0
    assert replayed_bot.request("GET", q + f"until_ms={exit_ms - 1}")[2]["total"] == 0
    assert replayed_bot.request("GET", q + f"since_ms={exit_ms}&until_ms={exit_ms}"
                                )[2]["total"] == 1
    page = replayed_bot.request("GET", q + "limit=1&offset=1")[2]
    assert page["trades"] == all_["trades"][1:2] and page["limit"] == 1 and page["offset"] == 1


def test_equity_candles_and_markers(replayed_bot: BotThread):
    _, _, eq = replayed_bot.request("GET", "/api/v1/equity?max_points=3")
    assert len(eq["points"]) <= 3 and eq["total"] >= 3
    assert [p[0] for p in eq["points"]] == sorted(p[0] for p in eq["points"])
    _, _, c = replayed_bot.request("GET", "/api/v1/candles?symbol=BTCUSDT&timeframe=5s&limit=40")
    assert c["timeframe"] == "5s" and c["interval_ms"] == 5000 and len(c["candles"]) == 40
    opens = [k[0] for k in c["candles"]]
    assert opens == sorted(opens) and all(o % 5000 == 0 for o in opens)
    assert all(k[3] <= min(k[1], k[4]) <= max(k[1], k[4]) <= k[2] for k in c["candles"])
    st = replayed_bot.call(lambda: replayed_bot.services.engine.state)
    entries = [m for m in c["markers"] if m["kind"] == "entry"]
    assert any(m["ts_ms"] == st.opened_ms and m["price"] == str(st.entry_price) for m in entries)
    assert c["levels"]["stop_loss"] == str(st.stop_loss)
    assert c["levels"]["take_profit"] == str(st.take_profit)


def test_signals_risk_strategy_logs_settings(replayed_bot: BotThread):
    _, _, sig = replayed_bot.request("GET", "/api/v1/signals?limit=5")
    assert 1 <= len(sig["signals"]) <= 5
    assert {s["verdict"] for s in sig["signals"]} <= {"ACCEPTED", "REJECTED", "PENDING"}
    assert "ACCEPTED" in {s["verdict"] for s in sig["signals"]}
    _, _, risk = replayed_bot.request("GET", "/api/v1/risk")
    limits = {x["name"]: x for x in risk["limits"]}
    guardian = replayed_bot.services.engine.risk
    snap = replayed_bot.call(lambda: guardian.snapshot(replayed_bot.services.now_ms()))
    assert set(limits) == {row["name"] for row in snap["limits"]}
    assert {k: limits[k]["limit"] for k in limits} == {
        row["name"]: row["threshold"] for row in snap["limits"]}
    assert 0 < float(limits["max_notional"]["used"]) <= 1000  # the open position's notional
    assert risk["guardian"]["available"] is True and risk["halted"] is False
    _, _, strat = replayed_bot.request("GET", "/api/v1/strategy")
    assert strat["active"]["id"] == "ema_adx" and strat["active"]["params"]["ema_fast"] == 5
    assert strat["active"]["verdicts"][0]["bias"] in ("LONG", "SHORT", "NEUTRAL")
    assert "ema_adx" in {c["id"] for c in strat["catalog"]}
    _, _, logs = replayed_bot.request("GET", "/api/v1/logs?limit=2")
    assert isinstance(logs["lines"], list) and len(logs["lines"]) <= 2
    _, _, st = replayed_bot.request("GET", "/api/v1/settings")
    assert st["settings"]["binance_api_secret"] == "(set)"
    assert st["settings"]["api_token"] == "(set)" and st["settings"]["timeframe"] == "5s"


def test_stored_results_are_listed_and_opened(replayed_bot: BotThread):
    _, _, listing = replayed_bot.request("GET", "/api/v1/results")
    ids = [r["id"] for r in listing["results"]]
    assert ids == ["results/capture-5s.json"]
    entry = listing["results"][0]
    assert entry["kind"] == "backtest" and entry["summary"]["trades"] >= 1
    _, _, doc = replayed_bot.request("GET", "/api/v1/results/results/capture-5s.json")
    assert doc["kind"] == "backtest" and doc["result"]["stats"]["trades"] == entry["summary"][
        "trades"]
    for bad in ("state.json", "results/../state.json", "results%2F..%2Fstate.json",
                "..%2F..%2Fetc%2Fpasswd", "results/none.json"):
        status, _, body = replayed_bot.request("GET", f"/api/v1/results/{bad}")
        assert status == 404 and body["error"]["code"] == "not_found", bad


@pytest.mark.parametrize("query", [
    "/api/v1/trades?limit=0", "/api/v1/trades?limit=501", "/api/v1/trades?limit=abc",
    "/api/v1/trades?offset=-1", "/api/v1/trades?since_ms=5&until_ms=4",
    "/api/v1/trades?symbol=BTC-USDT", "/api/v1/trades?since_ms=1e3",
    "/api/v1/equity?max_points=1", "/api/v1/equity?until_ms=-5",
    "/api/v1/candles?timeframe=5x", "/api/v1/candles?symbol=%3Cscript%3E",
    "/api/v1/candles?limit=0", "/api/v1/signals?limit=1000", "/api/v1/logs?limit=x",
])
def test_bad_parameters_answer_400_naming_the_parameter(replayed_bot: BotThread, query):
    status, _, body = replayed_bot.request("GET", query)
    assert status == 400 and body["error"]["code"] == "bad_request"
    name = query.split("?")[1].split("=")[0]
    assert name in body["error"]["message"] or "until_ms" in body["error"]["message"]


@pytest.mark.parametrize("path", ["/api/v1/nope", "/api/v1/actions/explode",
                                  "/api/v1/candles?timeframe=4h",
                                  "/api/v1/candles?symbol=ETHUSDT&timeframe=5s",
                                  "/api/v1/results/x.json"])
def test_unknown_things_answer_404_in_the_error_shape(replayed_bot: BotThread, path):
    method = "POST" if "actions" in path else "GET"
    status, _, body = replayed_bot.request(method, path)
    assert status == 404 and set(body["error"]) == {"code", "message"}


def test_acting_is_post_only_and_reading_is_get_only(replayed_bot: BotThread):
    status, headers, body = replayed_bot.request("GET", "/api/v1/actions/disarm")
    assert status == 405 and headers["Allow"] == "POST"
    assert replayed_bot.call(lambda: replayed_bot.services.engine.state.mode) is not None
    status, headers, _ = replayed_bot.request("POST", "/api/v1/status")
    assert status == 405 and headers["Allow"] == "GET"


def test_no_secret_in_any_answer(replayed_bot: BotThread):
    paths = READS + ["/", "/i18n/en.json", "/i18n/tr.json", "/healthz", "/metrics",
                     "/static/app.js", "/api/v1/nope", "/api/v1/trades?limit=bad"]
    for path in paths:
        for token in (TOKEN, None, "wrong"):
            status, headers, body = replayed_bot.request("GET", path, token=token)
            text = body if isinstance(body, str) else str(body)
            assert SECRET not in text and TOKEN not in text, path
            assert SECRET not in str(headers) and TOKEN not in str(headers), path


def test_actions_go_through_the_engine_facade(replayed_bot: BotThread):
    engine = replayed_bot.services.engine
    mode = lambda: replayed_bot.call(lambda: engine.state.mode)  # noqa: E731
    phase = lambda: replayed_bot.call(lambda: engine.state.phase)  # noqa: E731
    status, _, r = replayed_bot.request("POST", "/api/v1/actions/disarm")
    assert status == 200 and r["mode"] == "DISARMED" and mode() is EngineMode.DISARMED
    _, _, s = replayed_bot.request("GET", "/api/v1/status")
    assert s["mode"] == "DISARMED" and s["mode_reason"] == "dashboard"
    _, _, r = replayed_bot.request("POST", "/api/v1/actions/arm")
    assert r["mode"] == "ARMED" and mode() is EngineMode.ARMED
    assert phase() is PositionPhase.OPEN
    _, _, r = replayed_bot.request("POST", "/api/v1/actions/close")
    assert r["done"] is True and r["mode"] == "ARMED"
    replayed_bot.wait(lambda: engine.state.phase is PositionPhase.FLAT)
    _, _, r = replayed_bot.request("POST", "/api/v1/actions/close")
    assert r["done"] is False
    _, _, r = replayed_bot.request("POST", "/api/v1/actions/halt")  # RISK's kill switch
    replayed_bot.wait(lambda: engine.state.mode is EngineMode.HALTED)
    _, _, risk = replayed_bot.request("GET", "/api/v1/risk")
    assert risk["halted"] is True and risk["halt_reason"] == "dashboard"
    _, _, s = replayed_bot.request("GET", "/api/v1/status")
    assert s["mode"] == "HALTED" and s["mode_reason"] == "dashboard"
    _, _, r = replayed_bot.request("POST", "/api/v1/actions/flat")
    assert r["done"] is False and mode() is EngineMode.HALTED  # flat never lifts a halt
    _, _, r = replayed_bot.request("POST", "/api/v1/actions/arm")
    assert r["mode"] == "ARMED" and mode() is EngineMode.ARMED
