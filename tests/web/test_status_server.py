"""GET /healthz and /metrics: what the container platform and Prometheus see."""

from __future__ import annotations

import aiohttp
import pytest

from bootstrap import build_services
from tests.conftest import eventually, shared_file
from utils.settings import load_settings
from web.status_server import Metric, StatusServer


async def get(port: int, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}{path}") as r:
        return r.status, await r.text()


async def test_paper_run_serves_health_and_metrics(tmp_path):
    settings = load_settings(_env_file=None, data_dir=tmp_path / "data", http_port=0,
                             timeframe="5s", ema_fast=5, ema_slow=13, adx_period=7, adx_min=15,
                             binance_api_secret="s3cr3t-never-shown")
    services = build_services(settings, replay=[str(shared_file("btcusdt_20240808.gz"))],
                              speed=0)
    await services.start()
    try:
        port = next(c for c in services.components if isinstance(c, StatusServer)).port
        await services.wait_feed()
        await eventually(lambda: services.engine.ledger.trades, timeout=5)
        status, body = await get(port, "/healthz")
        assert status == 200 and '"status":"ok"' in body and '"mode":"ARMED"' in body
        status, text = await get(port, "/metrics")
        assert status == 200
        samples = {line.split(" ")[0]: line.split(" ")[1] for line in text.splitlines()
                   if line and not line.startswith("#")}
        closed = len(services.engine.ledger.trades)
        assert float(samples["dort5bot_trades_closed_total"]) == closed >= 1
        assert samples['dort5bot_engine_mode{mode="ARMED"}'] == "1.0"
        assert "dort5bot_equity_usdt" in samples
        assert "s3cr3t" not in text and "s3cr3t" not in body
    finally:
        await services.stop()


async def test_unhealthy_snapshot_answers_503_and_a_broken_one_too():
    states = iter([(False, {"feed": "failed"})])

    def health():
        return next(states)  # the second call raises StopIteration: a broken snapshot

    server = StatusServer(health, lambda: [Metric("x_total", "x", 1, "counter")], port=0)
    await server.start()
    try:
        status, body = await get(server.port, "/healthz")
        assert status == 503 and '"feed":"failed"' in body
        status, body = await get(server.port, "/healthz")
        assert status == 503 and "StopIteration" in body
        status, text = await get(server.port, "/metrics")
        assert status == 200 and "x_total 1.0" in text
    finally:
        await server.stop()


def test_port_can_come_from_the_platforms_PORT(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PORT", "10000")
    assert load_settings().http_port == 10000
    monkeypatch.setenv("HTTP_PORT", "9100")
    assert load_settings().http_port == 9100


@pytest.mark.parametrize("value", ["-1", "70000", "http"])
def test_bad_port_is_a_clear_error(monkeypatch, tmp_path, value):
    from utils.settings import SettingsError

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HTTP_PORT", value)
    with pytest.raises(SettingsError, match="HTTP_PORT"):
        load_settings()
