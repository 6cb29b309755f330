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


def test_protective_stops_alert_when_placed_and_when_they_fail():
    from decimal import Decimal

    from core.events import ProtectiveOrderUpdate

    bus, lines = EventBus(), []
    ConsoleNotifier(bus, sink=lines.append)
    for status in ("NEW", "CANCELED", "PLACE_FAILED"):
        bus.publish(ProtectiveOrderUpdate(symbol="BTCUSDT", kind="SL", client_algo_id="a1",
                                          status=status, trigger_price=Decimal("67000"),
                                          detail="-2021" if status == "PLACE_FAILED" else "",
                                          ts_ms=1))
    assert [line.split(" ", 2)[2] for line in lines] == [
        "SL of BTCUSDT at 67000: placed on the exchange",
        "SL of BTCUSDT at 67000: PLACE_FAILED (-2021)",
    ]
