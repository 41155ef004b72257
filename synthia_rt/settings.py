"""One Settings object read from the environment; nothing else reads ``os.environ``.

Every field is listed, with its default and meaning, in ``.env.example``.  With no
``DATABASE_URL``/``REDIS_URL``/``GEMINI_API_KEY`` the service runs its *embedded default*:
SQLite file, in-process broker and key-value store, local analyzer, one process.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

WEAK_SECRETS = {"secret", "changeme", "change-me", "password", "jwt-secret", "your-secret-key"}
MIN_SECRET_LENGTH = 32


class SettingsError(ValueError):
    """A setting is missing or invalid; raised at start-up, never later."""


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {raw!r}")


def _list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


@dataclass(frozen=True)
class Settings:
    # Backends -----------------------------------------------------------------------------
    database_url: str = ""  # postgresql://… or sqlite:///path; "" = embedded SQLite file
    redis_url: str = ""  # redis://… or memory://; "" = memory:// (embedded)
    redis_namespace: str = "synthia"  # prefix of every Redis key this service owns
    data_dir: str = ".synthia"  # embedded default: SQLite file and generated JWT key live here
    environment: str = ""  # "production" | "development"; "" = production iff a URL is set
    node_id: str = ""  # "" = random per process

    # Auth -------------------------------------------------------------------------------
    jwt_secret_key: str = ""
    jwt_issuer: str = "synthia-rt"
    jwt_audience: str = "synthia"
    access_token_ttl: int = 900  # seconds
    refresh_token_ttl: int = 30 * 24 * 3600
    login_attempts_per_account: int = 5  # per login_window
    login_attempts_per_ip: int = 20
    login_window: int = 60  # seconds
    argon2_memory_kib: int = 19 * 1024
    argon2_time_cost: int = 2
    argon2_parallelism: int = 1

    # HTTP / WebSocket -------------------------------------------------------------------
    allowed_origins: tuple[str, ...] = ()  # exact Origin matches; () = same-host defaults
    max_message_bytes: int = 64 * 1024  # text frames
    max_chunk_bytes: int = 512 * 1024  # upload payload per binary frame
    max_image_bytes: int = 10 * 1024 * 1024
    max_image_pixels: int = 40_000_000  # well below Pillow's ~89 Mpx default
    outbound_queue_size: int = 512  # frames per socket before 4008
    idle_timeout: float = 1200.0  # seconds without any inbound frame before a 1001 close (0 = off)
    ws_ping_interval: float = 20.0
    ws_ping_timeout: float = 20.0
    ws_per_message_deflate: bool = False
    max_connections_per_user: int = 20
    command_rate: float = 30.0  # commands per second per socket (token bucket refill)
    command_burst: int = 60
    rate_limit_strikes: int = 50  # refused commands in a row before close 4009
    expiry_warning: int = 60  # seconds before token expiry that session.expiring is sent

    # Channels / history -----------------------------------------------------------------
    history_size: int = 1000  # events kept per channel
    history_ttl: int = 24 * 3600  # seconds a quiet channel's history is kept

    # Analysis ---------------------------------------------------------------------------
    analyzer: str = "auto"  # auto | gemini | local
    gemini_api_key: str = ""
    gemini_model: str = "gemini-2.5-flash"
    gemini_base_url: str = ""
    gemini_timeout: float = 30.0  # idle seconds between streamed chunks
    gemini_retries: int = 3
    gemini_backoff: float = 0.5  # first retry delay in seconds; doubles per retry, with jitter
    gemini_concurrency: int = 8  # model calls in flight per process
    max_analyses_per_user: int = 2  # concurrent
    upload_ttl: int = 3600  # seconds an incomplete upload is kept
    analysis_lease: float = 5.0  # seconds a run's lease and slot outlive its node's last heartbeat
    db_retry_window: float = 180.0  # seconds a run retries recording its outcome while the database is down
    image_retention: int = 0  # seconds a validated image is kept after its analysis (0 = none)
    cache_ttl: int = 30 * 24 * 3600

    # Operations -------------------------------------------------------------------------
    metrics_interval: float = 2.0
    metrics_token: str = ""  # bearer for /metrics in addition to admin tokens
    # prometheus-client's own variable: set it (to an emptied directory) in the environment of
    # every uvicorn worker to aggregate /metrics across workers; "" = one process, in-memory.
    prometheus_multiproc_dir: str = ""
    log_level: str = "INFO"
    log_json: bool = True

    # Derived ------------------------------------------------------------------------------
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    # -----------------------------------------------------------------------------------
    @property
    def production(self) -> bool:
        if self.environment:
            return self.environment == "production"
        return bool(self.database_url or self.redis_url.startswith("redis"))

    @property
    def embedded(self) -> bool:
        """True when this process holds state no other process can see (one process only)."""
        return self.effective_database_url.startswith("sqlite") or self.effective_redis_url.startswith(
            "memory"
        )

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            url = self.database_url
            if not url.startswith(("postgres://", "postgresql://", "sqlite://")):
                url = "sqlite:///" + url  # a bare path is a SQLite file
            return url
        return "sqlite:///" + str(Path(self.data_dir) / "synthia.sqlite3")

    @property
    def effective_redis_url(self) -> str:
        return self.redis_url or "memory://"

    @property
    def effective_analyzer(self) -> str:
        if self.analyzer == "auto":
            return "gemini" if self.gemini_api_key else "local"
        return self.analyzer

    @property
    def origins(self) -> tuple[str, ...]:
        if self.allowed_origins:
            return self.allowed_origins
        return ("http://localhost:8000", "http://127.0.0.1:8000")

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    # -----------------------------------------------------------------------------------
    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "extra":
                continue
            raw = env.get(f.name.upper())
            if raw is None:
                continue
            kind: type[Any] = type(f.default)
            try:
                if kind is bool:
                    values[f.name] = _bool(raw)
                elif kind is int:
                    values[f.name] = int(raw)
                elif kind is float:
                    values[f.name] = float(raw)
                elif kind is tuple:
                    values[f.name] = _list(raw)
                else:
                    values[f.name] = raw
            except ValueError as exc:
                raise SettingsError(f"{f.name.upper()}: {exc}") from None
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.analyzer not in {"auto", "gemini", "local"}:
            raise SettingsError("ANALYZER must be auto, gemini or local")
        if self.effective_analyzer == "gemini" and not self.gemini_api_key:
            raise SettingsError("ANALYZER=gemini needs GEMINI_API_KEY")
        if not self.effective_redis_url.startswith(("redis://", "rediss://", "unix://", "memory://")):
            raise SettingsError("REDIS_URL must be redis://…, rediss://… or memory://")
        if self.production:
            secret = self.jwt_secret_key
            if not secret:
                raise SettingsError("JWT_SECRET_KEY is required in production")
            if len(secret) < MIN_SECRET_LENGTH or secret.lower() in WEAK_SECRETS:
                raise SettingsError(
                    f"JWT_SECRET_KEY is too weak: use at least {MIN_SECRET_LENGTH} random characters"
                )
        if self.max_chunk_bytes > self.max_image_bytes:
            raise SettingsError("MAX_CHUNK_BYTES cannot exceed MAX_IMAGE_BYTES")

    def resolved_secret(self) -> str:
        """The signing key; the embedded default generates one and keeps it in ``data_dir``."""
        if self.jwt_secret_key:
            return self.jwt_secret_key
        if self.production:
            raise SettingsError("JWT_SECRET_KEY is required in production")
        path = Path(self.data_dir) / "jwt-secret"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
        return path.read_text().strip()
