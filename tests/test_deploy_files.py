"""The deployment files say what the README says: the Render blueprint runs the GHCR image
with a disk on /data and the /healthz check, and keeps every secret out of the file."""

from __future__ import annotations

from pathlib import Path

import yaml

from utils.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SECRETS = {"TELEGRAM_BOT_TOKEN", "BINANCE_API_KEY", "BINANCE_API_SECRET", "API_TOKEN",
           "SECRETS_KEY", "JOURNAL_URL", "TELEGRAM_ADMIN_IDS"}


def test_render_blueprint_runs_the_image_with_a_disk_health_check_and_no_secret_values():
    blueprint = yaml.safe_load((ROOT / "render.yaml").read_text())
    (service,) = blueprint["services"]
    assert service["type"] == "web" and service["runtime"] == "image"
    assert service["image"]["url"].startswith("ghcr.io/")
    assert service["healthCheckPath"] == "/healthz" and service["numInstances"] == 1
    assert service["disk"]["mountPath"] == "/data"
    env = {e["key"]: e for e in service["envVars"]}
    for key in SECRETS:
        assert env[key] == {"key": key, "sync": False}, key
    assert env["HTTP_PORT"]["value"] == env["PORT"]["value"]
    known = {name.upper() for name in Settings.model_fields} | {"PORT", "ACCOUNT", "JOURNAL_URL"}
    assert set(env) <= known, set(env) - known  # no typo'd variable silently ignored
