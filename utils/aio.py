"""Small asyncio helpers shared by the owned background tasks."""

from __future__ import annotations

import asyncio


async def cancel_and_wait(*tasks: asyncio.Task | None) -> list[Exception]:
    """Cancel ``tasks`` (None entries are skipped) and wait until every one has finished.

    Returns:
        The exceptions, other than cancellation, that tasks ended with (for the caller to log).

    Raises:
        asyncio.CancelledError: the *caller* was cancelled while waiting; its cancellation is
            never swallowed with the tasks' own.
    """
    live = [t for t in tasks if t is not None]
    for task in live:
        task.cancel()
    errors: list[Exception] = []
    for task in live:
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
        except Exception as exc:
            errors.append(exc)
    return errors
