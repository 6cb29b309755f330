"""Binance USDⓈ-M protocol layer: signing, error classification and parse-at-the-edge.

Sans-I/O: nothing in this package opens a socket. The live adapter (``core/connection*``)
builds on it; ``tests/fake_binance.py`` speaks the same protocol from the exchange's side.
Protocol facts come from ``shared/binance/PROTOCOL.md`` (cited by section).
"""
