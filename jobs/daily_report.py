"""Daily report: the last 24 hours' PnL and the equity chart to every admin, at
DAILY_REPORT_HOUR (UTC)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from handlers.cmd_pnl import DAY_MS, send_pnl
from handlers.outbox import Priority


async def daily_report(context: Any) -> None:
    d = context.bot_data["deps"]
    mode = d.notify.mode("daily")  # /notify daily on|silent|off
    if mode == "off":
        return
    since = d.services.now_ms() - DAY_MS
    title = d.texts.plain("Daily summary")
    await send_pnl(d, sorted(d.admins), "24h", title, since, priority=Priority.ALERT,
                   silent=mode == "silent")


def schedule(job_queue: Any, *, hour: int) -> None:
    job_queue.run_daily(daily_report, time=dt.time(hour=hour, tzinfo=dt.UTC),
                        name="daily_report")
