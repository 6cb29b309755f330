"""Binance USDⓈ-M: the protocol layer and the live adapter built on it.

Protocol layer (sans-I/O, no sockets): ``signing`` (HMAC / Ed25519), ``errors`` (codes to
decisions), ``wire`` / ``parse`` / ``parse_market`` / ``models`` (parse at the edge).

Adapter (the only code that talks to the exchange): ``adapter.BinanceConnection`` implements
``core.ports.Connection``; ``live.live_connection_factory(settings)`` builds it and the market
feed for the runner. Parts: ``rest``, ``ws_api``, ``rate_limit``, ``clock``, ``user_stream`` and
``user_events``, ``order_flow`` and ``orders``, ``protective``, ``reconcile``, ``streams``,
``recorder``. ``tests/fakes/binance.py`` speaks the same protocol from the exchange's side.
Protocol facts come from ``shared/binance/PROTOCOL.md`` (cited by section).
"""
