"""Fetch archives from data.binance.vision (or a mirror) and store them verified and whole.

For each archive: GET ``<name>.zip.CHECKSUM`` (``<sha256>  <name>.zip``), GET the zip streamed
into a temp file beside its final place while hashing it, compare the SHA-256, check that the
zip holds exactly one readable CSV (CRC of every member), fsync, then rename into place with
its ``.CHECKSUM`` next to it. An interrupted or failed download removes its temp file, so a
file under ``DATA_DIR/history/`` is always a complete, verified archive; a second run skips it.

This is not the exchange API (no weights, no keys): a plain aiohttp session, a few downloads in
parallel, transient failures (connection lost, 5xx, a stalled response) retried with backoff.
A 404 is reported to the caller as ``None`` (not published); every other failure is one
``HistoryError`` line naming the file.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import os
import zipfile
from pathlib import Path
from typing import BinaryIO

import aiohttp

from core.history.layout import Archive, HistoryError

logger = logging.getLogger(__name__)

CHUNK = 1 << 16
ATTEMPTS = 3


class NotPublished(Exception):
    """The archive answered 404 for this file."""


def _disk_error(path: Path, exc: OSError) -> HistoryError:
    if exc.errno == errno.ENOSPC:
        return HistoryError(f"disk full writing {path} (free some space and run again: files "
                            f"already stored are kept)")
    return HistoryError(f"cannot write {path}: {exc.strerror or exc}")


def parse_checksum(text: str, name: str) -> str:
    """The SHA-256 hex of ``name`` from a ``.CHECKSUM`` body.

    Raises:
        HistoryError: not ``<64 hex>  <name>``.
    """
    parts = text.split()
    if len(parts) < 1 or len(parts[0]) != 64 or any(c not in "0123456789abcdef"
                                                    for c in parts[0].lower()):
        raise HistoryError(f"{name}.CHECKSUM is not a SHA-256 line")
    if len(parts) > 1 and parts[1].lstrip("*") != name:
        raise HistoryError(f"{name}.CHECKSUM names another file ({parts[1][:80]})")
    return parts[0].lower()


def verify_zip(path: Path, name: str) -> None:
    """One CSV member that decompresses with a good CRC.

    Raises:
        HistoryError: a truncated or corrupt zip, or not one CSV.
    """
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            if len(names) != 1 or not names[0].lower().endswith(".csv"):
                raise HistoryError(f"{name}: expected one CSV inside, found {len(names)} files")
            bad = z.testzip()
            if bad is not None:
                raise HistoryError(f"{name}: corrupt member {bad} (CRC mismatch)")
    except (zipfile.BadZipFile, EOFError, zlib_error()) as exc:
        raise HistoryError(f"{name}: truncated or corrupt zip ({exc})") from None


def zlib_error() -> type[Exception]:
    import zlib

    return zlib.error


class ArchiveClient:
    """Downloads archives from ``base_url`` (``https://data.binance.vision``) into ``root``.

    Args:
        timeout_s: longest a request may take in all; a slower one is retried, then an error.
        parallel: downloads at once.
    """

    def __init__(self, base_url: str, root: Path, *, timeout_s: float = 300.0,
                 parallel: int = 4, retry_delay_s: float = 1.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.root = root
        self.timeout_s = timeout_s
        self.retry_delay_s = retry_delay_s
        self._sem = asyncio.Semaphore(parallel)
        self._session: aiohttp.ClientSession | None = None
        self.requests = 0
        self.bytes = 0

    async def __aenter__(self) -> ArchiveClient:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout_s), trust_env=False,
            auto_decompress=False)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def url(self, rel: str) -> str:
        return f"{self.base_url}/{rel}"

    async def fetch(self, archive: Archive) -> Path | None:
        """Download and verify ``archive``; its stored path, or None when the archive answers
        404 (not published). Already stored: returned without a request.

        Raises:
            HistoryError: checksum mismatch, corrupt zip, HTTP error, disk full (one line).
        """
        dest = archive.local(self.root)
        if dest.exists() and dest.with_name(dest.name + ".CHECKSUM").exists():
            return dest
        async with self._sem:
            for attempt in range(1, ATTEMPTS + 1):
                try:
                    return await self._fetch_once(archive, dest)
                except NotPublished:
                    return None
                except _Transient as exc:
                    if attempt == ATTEMPTS:
                        raise HistoryError(f"{archive.rel_path}: {exc} ({ATTEMPTS} attempts)"
                                           ) from None
                    logger.warning("%s: %s; retrying", archive.rel_path, exc)
                    await asyncio.sleep(self.retry_delay_s * attempt)
        raise AssertionError("unreachable")

    async def _get(self, rel: str) -> aiohttp.ClientResponse:
        assert self._session is not None, "use `async with ArchiveClient(...)`"
        self.requests += 1
        try:
            resp = await self._session.get(self.url(rel))
        except TimeoutError:
            raise _Transient(f"no answer within {self.timeout_s:g}s") from None
        except aiohttp.ClientError as exc:
            raise _Transient(f"connection failed ({type(exc).__name__})") from None
        if resp.status == 404:
            resp.release()
            raise NotPublished(rel)
        if resp.status >= 500 or resp.status == 429:
            resp.release()
            raise _Transient(f"HTTP {resp.status}")
        if resp.status != 200:
            resp.release()
            raise HistoryError(f"{rel}: HTTP {resp.status} from {self.base_url}")
        return resp

    async def _fetch_once(self, archive: Archive, dest: Path) -> Path:
        name = archive.name
        resp = await self._get(archive.rel_path + ".CHECKSUM")
        try:
            checksum_text = (await resp.read()).decode("utf-8", "replace")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _Transient(f"checksum download failed ({type(exc).__name__})") from None
        finally:
            resp.release()
        expected = parse_checksum(checksum_text, name)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _disk_error(dest.parent, exc) from None
        tmp = dest.with_name(f".{name}.part")
        digest = hashlib.sha256()
        resp = await self._get(archive.rel_path)
        try:
            try:
                with _open_part(tmp) as f:
                    async for block in resp.content.iter_chunked(CHUNK):
                        digest.update(block)
                        _write(f, block)
                        self.bytes += len(block)
                    f.flush()
                    os.fsync(f.fileno())
            except TimeoutError:  # before OSError: TimeoutError is one
                raise _Transient(f"download stalled beyond {self.timeout_s:g}s") from None
            except aiohttp.ClientPayloadError:
                raise _Transient("connection closed mid-file (truncated download)") from None
            except aiohttp.ClientError as exc:
                raise _Transient(f"download failed ({type(exc).__name__})") from None
            except OSError as exc:
                raise _disk_error(dest, exc) from None
            if digest.hexdigest() != expected:
                raise HistoryError(f"{archive.rel_path}: checksum mismatch (SHA-256 "
                                   f"{digest.hexdigest()[:12]}…, .CHECKSUM says "
                                   f"{expected[:12]}…); nothing stored")
            verify_zip(tmp, name)
            try:
                dest.with_name(name + ".CHECKSUM").write_text(checksum_text, "utf-8")
                os.replace(tmp, dest)
            except OSError as exc:
                raise _disk_error(dest, exc) from None
        finally:
            resp.release()
            tmp.unlink(missing_ok=True)
        return dest


def _open_part(path: Path) -> BinaryIO:
    """The temp file a download streams into. Writes block the loop for a local-disk write of
    64 KiB at most; the download command has nothing latency-bound on its loop."""
    return open(path, "wb")  # noqa: SIM115


def _write(f: object, block: bytes) -> None:
    """One write of a downloaded block (a seam for the full-disk test)."""
    f.write(block)  # type: ignore[attr-defined]


class _Transient(Exception):
    """Worth another attempt: connection lost, 5xx/429, timeout, truncated body."""
