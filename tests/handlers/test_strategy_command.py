"""/strategy, /strategy list, /strategy set (admin, confirmation, only while flat, persisted),
/status's strategy line and /ta's verdict of every catalog rule plus the ensemble, end to end
with the real PTB Application on a replay against the fake Bot API server."""

from __future__ import annotations

import json

from core.events import PositionPhase
from tests.conftest import eventually
from tests.handlers.test_telegram_e2e import ADMIN, buttons, running_bot

RULES = ("ema_adx", "macd", "rsi_reversion", "donchian_breakout", "supertrend",
         "bollinger_squeeze", "ict_fvg")


async def test_strategy_show_list_and_set_only_while_flat_with_confirmation(tmp_path, data_dir):
    async with running_bot(tmp_path, data_dir) as bot:
        (shown,) = await bot.command("/strategy")
        assert shown.text.startswith("<b>Strategy</b>: <code>ema_adx</code> (from the settings)")
        assert "ema_fast=5" in shown.text and "adx_min=15" in shown.text

        (listed,) = await bot.command("/strategy list")
        for rule in RULES:
            assert f"<code>{rule}</code>: " in listed.text
        assert "<code>ensemble</code>" in listed.text

        (bad,) = await bot.command("/strategy set nope")
        assert bad.text.startswith("Not switched: unknown strategy 'nope'")
        (bad,) = await bot.command("/strategy set supertrend period=x")
        assert bad.text.startswith("Not switched: supertrend: parameter period=")

        assert bot.engine.state.phase is PositionPhase.OPEN  # the replay ends in a position
        (refused,) = await bot.command("/strategy set supertrend period=7")
        assert "a position is open" in refused.text and not refused.reply_markup

        (prompt,) = await bot.command("/close")
        await bot.press(buttons(prompt)[0][1], prompt.message_id)
        await eventually(lambda: bot.engine.state.phase is PositionPhase.FLAT)
        await eventually(lambda: any("manual close" in x for x in bot.fake.texts_to(ADMIN)))

        (prompt,) = await bot.command("/strategy set supertrend period=7 multiplier=2")
        assert "<code>supertrend</code> (period=7, multiplier=2.0" in prompt.text
        (yes, yes_data), (_, no_data) = buttons(prompt)
        assert yes == "Yes, switch" and len(yes_data.encode()) <= 64
        assert bot.engine.strategy.name == "ema_adx"  # nothing before the press
        assert await bot.press(yes_data, prompt.message_id) == "Done"
        assert bot.engine.strategy.name == "supertrend"
        assert bot.engine.trending.strategy == "supertrend"
        rule = bot.engine.trending.rules["BTCUSDT"]
        assert rule.params["period"] == 7 and rule.verdict().bias in ("LONG", "SHORT")  # warm
        saved = json.loads((tmp_path / "data" / "strategy.json").read_text())
        assert saved == {"version": 1, "strategy": "supertrend",
                         "params": {"period": "7", "multiplier": "2"}}
        assert await bot.press(yes_data, prompt.message_id) == "This button is no longer valid."
        assert bot.services.market.strategy == "supertrend"

        (shown,) = await bot.command("/strategy")
        assert shown.text.startswith("<b>Strategy</b>: <code>supertrend</code> (set by")
        (status,) = await bot.command("/status")
        assert "Strategy: <code>supertrend</code>" in status.text

        (prompt,) = await bot.command("/strategy set ensemble threshold=0.5")
        assert await bot.press(buttons(prompt)[1][1], prompt.message_id) == "Cancelled"
        assert bot.engine.strategy.name == "supertrend"


async def test_ta_shows_every_catalog_rule_and_the_ensemble_confidence(tmp_path, data_dir):
    async with running_bot(tmp_path, data_dir, market_analysis_executor="thread") as bot:
        text, _photo = await bot.command("/ta btcusdt", expect=2, timeout=20)
        body = text.text
        assert "<b>Strategies</b> on 5s:" in body
        for rule in RULES:
            assert f"\n<code>{rule}</code> " in body
        assert "\nEnsemble: <b>" in body and "confidence " in body
        assert "ERROR" not in body
