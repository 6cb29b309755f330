"""Shared fixtures. Real-data tests read ../shared; they skip where it is absent unless
REQUIRE_SAMPLE_DATA=1 (CI), which turns the skip into a failure."""

from __future__ import annotations

import os
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
