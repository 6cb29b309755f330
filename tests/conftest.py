"""Shared fixtures. Real-data tests read ../shared; they skip where it is absent unless
REQUIRE_SAMPLE_DATA=1 (CI), which turns the skip into a failure."""

from __future__ import annotations

import os
from collections.abc import Iterator
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SHARED = Path(os.environ.get("DORT5BOT_SHARED", ROOT.parent / "shared"))
DATA_DIR = SHARED / "data" / "binance-usdm"
SAMPLES_DIR = SHARED / "binance" / "samples"


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
        _require("REQUIRE_POSTGRES", f"PostgreSQL at TEST_POSTGRES_DSN unusable: {type(exc).__name__}")
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
