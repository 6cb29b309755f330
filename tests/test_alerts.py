"""Console alerts: what a headless trader sees."""

from __future__ import annotations

from core.alerts import ConsoleNotifier
from core.event_bus import EventBus
from core.events import ConnectionStatus


def test_a_reconnect_storm_is_one_alert_per_outage():
    bus, lines = EventBus(), []
    ConsoleNotifier(bus, sink=lines.append)
    for i in range(5):  # five failed reconnects
        bus.publish(ConnectionStatus(stream="market/market", up=False, detail="dns", ts_ms=i))
    bus.publish(ConnectionStatus(stream="market/public", up=False, detail="dns", ts_ms=5))
    bus.publish(ConnectionStatus(stream="market/market", up=True, ts_ms=6))
    bus.publish(ConnectionStatus(stream="market/market", up=True, ts_ms=7))
    bus.publish(ConnectionStatus(stream="market/market", up=False, detail="reset", ts_ms=8))
    assert [line.split(" ", 2)[2] for line in lines] == [
        "connection market/market down: dns",
        "connection market/public down: dns",
        "connection market/market restored",
        "connection market/market down: reset",
    ]
