"""The bot's own version: the project version from pyproject.toml and the git commit.

The commit comes from ``GIT_COMMIT`` (the Docker image sets it at build time) or from the
checkout's ``.git`` (read directly, no ``git`` process); "unknown" elsewhere.
"""

from __future__ import annotations

import os
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


def git_commit(root: Path = ROOT) -> str:
    """The 12-character commit id of ``root``'s checkout (``GIT_COMMIT`` wins), or "unknown".
    A checkout with uncommitted changes is not detected (that would need a git process)."""
    env = os.environ.get("GIT_COMMIT", "").strip()
    if env:
        return env[:12]
    git = root / ".git"
    try:
        if git.is_file():  # a worktree: "gitdir: <path>"
            git = Path(git.read_text().split(":", 1)[1].strip())
        head = (git / "HEAD").read_text().strip()
        if head.startswith("ref: "):
            ref = head[5:]
            ref_file = git / ref
            if not ref_file.exists():
                common = git / "commondir"
                base = (git / common.read_text().strip()) if common.exists() else git
                ref_file = base / ref
                if not ref_file.exists():
                    packed = (base / "packed-refs").read_text().splitlines()
                    head = next(line.split()[0] for line in packed if line.endswith(" " + ref))
                    return head[:12]
            head = ref_file.read_text().strip()
        return head[:12] if len(head) >= 12 else "unknown"
    except (OSError, IndexError, StopIteration, ValueError):
        return "unknown"


def describe() -> dict[str, str]:
    """``version``, ``commit``, ``python`` for /version, the API and backtest results."""
    return {"version": project_version(), "commit": git_commit(),
            "python": sys.version.split()[0]}
