"""Shared fixtures. Real-data tests read ../shared; they skip where it is absent unless
REQUIRE_SAMPLE_DATA=1 (CI), which turns the skip into a failure."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SHARED = Path(os.environ.get("DORT5BOT_SHARED", ROOT.parent / "shared"))
DATA_DIR = SHARED / "data" / "binance-usdm"
SAMPLES_DIR = SHARED / "binance" / "samples"


_QUIETED_LOGGERS = ("aiosqlite", "httpx")


@contextlib.contextmanager
def restored_logging() -> Iterator[None]:
    """Put the logging configuration back on exit: ``main()`` installs handlers on the root
    logger that write to the caller's (then closed) captured stderr, and later tests would print
    "--- Logging error --- ValueError: I/O operation on closed file" or keep its levels. For
    fixtures wider than a test that call ``main()``; every test runs inside one already."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level,
             {name: logging.getLogger(name).level for name in _QUIETED_LOGGERS})
    try:
        yield
    finally:
        for handler in root.handlers[:]:
            if handler not in saved[0]:
                root.removeHandler(handler)
                handler.close()
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name, level in saved[2].items():
            logging.getLogger(name).setLevel(level)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The logging configuration is put back after every test (``restored_logging``)."""
    with restored_logging():
        yield


def _need(path: Path) -> Path:
    if path.exists():
        return path
    msg = f"shared data missing: {path}"
    if os.environ.get("REQUIRE_SAMPLE_DATA") == "1":
        pytest.fail(msg + " (REQUIRE_SAMPLE_DATA=1)")
    pytest.skip(msg)


@pytest.fixture
def data_dir() -> Path:
    """../shared/data/binance-usdm (real recorded futures data)."""
    return _need(DATA_DIR)


@pytest.fixture
def samples_dir() -> Path:
    """../shared/binance/samples (recorded Binance payloads)."""
    return _need(SAMPLES_DIR)


def shared_file(name: str) -> Path:
    """A file in ../shared/data/binance-usdm, or skip/fail as above."""
    return _need(DATA_DIR / name)


#: Default deadline of ``eventually``: generous, because it is only reached when a test fails; a
#: passing test returns as soon as the condition holds, on a loaded 2-core machine too.
EVENTUALLY_TIMEOUT_S = float(os.environ.get("EVENTUALLY_TIMEOUT_S", "15"))


async def eventually(condition: Callable[[], object], timeout: float | None = None) -> None:
    """Wait until ``condition()`` is truthy, polling between turns of the event loop.

    The one waiting helper of the test suite (no sleeps in tests). Wait on the state of the
    system under test (its events, phase, pending work), not only on a fake's: the fake changes
    first and the bot a few milliseconds later. ``timeout`` (s, default EVENTUALLY_TIMEOUT_S) is
    a safety net, never a measurement. Raises AssertionError when the deadline passes.
    """
    limit = EVENTUALLY_TIMEOUT_S if timeout is None else max(timeout, EVENTUALLY_TIMEOUT_S)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {limit:g}s")
        await asyncio.sleep(0.002)


def _require(env: str, msg: str) -> None:
    if os.environ.get(env) == "1":
        pytest.fail(f"{msg} ({env}=1)")
    pytest.skip(msg)


@pytest.fixture(scope="session")
def postgres_server_dsn() -> str:
    """DSN of a PostgreSQL server the tests may create databases in (``TEST_POSTGRES_DSN``,
    set by .ci/run, which starts the server). Skips without one unless REQUIRE_POSTGRES=1."""
    dsn = os.environ.get("TEST_POSTGRES_DSN")
    if not dsn:
        _require("REQUIRE_POSTGRES", "no PostgreSQL server (set TEST_POSTGRES_DSN)")
    try:
        import psycopg

        with psycopg.connect(dsn, connect_timeout=5, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001  any failure means: no usable server
        _require("REQUIRE_POSTGRES",
                 f"PostgreSQL at TEST_POSTGRES_DSN unusable: {type(exc).__name__}")
    return dsn  # type: ignore[return-value]


@pytest.fixture
def postgres_dsn(postgres_server_dsn: str) -> Iterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    import uuid

    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = postgres_server_dsn.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(postgres_server_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Path of a headless-capable Chromium (``CHROMIUM_PATH`` or ``chromium`` on PATH). Skips
    without one unless REQUIRE_CHROMIUM=1."""
    import shutil

    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or ""
    if not path or not Path(path).exists():
        _require("REQUIRE_CHROMIUM", "no Chromium (install Debian's chromium or set CHROMIUM_PATH)")
    return path
