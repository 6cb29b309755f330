from core.event_bus import EventBus
from core.events import BookTicker, EngineError, MarketTick


def tick(price: float = 1.0) -> MarketTick:
    return MarketTick("BTCUSDT", 1, 1, price, 1.0, False)


def test_handlers_run_in_subscription_order():
    bus, seen = EventBus(), []
    bus.subscribe(MarketTick, lambda e: seen.append(("a", e.price)))
    bus.subscribe(MarketTick, lambda e: seen.append(("b", e.price)))
    bus.publish(tick(2.0))
    assert seen == [("a", 2.0), ("b", 2.0)]


def test_routes_by_exact_type_and_catch_all_runs_last():
    bus, seen = EventBus(), []
    bus.subscribe_all(lambda e: seen.append(("all", type(e).__name__)))
    bus.subscribe(MarketTick, lambda e: seen.append(("tick", type(e).__name__)))
    bus.publish(BookTicker("BTCUSDT", 1, 1.0, 1.0, 2.0, 1.0))
    bus.publish(tick())
    assert seen == [("all", "BookTicker"), ("tick", "MarketTick"), ("all", "MarketTick")]


def test_nested_publish_is_dispatched_after_current_event_reaches_everyone():
    bus, seen = EventBus(), []

    def first(e):
        seen.append(("first", type(e).__name__))
        if isinstance(e, MarketTick):
            bus.publish(BookTicker("BTCUSDT", 1, 1.0, 1.0, 2.0, 1.0))

    bus.subscribe(MarketTick, first)
    bus.subscribe(MarketTick, lambda e: seen.append(("second", type(e).__name__)))
    bus.subscribe(BookTicker, first)
    bus.publish(tick())
    assert seen == [("first", "MarketTick"), ("second", "MarketTick"), ("first", "BookTicker")]


def test_failing_subscriber_is_isolated_and_reported():
    bus, seen, errors = EventBus(), [], []

    def boom(e):
        raise RuntimeError("broken handler")

    bus.subscribe(MarketTick, boom)
    bus.subscribe(MarketTick, lambda e: seen.append(e.price))
    bus.subscribe(EngineError, errors.append)
    bus.publish(tick(3.0))
    bus.publish(tick(4.0))
    assert seen == [3.0, 4.0]
    assert bus.errors == 2
    assert len(errors) == 2 and "broken handler" in errors[0].message


def test_failing_error_handler_does_not_loop():
    bus = EventBus()

    def boom(e):
        raise RuntimeError("x")

    bus.subscribe(EngineError, boom)
    bus.subscribe(MarketTick, boom)
    bus.publish(tick())
    assert bus.errors == 2


def test_unsubscribe_stops_delivery():
    bus, seen = EventBus(), []
    h = seen.append
    bus.subscribe(MarketTick, h)
    bus.unsubscribe(MarketTick, h)
    bus.publish(tick())
    assert seen == []
