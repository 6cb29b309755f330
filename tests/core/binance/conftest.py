"""Fixtures of the Binance adapter tests: a running fake Binance and a raw HTTP session."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.fakes.binance import FakeBinance


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    """A fake Binance (REST, WS API, streams) on 127.0.0.1, stopped after the test."""
    async with FakeBinance() as f:
        yield f


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """An aiohttp session for raw REST calls to the fake."""
    async with aiohttp.ClientSession() as session:
        yield session
