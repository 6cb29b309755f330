"""API secrets encrypted at rest: a small JSON file holding one Fernet token.

Fernet (``cryptography``: AES-128-CBC with an HMAC-SHA256 tag, the library's recommended
high-level recipe) encrypts a JSON object ``{"BINANCE_API_KEY": ..., ...}``. The key is either

* ``SECRETS_KEY``: a Fernet key (``Fernet.generate_key()``, 44 url-safe base64 characters) from
  the environment, e.g. a platform secret; or
* a passphrase (``SECRETS_PASSPHRASE`` or typed at the prompt) stretched by scrypt (n = 2**15,
  r = 8, p = 1, a random 16-byte salt stored in the file).

The file (``SECRETS_FILE``, default ``DATA_DIR/secrets.enc``) holds no plaintext; decrypted
values live only in memory (``Settings``'s ``SecretStr`` fields). Plain environment variables keep
working and win over the file.

File format (JSON): ``{"format": "dort5bot-secrets", "version": 1, "kdf": "scrypt" | "key",
"salt": base64 (scrypt only), "n", "r", "p" (scrypt only), "token": Fernet token}``.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

FORMAT = "dort5bot-secrets"
VERSION = 1
SECRET_NAMES = ("BINANCE_API_KEY", "BINANCE_API_SECRET", "TELEGRAM_BOT_TOKEN", "API_TOKEN")
_SCRYPT = {"n": 2**15, "r": 8, "p": 1}


class SecretStoreError(ValueError):
    """The secrets file cannot be read or written; a one-line message with no secret in it."""


def _scrypt_key(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    kdf = Scrypt(salt=salt, length=32, n=n, r=r, p=p)
    return base64.urlsafe_b64encode(kdf.derive(passphrase.encode("utf-8")))


def _fernet(key: str) -> Fernet:
    try:
        return Fernet(key.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise SecretStoreError("SECRETS_KEY is not a Fernet key (44 url-safe base64 characters; "
                               "make one with `main.py secrets keygen`)") from None


def encrypt(values: Mapping[str, str], *, key: str | None = None,
            passphrase: str | None = None) -> bytes:
    """The secrets file's bytes for ``values`` (names from ``SECRET_NAMES``).

    Exactly one of ``key`` (a Fernet key) and ``passphrase`` must be given.

    Raises:
        SecretStoreError: no key or passphrase, both, a bad key, or an unknown name.
    """
    unknown = sorted(set(values) - set(SECRET_NAMES))
    if unknown:
        raise SecretStoreError(f"unknown secret name(s): {', '.join(unknown)}")
    if (key is None) == (passphrase is None):
        raise SecretStoreError("give either SECRETS_KEY or a passphrase")
    header: dict[str, object] = {"format": FORMAT, "version": VERSION}
    if key is not None:
        fernet = _fernet(key)
        header["kdf"] = "key"
    else:
        assert passphrase is not None
        if len(passphrase) < 8:
            raise SecretStoreError("the passphrase must be at least 8 characters")
        salt = os.urandom(16)
        fernet = Fernet(_scrypt_key(passphrase, salt, **_SCRYPT))
        header.update(kdf="scrypt", salt=base64.b64encode(salt).decode("ascii"), **_SCRYPT)
    token = fernet.encrypt(json.dumps(dict(values), sort_keys=True).encode("utf-8"))
    header["token"] = token.decode("ascii")
    return (json.dumps(header, indent=1) + "\n").encode("ascii")


def needs_passphrase(data: bytes) -> bool:
    """True when the file was written with a passphrase (not with ``SECRETS_KEY``)."""
    return _header(data, "secrets file").get("kdf") == "scrypt"


def _header(data: bytes, name: str) -> dict:
    try:
        header = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise SecretStoreError(f"{name} is not a dort5bot secrets file") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise SecretStoreError(f"{name} is not a dort5bot secrets file")
    if header.get("version") != VERSION:
        raise SecretStoreError(f"{name}: unknown version {header.get('version')!r}")
    return header


def decrypt(data: bytes, *, key: str | None = None, passphrase: str | None = None,
            name: str = "secrets file") -> dict[str, str]:
    """The secrets in a file made by ``encrypt``.

    Raises:
        SecretStoreError: not a secrets file, a wrong key or passphrase, or a damaged file.
    """
    header = _header(data, name)
    try:
        if header.get("kdf") == "scrypt":
            if passphrase is None:
                raise SecretStoreError(f"{name} needs its passphrase (SECRETS_PASSPHRASE)")
            salt = base64.b64decode(str(header["salt"]))
            fernet = Fernet(_scrypt_key(passphrase, salt, int(header["n"]), int(header["r"]),
                                        int(header["p"])))
        elif header.get("kdf") == "key":
            if key is None:
                raise SecretStoreError(f"{name} needs SECRETS_KEY")
            fernet = _fernet(key)
        else:
            raise SecretStoreError(f"{name}: unknown kdf {header.get('kdf')!r}")
        plain = fernet.decrypt(str(header["token"]).encode("ascii"))
    except InvalidToken:
        raise SecretStoreError(f"{name}: wrong key or passphrase, or the file is damaged") from None
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, SecretStoreError):
            raise
        raise SecretStoreError(f"{name} is damaged ({type(exc).__name__})") from None
    values = json.loads(plain)
    if not isinstance(values, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in values.items()):
        raise SecretStoreError(f"{name} is damaged (not a name -> value object)")
    return values


def write_secrets_file(path: Path, data: bytes) -> None:
    """Write atomically with mode 0600 (owner only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def generate_key() -> str:
    """A new random Fernet key for ``SECRETS_KEY``."""
    return Fernet.generate_key().decode("ascii")
