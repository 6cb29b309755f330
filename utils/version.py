"""The bot's own version: the project version from pyproject.toml and the code version.

One source for /version, the dashboard and the backtest results: ``GIT_COMMIT`` (the Docker
image sets it at build time; it has no ``.git``), else ``git describe --always --dirty`` of the
checkout, else "unknown".
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@lru_cache(maxsize=1)
def project_version() -> str:
    """``[project] version`` of pyproject.toml, or "unknown"."""
    try:
        with (ROOT / "pyproject.toml").open("rb") as f:
            return str(tomllib.load(f)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


def code_version() -> str:
    """``GIT_COMMIT`` when set, else the checkout's ``git describe --always --dirty
    --abbrev=12`` (a commit id, ``-dirty`` with uncommitted changes), else "unknown"."""
    env = os.environ.get("GIT_COMMIT", "").strip()
    if env and env != "unknown":
        return env[:40]
    try:
        done = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"],
                              cwd=ROOT, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    out = done.stdout.strip()
    return out if done.returncode == 0 and out else "unknown"


def describe() -> dict[str, str]:
    """``version``, ``commit``, ``python`` for /version."""
    return {"version": project_version(), "commit": code_version(),
            "python": sys.version.split()[0]}
