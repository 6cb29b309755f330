"""/dar: the bot exports itself (the seed bot's habit): the project's file tree as a message, a zip
of the source and one .txt with every source file, as documents.

What is exported: only files tracked by git (``git ls-files --cached``: an untracked
``prod.env`` or ``notes/credentials.txt`` never leaves). Without a git checkout (the Docker
image) only source-looking files (``SOURCE_SUFFIXES``) found by a directory walk. From either
list, never: ``.env*`` (except ``.env.example``), ``data/``, ``DATA_DIR`` wherever it is,
``.venv/``, caches, key and certificate files (also extensionless ``id_*`` keys and any file
whose first bytes are a PEM or OpenSSH private-key header), SQLite databases and their
``-wal``/``-shm``/``-journal`` files, files over 1 MB. Text is passed through ``redact`` as a
last line of defence, so a registered secret pasted into a source file still does not leave.
Building runs in an executor.
"""

from __future__ import annotations

import fnmatch
import io
import logging
import os
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from telegram import Update
from telegram.ext import ContextTypes

from handlers.common import deps, no_args, off_loop, reply, reply_chat_id
from handlers.outbox import escape
from handlers.registry import Command
from utils.log_setup import redact

logger = logging.getLogger(__name__)

MAX_FILE_BYTES = 1_000_000
EXCLUDED_DIRS = frozenset({"data", ".venv", "venv", "__pycache__", ".git", ".pytest_cache",
                           ".hypothesis", ".mypy_cache", ".ruff_cache", "node_modules", "out"})
SECRET_PATTERNS = ("*.pem", "*.key", "*.p12", "*.pfx", "*.crt", "*.der", "id_rsa*", "id_ed25519*",
                   "id_ecdsa*", "id_dsa*", "*.keystore", "*.jks", "*.kdbx", ".netrc", ".pypirc",
                   "*.secret", "*secret*", "*credential*", "*password*", "*.env", "*.sqlite3",
                   "*.sqlite", "*.db", "*-wal", "*-shm", "*-journal", "*.enc", "*.gpg", "*.asc")
SOURCE_SUFFIXES = frozenset({".py", ".md", ".toml", ".po", ".txt", ".yml", ".yaml", ".cfg",
                             ".ini", ".js", ".css", ".html", ".json", ".lock", ".example"})
SOURCE_NAMES = frozenset({"Makefile", "Dockerfile", ".gitignore", ".dockerignore"})
_KEY_HEADERS = (b"-----BEGIN", b"PuTTY-User-Key-File", b"openssh-key-v1")


@dataclass(frozen=True, slots=True)
class Export:
    files: list[str]   # relative POSIX paths, sorted
    tree: str          # plain text
    zip_bytes: bytes
    txt_bytes: bytes


def excluded(rel: str) -> bool:
    """True for paths /dar must never export (by name; sizes are checked separately)."""
    parts = PurePosixPath(rel).parts
    if any(p in EXCLUDED_DIRS for p in parts[:-1]):
        return True
    name = parts[-1]
    if name.startswith(".env") and name != ".env.example":
        return True
    if name in EXCLUDED_DIRS:
        return True
    return any(fnmatch.fnmatch(name.lower(), pat) for pat in SECRET_PATTERNS)


def _tracked(root: Path) -> list[str] | None:
    """Files git tracks under ``root``; None when ``root`` is not a git checkout."""
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "ls-files", "--cached", "-z"], cwd=root,
                             capture_output=True, timeout=20, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        logger.warning("git ls-files failed (%s); exporting source-looking files only",
                       type(exc).__name__)
        return None
    return [n for n in out.stdout.decode("utf-8", "replace").split("\0") if n]


def _walk_sources(root: Path) -> list[str]:
    names: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDED_DIRS
                             and not d.startswith("."))
        rel_dir = Path(dirpath).relative_to(root)
        names.extend((rel_dir / f).as_posix() for f in filenames
                     if f in SOURCE_NAMES or PurePosixPath(f).suffix in SOURCE_SUFFIXES)
    return names


def _inside(path: Path, directory: Path | None) -> bool:
    if directory is None:
        return False
    try:
        path.resolve().relative_to(directory.resolve())
    except (ValueError, OSError):
        return False
    return True


def _looks_like_key(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(64).lstrip()
    except OSError:
        return True
    if head.startswith(b"-----BEGIN"):
        return b"PRIVATE KEY" in head
    return head.startswith(_KEY_HEADERS)


def list_files(root: Path, data_dir: Path | None = None) -> list[str]:
    """Exportable files under ``root`` (relative POSIX paths, sorted): tracked by git (or
    source-looking without git), minus everything /dar must never export, ``data_dir`` (the
    bot's DATA_DIR) included wherever it is."""
    names = _tracked(root)
    if names is None:
        names = _walk_sources(root)
    out_names = []
    for rel in sorted(set(names)):
        if excluded(rel):
            continue
        path = root / rel
        try:
            if not path.is_file() or path.is_symlink() or path.stat().st_size > MAX_FILE_BYTES:
                continue
        except OSError:
            continue
        if _inside(path, data_dir) or _looks_like_key(path):
            continue
        out_names.append(rel)
    return out_names


def render_tree(files: list[str]) -> str:
    """An indented tree of relative paths."""
    lines: list[str] = []
    shown: set[tuple[str, ...]] = set()
    for rel in files:
        parts = PurePosixPath(rel).parts
        for depth in range(len(parts) - 1):
            key = parts[: depth + 1]
            if key not in shown:
                shown.add(key)
                lines.append("  " * depth + parts[depth] + "/")
        lines.append("  " * (len(parts) - 1) + parts[-1])
    return "\n".join(lines)


def _text(data: bytes) -> str | None:
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def build_export(root: Path, data_dir: Path | None = None) -> Export:
    """File list, tree, zip and concatenated text of the project at ``root`` (blocking)."""
    files = list_files(root, data_dir)
    zbuf = io.BytesIO()
    txt: list[str] = []
    kept: list[str] = []
    with zipfile.ZipFile(zbuf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for rel in files:
            try:
                data = (root / rel).read_bytes()
            except OSError:
                continue
            text = _text(data)
            if text is not None:
                clean = redact(text)
                data = clean.encode("utf-8")
                txt.append(f"===== {rel} =====\n{clean}\n")
            zf.writestr(f"{root.name}/{rel}", data)
            kept.append(rel)
    return Export(files=kept, tree=render_tree(kept), zip_bytes=zbuf.getvalue(),
                  txt_bytes="\n".join(txt).encode("utf-8"))


async def dar(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    no_args(context.args)
    d = deps(context)
    t = d.texts
    chat_id = reply_chat_id(update)
    if chat_id is None:
        return
    export = await off_loop(build_export, d.project_root, d.settings.data_dir)
    name = d.project_root.name or "project"
    reply(update, context, t("<b>{name}</b>: {count} files", name=name, count=len(export.files))
          + f"\n<pre>{escape(export.tree)}</pre>")
    d.outbox.send_document(chat_id, export.zip_bytes, f"{name}.zip",
                           t("Source of {name} (zip)", name=name))
    d.outbox.send_document(chat_id, export.txt_bytes, f"{name}.txt",
                           t("All source files of {name} in one text file", name=name))


COMMANDS = (
    Command(name="dar", help="Export the bot's own source: file tree, zip and one .txt",
            usage="/dar", admin_only=True, callback=dar),
)
