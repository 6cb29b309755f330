"""The dashboard's locks without market data: token off/on, bind check, rate limit, CORS, the
page's texts from the bot's catalog."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from core.services import Services
from handlers.i18n import parse_po, po_path
from tests.conftest import shared_file
from tests.web.botthread import server_of
from utils.settings import load_settings
from web.dashboard import page_msgids, page_texts, status_server
from web.security import DashboardConfigError, RateLimiter, check_bind, is_loopback
from web.status_server import StatusServer

TOKEN = "unit-token-1234567890"


async def started(tmp_path, **overrides) -> Services:
    settings = load_settings(_env_file=None, data_dir=tmp_path / "data", http_port=0,
                             market_analysis_executor="thread", **overrides)
    services = Services(settings, feed=None)
    if settings.api_enabled:
        services.attach(status_server(services))
    else:  # what bootstrap does: the server without the dashboard
        services.attach(StatusServer(services.health_check, services.metrics, port=0))
    await services.start()
    return services


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def base(services: Services) -> str:
    return f"http://127.0.0.1:{server_of(services).port}"


async def test_without_a_token_the_api_is_off_but_health_and_page_answer(tmp_path, session):
    services = await started(tmp_path)
    try:
        async with session.get(base(services) + "/api/v1/status",
                               headers={"Authorization": "Bearer anything"}) as r:
            assert r.status == 503 and (await r.json())["error"]["code"] == "api_off"
        async with session.get(base(services) + "/healthz") as r:
            assert r.status == 200
        async with session.get(base(services) + "/") as r:
            assert r.status == 200 and "dort5bot" in await r.text()
    finally:
        await services.stop()


async def test_api_disabled_serves_only_health_and_metrics(tmp_path, session):
    services = await started(tmp_path, api_enabled=False, api_token=TOKEN)
    try:
        for path in ("/", "/api/v1/status", "/static/app.js"):
            async with session.get(base(services) + path,
                                   headers={"Authorization": f"Bearer {TOKEN}"}) as r:
                assert r.status == 404, path
        async with session.get(base(services) + "/metrics") as r:
            assert r.status == 200
    finally:
        await services.stop()


async def test_actions_are_rate_limited_across_all_of_them(tmp_path, session):
    services = await started(tmp_path, api_token=TOKEN, api_action_rate_per_min=2)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        for action in ("disarm", "arm"):
            async with session.post(base(services) + f"/api/v1/actions/{action}",
                                    headers=auth) as r:
                assert r.status == 200
        async with session.post(base(services) + "/api/v1/actions/disarm", headers=auth) as r:
            assert r.status == 429 and int(r.headers["Retry-After"]) >= 1
            assert (await r.json())["error"]["code"] == "rate_limited"
        assert services.engine.state.mode.value == "ARMED"  # the refused disarm did nothing
        async with session.get(base(services) + "/api/v1/status", headers=auth) as r:
            assert r.status == 200  # reads are not limited
    finally:
        await services.stop()


async def test_wrong_tokens_are_rate_limited_but_the_right_one_still_passes(tmp_path, session):
    services = await started(tmp_path, api_token=TOKEN, api_auth_failures_per_min=3)
    url = base(services) + "/api/v1/status"
    try:
        for _ in range(3):
            async with session.get(url, headers={"Authorization": "Bearer guess"}) as r:
                assert r.status == 401
        async with session.get(url, headers={"Authorization": "Bearer guess"}) as r:
            assert r.status == 429 and int(r.headers["Retry-After"]) >= 1
        async with session.get(url) as r:  # no token counts as a failure too
            assert r.status == 429
        async with session.get(url, headers={"Authorization": f"Bearer {TOKEN}"}) as r:
            assert r.status == 200
    finally:
        await services.stop()


def test_rate_limiter_is_a_sliding_window():
    now = [0.0]
    limiter = RateLimiter(2, 60, clock=lambda: now[0])
    assert limiter.take() == 0 and limiter.take() == 0
    assert limiter.take() == pytest.approx(60)
    now[0] = 30
    assert limiter.take() == pytest.approx(30)
    now[0] = 60
    assert limiter.take() == 0 and limiter.take() == 0  # both calls of t=0 expired
    assert limiter.take() > 0


async def test_cors_is_closed_by_default_and_opens_only_for_listed_origins(tmp_path, session):
    origin = "http://127.0.0.1:9999"
    preflight = {"Origin": origin, "Access-Control-Request-Method": "GET",
                 "Access-Control-Request-Headers": "authorization"}
    services = await started(tmp_path, api_token=TOKEN)
    try:
        async with session.options(base(services) + "/api/v1/status", headers=preflight) as r:
            assert r.status == 403 and "Access-Control-Allow-Origin" not in r.headers
        async with session.get(base(services) + "/api/v1/status",
                               headers={"Origin": origin,
                                        "Authorization": f"Bearer {TOKEN}"}) as r:
            assert r.status == 200 and "Access-Control-Allow-Origin" not in r.headers
    finally:
        await services.stop()
    services = await started(tmp_path, api_token=TOKEN, api_cors_origins=origin + "/")
    try:
        async with session.options(base(services) + "/api/v1/status", headers=preflight) as r:
            assert r.status == 204 and r.headers["Access-Control-Allow-Origin"] == origin
        async with session.options(base(services) + "/api/v1/status",
                                   headers={**preflight, "Origin": "http://evil.test"}) as r:
            assert r.status == 403
    finally:
        await services.stop()


@pytest.mark.parametrize("host,token,enabled,refused", [
    ("127.0.0.1", None, True, False), ("::1", None, True, False),
    ("localhost", None, True, False), ("0.0.0.0", None, True, True),
    ("192.168.1.5", None, True, True), ("example.org", None, True, True),
    ("0.0.0.0", TOKEN, True, False), ("0.0.0.0", None, False, False),
])
def test_exposed_bind_without_token_refuses_to_start(host, token, enabled, refused):
    settings = load_settings(_env_file=None, http_host=host, http_port=0, api_token=token,
                             api_enabled=enabled)
    if refused:
        with pytest.raises(DashboardConfigError, match="API_TOKEN"):
            check_bind(settings)
    else:
        check_bind(settings)
    assert is_loopback(host) is (host in ("127.0.0.1", "::1", "localhost"))


def test_main_run_exits_2_with_one_line_on_an_exposed_bind(monkeypatch, tmp_path, capsys):
    import main

    monkeypatch.chdir(tmp_path)
    for name, value in {"HTTP_HOST": "0.0.0.0", "HTTP_PORT": "0", "DATA_DIR": str(tmp_path),
                        "BINANCE_API_SECRET": "s3cr3t-for-this-test", "LOG_LEVEL": "ERROR"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("API_TOKEN", raising=False)
    data = shared_file("BTCUSDT-1m-2023-04-15.csv")
    assert main.main(["run", "--replay", str(data)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "API_TOKEN" in err[0] and "s3cr3t" not in err[0]


def test_page_texts_come_from_the_bot_catalog_in_both_languages():
    ids = page_msgids()
    assert {"Dashboard", "Disarm", "Unrealized PnL", "Wrong token."} <= set(ids)
    tr_catalog = parse_po(po_path("tr").read_text("utf-8"))
    missing = [m for m in ids if m not in tr_catalog]
    assert not missing, missing
    en, tr = page_texts("en"), page_texts("tr")
    assert en["Disarm"] == "Disarm" and tr["Disarm"] == tr_catalog["Disarm"] != "Disarm"
    assert set(en) == set(tr) == set(ids)
    with pytest.raises(ValueError):
        page_texts("xx")


async def test_action_answers_are_in_the_page_catalog(tmp_path):
    from web.api import ACTIONS, perform
    from web.readmodel import BotView

    settings = load_settings(_env_file=None, data_dir=tmp_path / "data",
                             market_analysis_executor="thread")
    view = BotView(Services(settings, feed=None))
    ids = set(page_msgids())
    for action in ACTIONS:
        answer = perform(view, action)
        assert answer["message"] in ids, answer
        assert answer["mode"] == view.services.engine.state.mode.value
