"""Small asyncio helpers shared by the owned background tasks."""

from __future__ import annotations

import asyncio


async def cancel_and_wait(task: asyncio.Task | None) -> None:
    """Cancel ``task`` and wait until it has finished.

    The task's own CancelledError is swallowed; if the *caller* is being cancelled while it
    waits, that cancellation is re-raised, never hidden.
    """
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
