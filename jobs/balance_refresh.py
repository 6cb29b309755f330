"""Balance refresh: every minute, ask the account for its balance and record an equity snapshot
(the journal's equity curve behind /pnl's chart)."""

from __future__ import annotations

from typing import Any

INTERVAL_S = 60.0


async def balance_refresh(context: Any) -> None:
    context.bot_data["deps"].services.refresh_balance()


def schedule(job_queue: Any, *, interval_s: float = INTERVAL_S) -> None:
    job_queue.run_repeating(balance_refresh, interval=interval_s, first=interval_s,
                            name="balance_refresh")
