"""File helpers shared by everything that persists small JSON documents under DATA_DIR."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_json_atomic(path: Path, doc: Any, *, indent: int | None = None) -> None:
    """Write ``doc`` as JSON to ``path`` atomically: a temp file beside it, then a rename, so a
    crash leaves either the old file or the new one, never half of one. Parent folders are
    created.

    Raises:
        OSError: the folder cannot be created or the file cannot be written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=indent), "utf-8")
    os.replace(tmp, path)
