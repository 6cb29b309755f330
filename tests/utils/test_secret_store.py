"""Secrets encrypted at rest: the file, Settings reading it, and `main.py secrets`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from utils.secret_store import SecretStoreError, decrypt, encrypt, generate_key
from utils.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "k7Qp" * 16
API_SECRET = "s9Zx" * 16


def test_round_trip_with_a_key_and_with_a_passphrase():
    key = generate_key()
    data = encrypt({"BINANCE_API_KEY": API_KEY}, key=key)
    assert API_KEY.encode() not in data
    assert decrypt(data, key=key) == {"BINANCE_API_KEY": API_KEY}
    data = encrypt({"BINANCE_API_SECRET": API_SECRET}, passphrase="correct horse")
    assert json.loads(data)["kdf"] == "scrypt" and API_SECRET.encode() not in data
    assert decrypt(data, passphrase="correct horse") == {"BINANCE_API_SECRET": API_SECRET}


@pytest.mark.parametrize("mutate", ["wrong_key", "wrong_passphrase", "flipped", "not_json"])
def test_a_wrong_key_or_a_damaged_file_is_one_line_without_the_secret(mutate):
    key = generate_key()
    data = encrypt({"BINANCE_API_KEY": API_KEY}, key=key)
    kwargs: dict = {"key": key}
    if mutate == "wrong_key":
        kwargs = {"key": generate_key()}
    elif mutate == "wrong_passphrase":
        data = encrypt({"BINANCE_API_KEY": API_KEY}, passphrase="right one")
        kwargs = {"passphrase": "wrong one"}
    elif mutate == "flipped":
        header = json.loads(data)
        header["token"] = header["token"][:-8] + ("A" * 8)
        data = json.dumps(header).encode()
    else:
        data = b"BINANCE_API_KEY=" + API_KEY.encode()
    with pytest.raises(SecretStoreError) as exc:
        decrypt(data, **kwargs)
    assert "\n" not in str(exc.value) and API_KEY not in str(exc.value)
    assert exc.value.__cause__ is None


def test_settings_take_unset_secrets_from_the_file_and_the_environment_wins(
        tmp_path, monkeypatch):
    key = generate_key()
    path = tmp_path / "secrets.enc"
    path.write_bytes(encrypt({"BINANCE_API_KEY": API_KEY, "BINANCE_API_SECRET": API_SECRET},
                             key=key))
    monkeypatch.setenv("SECRETS_FILE", str(path))
    monkeypatch.setenv("SECRETS_KEY", key)
    s = load_settings()
    assert s.binance_api_key is not None and s.binance_api_key.get_secret_value() == API_KEY
    assert s.binance_api_secret.get_secret_value() == API_SECRET
    assert s.public_view()["secrets_key"] == "(set)"
    monkeypatch.setenv("BINANCE_API_KEY", "e" * 64)
    assert load_settings().binance_api_key.get_secret_value() == "e" * 64
    monkeypatch.setenv("SECRETS_KEY", generate_key())
    with pytest.raises(SettingsError) as exc:
        load_settings()
    assert "SECRETS_FILE" in str(exc.value) and key not in str(exc.value)


def _main(args: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], input=stdin,
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)


def test_secrets_command_encrypts_stdin_and_the_bot_reads_it(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BINANCE_", "TELEGRAM_", "SECRETS_"))}
    env["DATA_DIR"] = str(tmp_path)
    key = generate_key()
    env["SECRETS_KEY"] = key
    done = _main(["secrets", "set"], env,
                 f"BINANCE_API_KEY={API_KEY}\nBINANCE_API_SECRET={API_SECRET}\n")
    assert done.returncode == 0, done.stderr
    assert API_KEY not in done.stdout + done.stderr
    stored = (tmp_path / "secrets.enc").read_bytes()
    assert API_KEY.encode() not in stored and API_SECRET.encode() not in stored
    assert (tmp_path / "secrets.enc").stat().st_mode & 0o077 == 0
    shown = _main(["secrets", "show"], env)
    assert "BINANCE_API_KEY: stored" in shown.stdout and API_KEY not in shown.stdout
    weak = _main(["secrets", "set"], env, "BINANCE_API_KEY=USDT\n")
    assert weak.returncode == 2 and weak.stderr.count("\n") == 1 and "USDT" not in weak.stderr
    del env["SECRETS_KEY"]
    refused = _main(["secrets", "show"], env)
    assert refused.returncode == 2 and "SECRETS_KEY" in refused.stderr
