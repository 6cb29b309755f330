"""Public market-data REST access: the ``core.ports.MarketDataRest`` port over a ``RestClient``
and the ``RateLimiter`` that counts its weight.

* ``PublicRest.shared(rest, limiter)``: the Binance connection's client and limiter (testnet,
  live): the market-data worker's requests count in the same REQUEST_WEIGHT pool as trading's,
  and the connection closes the client.
* ``PublicRest.standalone(rest_url, ...)``: paper mode: its own unsigned client and limiter on
  its own server clock (the same per-IP limit, nobody else to share it with); ``close()``
  closes it.
"""

from __future__ import annotations

from core.binance.clock import ServerClock
from core.binance.market_rest import MarketRest, WorkerBudget
from core.binance.rate_limit import RateLimiter
from core.binance.rest import RestClient


class PublicRest:
    """A REST client with its rate limiter, handed to the market-data worker.

    Args:
        rest: the client (public endpoints only are used through this port).
        limiter: the limiter ``rest`` sends through (its clock is the server clock).
        owned: ``close()`` closes ``rest`` (True only for a client nobody else uses).
    """

    def __init__(self, rest: RestClient, limiter: RateLimiter, *, owned: bool) -> None:
        self.rest = rest
        self.limiter = limiter
        self.owned = owned

    @classmethod
    def shared(cls, rest: RestClient, limiter: RateLimiter) -> PublicRest:
        """The connection's client and limiter; ``close()`` leaves them to the connection."""
        return cls(rest, limiter, owned=False)

    @classmethod
    def standalone(cls, rest_url: str, *, rate_limit_fraction: float) -> PublicRest:
        """An unsigned client for ``rest_url`` with its own limiter using
        ``rate_limit_fraction`` (0..1] of Binance's limits; ``close()`` closes it."""
        clock = ServerClock()
        limiter = RateLimiter(clock, fraction=rate_limit_fraction)
        rest = RestClient(rest_url, api_key=None, signer=None, clock=clock, limiter=limiter)
        return cls(rest, limiter, owned=True)

    def market_rest(self, budget_fraction: float) -> MarketRest:
        """Fetchers on a ``WorkerBudget`` of ``budget_fraction`` of the limiter's
        REQUEST_WEIGHT per minute, with server time from the limiter's clock."""
        budget = WorkerBudget(self.limiter, budget_fraction)
        return MarketRest(self.rest, budget, self.limiter.clock.now_ms)

    async def close(self) -> None:
        """Close the client if owned (idempotent); a shared one is the connection's to close."""
        if self.owned:
            await self.rest.close()
