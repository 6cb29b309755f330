"""The page in a real headless Chromium (Debian's, Playwright) while the bot replays the shared
BTCUSDT capture: login, no console error, the position appearing with a live PnL, the chart's
entry marker and SL/TP lines, Disarm with the token, every screen, Turkish, a wrong token.

``UPDATE_SCREENSHOTS=1`` writes the screenshots to docs/dashboard/ (the README shows them);
otherwise they go to the test's temporary directory.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from core.events import EngineMode, PositionPhase
from tests.web.botthread import SECRET, TOKEN, BotThread

pytestmark = pytest.mark.realdata

ROOT = Path(__file__).resolve().parents[2]
VIEWS = ("trades", "strategy", "risk", "backtests", "logs", "settings")


def shots_dir(tmp_path: Path) -> Path:
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        out = ROOT / "docs" / "dashboard"
        out.mkdir(parents=True, exist_ok=True)
        return out
    return tmp_path


def open_page(browser, bot: BotThread, errors: list[str]):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(bot.url + "/")
    return context, page


def login(page, token: str) -> None:
    page.locator("#login").wait_for(state="visible")
    page.fill("#token", token)
    page.click("#login-form button[type=submit]")


def test_live_position_pnl_chart_markers_and_disarm(browser, live_bot: BotThread, tmp_path):
    from playwright.sync_api import expect

    errors: list[str] = []
    context, page = open_page(browser, live_bot, errors)
    try:
        login(page, TOKEN)
        expect(page.locator("#login")).to_be_hidden()
        expect(page.locator("#s-mode")).to_have_text("ARMED")
        expect(page.locator("#p-none")).to_be_visible()  # flat before the replay starts
        expect(page.locator("#live")).to_have_class("dot on")  # the WebSocket is up

        live_bot.call(live_bot.services.start_feed)
        engine = live_bot.services.engine
        # The second position (the replay's paced one): the first trade closed, this one open.
        live_bot.wait(lambda: len(engine.ledger.trades) == 1
                      and engine.state.phase is PositionPhase.OPEN)
        expect(page.locator("#p-open")).to_be_visible()  # the position appears (live)
        st = live_bot.call(lambda: engine.state)
        expect(page.locator("#p-side")).to_have_text(st.side.value)
        pnl = page.locator("#p-pnl")
        expect(pnl).not_to_have_text("-")
        first = pnl.inner_text()
        expect(pnl).not_to_have_text(first)  # the mark moved: PnL updated live

        # The chart: engine candles, the entry marker at the entry's bar, SL/TP price lines.
        page.wait_for_function("window.dort5bot.markers && window.dort5bot.markers.markers()"
                               ".some(m => m.shape === 'arrowUp' || m.shape === 'arrowDown')")
        opened_bar_s = st.opened_ms // 5000 * 5
        markers = page.evaluate("window.dort5bot.markers.markers()")
        entry = [m for m in markers if m["time"] == opened_bar_s and m["text"] == st.side.value]
        assert entry, markers
        expect(page.locator("#markers li.marker-entry").first).to_be_visible()
        lines = page.evaluate("window.dort5bot.lines.map(l => l.options())")
        prices = {ln["title"]: ln["price"] for ln in lines}
        assert prices["SL"] == pytest.approx(float(st.stop_loss))
        assert prices["TP"] == pytest.approx(float(st.take_profit))
        bars = page.evaluate("window.dort5bot.candles.data().length")
        assert bars > 20
        shots = shots_dir(tmp_path)
        page.screenshot(path=str(shots / "dashboard.png"), full_page=True)

        # Disarm, with the confirmation.
        page.click("[data-act=disarm]")
        expect(page.locator("#confirm")).to_be_visible()
        page.click("#confirm-yes")
        expect(page.locator("#s-mode")).to_have_text("DISARMED")
        assert live_bot.call(lambda: live_bot.services.engine.state.mode) is EngineMode.DISARMED
        assert live_bot.call(lambda: live_bot.services.engine.state.phase) is not PositionPhase.FLAT

        page.evaluate("document.getElementById('toast').classList.remove('show')")
        for view in VIEWS:
            page.click(f"#nav a[data-view={view}]")
            section = page.locator(f"#view-{view}")
            expect(section).to_be_visible()
            if view == "backtests":
                page.locator("#results-table tr.clickable").first.click()
                expect(page.locator("#r-trades tr").nth(1)).to_be_visible()
            elif view == "logs":  # live tail, redacted
                live_bot.call(lambda: logging.getLogger("tests.web").warning(
                    "dashboard tail check, key %s", SECRET))
                expect(page.locator("#log-lines")).to_contain_text("dashboard tail check, key ***")
            elif view in ("trades", "settings"):
                expect(section.locator("table tr").nth(1)).to_be_visible()
            else:
                expect(section.locator(".card").first).to_contain_text(
                    "ema_adx" if view == "strategy" else "max_notional")
            page.screenshot(path=str(shots / f"{view}.png"), full_page=True)
            assert SECRET not in page.content() and TOKEN not in page.content()

        page.select_option("#lang", "tr")
        expect(page.locator("#nav a[data-view=dashboard]")).to_have_text("Panel")
        page.click("#nav a[data-view=dashboard]")
        expect(page.locator("#p-open span").first).to_have_text("Yön")
        page.select_option("#lang", "en")
        assert errors == []
    finally:
        context.close()


def test_a_wrong_token_shows_the_login_again(browser, replayed_bot: BotThread):
    from playwright.sync_api import expect

    errors: list[str] = []
    context, page = open_page(browser, replayed_bot, errors)
    try:
        login(page, "not-the-token")
        expect(page.locator("#login-error")).to_have_text("Wrong token.")
        expect(page.locator("#login")).to_be_visible()
        login(page, TOKEN)
        expect(page.locator("#login")).to_be_hidden()
        expect(page.locator("#s-mode")).not_to_have_text("-")
        # A token that stops being valid (changed on the server, or edited): back to login.
        page.evaluate("sessionStorage.setItem('dort5bot.token', 'stale'); location.reload()")
        expect(page.locator("#login")).to_be_visible()
        expect(page.locator("#login-error")).to_have_text("Wrong token.")
        assert page.locator("#s-mode").inner_text() == "-"  # nothing of the bot was shown
    finally:
        context.close()
