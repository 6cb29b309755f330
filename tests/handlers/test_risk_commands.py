"""/risk, /halt, /arm while HALTED and /status through the real PTB application against the
fake Bot API (the same harness as test_telegram_e2e)."""

from __future__ import annotations

from core.events import EngineMode, PositionPhase
from tests.conftest import eventually
from tests.handlers.test_telegram_e2e import ADMIN, buttons, running_bot


async def test_halt_asks_then_closes_and_halts_and_arm_shows_the_reason(tmp_path, data_dir):
    async with running_bot(tmp_path, data_dir) as bot:
        assert bot.engine.state.phase is PositionPhase.OPEN  # the replay leaves one open
        (prompt,) = await bot.command("/halt exchange looks wrong")
        assert "exchange looks wrong" in prompt.text
        (yes, yes_data), _ = buttons(prompt)
        assert yes == "Yes, /halt" and bot.engine.state.mode is EngineMode.ARMED
        assert await bot.press(yes_data, prompt.message_id) == "Done"
        await eventually(lambda: bot.engine.state.phase is PositionPhase.FLAT)
        assert bot.engine.state.mode is EngineMode.HALTED
        assert bot.engine.state.halt_reason == "exchange looks wrong"
        assert bot.engine.ledger.trades[-1].exit_reason.value == "HALT"
        for alert in ("kill switch (halt)", "needs a human</b> (exchange looks wrong)"):
            await eventually(lambda a=alert: any(a in x for x in bot.fake.texts_to(ADMIN)))

        status = (await bot.command("/status"))[0].text
        assert "<b>HALTED</b> since" in status and "exchange looks wrong" in status
        risk = (await bot.command("/risk"))[0].text
        assert "<b>HALTED</b> since" in risk
        assert "Daily loss: " in risk and " / 50 USDT" in risk
        assert "Cooldowns: none running" in risk

        (reply,) = await bot.command("/disarm")
        assert "only /arm lifts it" in reply.text
        assert bot.engine.state.mode is EngineMode.HALTED
        (prompt,) = await bot.command("/flat")
        (_, yes_data), _ = buttons(prompt)
        assert await bot.press(yes_data, prompt.message_id) == "Done"
        assert bot.engine.state.mode is EngineMode.HALTED  # /flat never lifts a halt

        (ask,) = await bot.command("/arm")  # paper mode, but HALTED: it asks
        assert "exchange looks wrong" in ask.text and ask.reply_markup
        (_, yes_data), _ = buttons(ask)
        assert await bot.press(yes_data, ask.message_id) == "Done"
        await eventually(lambda: bot.engine.state.mode is EngineMode.ARMED)
        assert bot.engine.state.halt_reason == ""


async def test_halted_survives_a_restart_flat_and_arm_still_asks(tmp_path, data_dir):
    async with running_bot(tmp_path, data_dir) as bot:
        (prompt,) = await bot.command("/halt")
        (_, yes_data), _ = buttons(prompt)
        await bot.press(yes_data, prompt.message_id)
        await eventually(lambda: bot.engine.state.phase is PositionPhase.FLAT)
        reason = bot.engine.state.halt_reason
        assert reason == "halted by hand (telegram)"

    async with running_bot(tmp_path, data_dir, autostart_feed=False) as bot:
        assert bot.engine.state.mode is EngineMode.HALTED
        assert bot.engine.state.halt_reason == reason
        assert bot.engine.state.phase is PositionPhase.FLAT
        (ask,) = await bot.command("/arm")
        assert reason in ask.text and ask.reply_markup
        assert bot.engine.state.mode is EngineMode.HALTED  # nothing before the press
        assert any("HALTED" in t for t in bot.fake.texts_to(ADMIN))
