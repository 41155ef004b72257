"""Settings: environment parsing, production safety, and .env.example completeness."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from synthia_rt.settings import Settings, SettingsError


def test_embedded_default_needs_nothing(tmp_path: Path) -> None:
    settings = Settings.from_env({"DATA_DIR": str(tmp_path)})
    assert settings.embedded and not settings.production
    assert settings.effective_database_url.startswith("sqlite:///")
    assert settings.effective_redis_url == "memory://"
    assert settings.effective_analyzer == "local"
    secret = settings.resolved_secret()
    assert len(secret) >= 32 and settings.resolved_secret() == secret  # generated once, kept
    assert (tmp_path / "jwt-secret").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("secret", [None, "short", "changeme"])
def test_production_refuses_missing_or_weak_secret(secret: str | None) -> None:
    env = {"DATABASE_URL": "postgresql://db/x", "REDIS_URL": "redis://r:6379/0"}
    if secret is not None:
        env["JWT_SECRET_KEY"] = secret
    with pytest.raises(SettingsError, match="JWT_SECRET_KEY"):
        Settings.from_env(env)


def test_typed_values_and_lists() -> None:
    s = Settings.from_env({"ALLOWED_ORIGINS": "https://a.example, https://b.example", "WS_PER_MESSAGE_DEFLATE": "yes", "MAX_CHUNK_BYTES": "1024"})
    assert s.origins == ("https://a.example", "https://b.example")
    assert s.ws_per_message_deflate is True and s.max_chunk_bytes == 1024
    with pytest.raises(SettingsError, match="MAX_CHUNK_BYTES"):
        Settings.from_env({"MAX_CHUNK_BYTES": "lots"})


def test_env_example_lists_every_setting() -> None:
    text = (Path(__file__).parents[1] / ".env.example").read_text()
    names = {line.split("=", 1)[0] for line in text.splitlines() if line and not line.startswith("#")}
    fields = {f.name.upper() for f in dataclasses.fields(Settings)}
    assert fields == names
