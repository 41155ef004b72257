"""Settings: environment parsing, production safety, and .env.example completeness."""

from __future__ import annotations

import dataclasses
import logging
import secrets
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


WEAK_KEYS = [
    "secret",
    "a" * 32,
    "a" * 64,
    "test-" + "k" * 40,
    "abcd" * 16,
    "0123456789abcdef" * 4,
    "abcdefghijklmnopqrstuvwxyz0123456789",
    "changeme" * 4,
    "x" * 31 + "y",
]


@pytest.mark.parametrize("secret", WEAK_KEYS)
@pytest.mark.parametrize("mode", ["embedded", "development", "production"])
def test_weak_signing_keys_are_refused_in_every_mode(
    secret: str, mode: str, tmp_path: Path
) -> None:
    env = {"DATA_DIR": str(tmp_path), "JWT_SECRET_KEY": secret}
    if mode == "development":
        env["ENVIRONMENT"] = "development"
    elif mode == "production":
        env |= {"DATABASE_URL": "postgresql://db/x", "REDIS_URL": "redis://r:6379/0"}
    with pytest.raises(SettingsError, match="JWT_SECRET_KEY is too weak") as info:
        Settings.from_env(env)
    assert secret not in str(info.value)
    # Settings built in code skip from_env; the token service still refuses the key.
    with pytest.raises(SettingsError, match="JWT_SECRET_KEY"):
        Settings(data_dir=str(tmp_path), jwt_secret_key=secret).resolved_secret()


def test_random_keys_are_accepted() -> None:
    for secret in (secrets.token_hex(32), secrets.token_urlsafe(32), secrets.token_urlsafe(48)):
        Settings.from_env({"JWT_SECRET_KEY": secret, "ENVIRONMENT": "development"})


@pytest.mark.parametrize("content", ["", "abc", "a" * 40, "\n"])
def test_an_invalid_generated_key_file_is_replaced(
    content: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "jwt-secret"
    path.write_text(content)
    path.chmod(0o644)
    settings = Settings.from_env({"DATA_DIR": str(tmp_path)})
    with caplog.at_level(logging.WARNING):
        secret = settings.resolved_secret()
    assert len(secret) >= 32 and secret != content.strip()
    assert path.read_text().strip() == secret and settings.resolved_secret() == secret
    assert path.stat().st_mode & 0o777 == 0o600
    assert "not a strong key" in caplog.text and secret not in caplog.text


def test_a_good_key_file_is_kept_and_made_private(tmp_path: Path) -> None:
    key = secrets.token_urlsafe(48)
    (tmp_path / "data").mkdir(mode=0o755)
    path = tmp_path / "data" / "jwt-secret"
    path.write_text(key + "\n")
    path.chmod(0o644)
    assert Settings(data_dir=str(tmp_path / "data")).resolved_secret() == key
    assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "data").stat().st_mode & 0o777 == 0o700


def test_typed_values_and_lists() -> None:
    s = Settings.from_env(
        {
            "ALLOWED_ORIGINS": "https://a.example, https://b.example",
            "WS_PER_MESSAGE_DEFLATE": "yes",
            "MAX_CHUNK_BYTES": "1024",
        }
    )
    assert s.origins == ("https://a.example", "https://b.example")
    assert s.ws_per_message_deflate is True and s.max_chunk_bytes == 1024
    with pytest.raises(SettingsError, match="MAX_CHUNK_BYTES"):
        Settings.from_env({"MAX_CHUNK_BYTES": "lots"})


def test_env_example_lists_every_setting() -> None:
    text = (Path(__file__).parents[1] / ".env.example").read_text()
    names = {
        line.split("=", 1)[0] for line in text.splitlines() if line and not line.startswith("#")
    }
    fields = {f.name.upper() for f in dataclasses.fields(Settings)}
    assert fields == names


def test_redis_enabled_of_the_old_app_is_warned_about_not_ignored_silently(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="synthia_rt.settings")
    Settings.from_env({"REDIS_ENABLED": "true"})
    warnings = [r for r in caplog.records if "REDIS_ENABLED" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "ignored" in warnings[0].getMessage() and "REDIS_URL" in warnings[0].getMessage()
    caplog.clear()
    Settings.from_env({})
    assert not [r for r in caplog.records if "REDIS_ENABLED" in r.getMessage()]


def test_cache_namespace_ttls_are_settings_documented_in_env_example() -> None:
    text = (Path(__file__).parents[1] / ".env.example").read_text()
    for name, namespace in (
        ("USER_CACHE_TTL", "`user`"),
        ("SESSION_CACHE_TTL", "`session`"),
        ("CACHE_TTL", "`analysis`"),
    ):
        at = text.index(f"\n{name}=")
        meaning = text[max(0, at - 400) : at]
        assert namespace in meaning, name
    s = Settings.from_env({"USER_CACHE_TTL": "5", "SESSION_CACHE_TTL": "7"})
    assert (s.user_cache_ttl, s.session_cache_ttl) == (5, 7)
    with pytest.raises(SettingsError, match="USER_CACHE_TTL"):
        Settings.from_env({"USER_CACHE_TTL": "0"})
