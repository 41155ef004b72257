"""One Settings object read from the environment; nothing else reads ``os.environ``.

Every field is listed, with its default and meaning, in ``.env.example``.  With no
``DATABASE_URL``/``REDIS_URL``/``GEMINI_API_KEY`` the service runs its *embedded default*:
SQLite file, in-process broker and key-value store, local analyzer, one process.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import stat
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from synthia_rt.clientaddr import trusted_networks

log = logging.getLogger(__name__)

WEAK_SECRETS = {
    "secret", "changeme", "change-me", "password", "jwt-secret", "your-secret-key", "test",
    "default", "key", "jwt", "token", "admin", "synthia", "qwerty", "letmein", "supersecret",
}  # fmt: skip
MIN_SECRET_LENGTH = 32  # bytes: 256 bits of key material for HS256
MIN_SECRET_ENTROPY = 128.0  # bits, estimated from character frequencies (random 32 B ≥ ~150)


class SettingsError(ValueError):
    """A setting is missing or invalid; raised at start-up, never later."""


# URL schemes each backend variable accepts (a DATABASE_URL without "://" is a SQLite path).
# ``redis+cluster://`` names a Redis Cluster (its seed nodes); it is accepted here so that a
# deployment configured for it fails in the backend factory that knows, never as a typo.
DATABASE_SCHEMES = ("postgresql", "postgres", "sqlite")
REDIS_SCHEMES = ("redis", "rediss", "redis+cluster", "unix", "memory")


def url_scheme_error(variable: str, url: str, accepted: tuple[str, ...]) -> str | None:
    """One line naming ``variable`` and the accepted schemes if ``url``'s scheme is unknown.

    The URL itself is never echoed: it may carry a password.
    """
    scheme, sep, _ = url.partition("://")
    if not sep:
        return None if variable == "DATABASE_URL" else f"{variable} must be a URL (scheme://…)"
    if scheme.lower() in accepted:
        return None
    shown = repr(scheme) if scheme.isascii() and len(scheme) <= 20 else "this"
    names = ", ".join(f"{name}://" for name in accepted)
    return f"{variable} has an unknown scheme {shown}; accepted: {names}"


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {raw!r}")


def _list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def secret_weakness(secret: str) -> str | None:
    """Why ``secret`` is not a usable HS256 key, or None. Never includes the secret itself.

    Heuristics (a key cannot prove its randomness): at least 32 bytes, not a known default, not
    a short pattern repeated, not a run of evenly spaced characters (``abcd…``), and an estimated
    entropy (character frequencies × length) of at least 128 bits — which a random 32-byte key
    in hex, base64 or raw bytes clears easily.
    """
    raw = secret.encode()
    if len(raw) < MIN_SECRET_LENGTH:
        return f"it is shorter than {MIN_SECRET_LENGTH} bytes"
    folded = "".join(ch for ch in secret.lower() if ch.isalpha())
    if secret.strip().lower() in WEAK_SECRETS or folded in WEAK_SECRETS:
        return "it is a well-known default value"
    for period in range(1, len(secret) // 2 + 1):
        if secret == (secret[:period] * (len(secret) // period + 1))[: len(secret)]:
            return "it is a short pattern repeated"
    steps = Counter(b - a for a, b in zip(raw, raw[1:], strict=False))
    if steps.most_common(1)[0][1] * 2 > len(raw) - 1:
        return "it is a sequence, not random"
    counts = Counter(raw)
    entropy = -sum(n * math.log2(n / len(raw)) for n in counts.values())
    if entropy < MIN_SECRET_ENTROPY:
        return "it has too little randomness"
    return None


def private_dir(path: Path) -> None:
    """Create ``path`` 0700, or tighten it to 0700 if it is ours (never a shared sticky dir)."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=False)
        return
    except FileExistsError:
        pass
    info = path.stat()
    if info.st_mode & stat.S_ISVTX or info.st_uid != os.geteuid():
        return  # /tmp-like or someone else's: not ours to change
    if stat.S_IMODE(info.st_mode) & 0o077:
        path.chmod(0o700)


def private_file(path: Path) -> None:
    """Tighten an existing file of ours to 0600."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) & 0o077:
        path.chmod(0o600)


@dataclass(frozen=True)
class Settings:
    # Backends -----------------------------------------------------------------------------
    database_url: str = (
        ""  # postgresql://…, sqlite:///path or a bare path; "" = embedded SQLite file
    )
    redis_url: str = ""  # redis://, rediss://, unix://, redis+cluster://host:port[,host:port…] or memory://; "" = memory://
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
    # seconds a user's profile and role stay in the `user` cache namespace (admin-role check of
    # every admin token, GET /users/profile); writes through this service invalidate at once,
    # so this bounds only edits made behind its back (SQL)
    user_cache_ttl: int = 60
    # seconds "is this login revoked" stays in the `session` namespace (the refresh-family
    # fallback of every access-token check); the database row is the truth either way
    session_cache_ttl: int = 905
    login_attempts_per_account: int = 5  # per login_window, per (account, client address)
    login_attempts_per_ip: int = 20  # per login_window, per client address, any account
    login_window: int = 60  # seconds
    # per account from addresses that never logged into it (limits syntax; stacked = backoff)
    login_account_ceiling: str = "20 per 10 minutes; 100 per day"
    register_rate: str = "20 per hour"  # registrations per client address (limits syntax)
    refresh_rate: str = "10 per minute"  # token refreshes per login (refresh family)
    feedback_rate: str = "20 per hour"  # feedback posts per user
    argon2_memory_kib: int = 19 * 1024
    argon2_time_cost: int = 2
    argon2_parallelism: int = 1
    # password hashes computed at once per process; registrations get at most half of them, so
    # a registration flood cannot starve logins
    argon2_concurrency: int = 2
    # Trusted reverse proxies (addresses/CIDRs, comma-separated); X-Forwarded-For is read only
    # from these peers, rightmost untrusted hop = the client. Empty = trust none (use the peer).
    forwarded_allow_ips: tuple[str, ...] = ()

    # HTTP / WebSocket -------------------------------------------------------------------
    allowed_origins: tuple[str, ...] = ()  # exact Origin matches; () = same-host defaults
    max_message_bytes: int = 64 * 1024  # text frames
    max_chunk_bytes: int = 512 * 1024  # upload payload per binary frame
    max_image_bytes: int = 10 * 1024 * 1024
    max_image_pixels: int = 24_000_000  # header pixel cap (a 24 Mpx photo; Pillow's own is ~89 Mpx)
    max_decode_bytes: int = 128 * 1024 * 1024  # decoded pixels × bytes/pixel one image may need
    image_max_side: int = (
        1536  # long side images are reduced to while decoding (what analyzers use)
    )
    image_decode_concurrency: int = 2  # images decoded at once per process (each in a thread)
    outbound_queue_size: int = 512  # frames per socket before 4008
    idle_timeout: float = 1200.0  # seconds without any inbound frame before a 1001 close (0 = off)
    ws_ping_interval: float = 20.0
    ws_ping_timeout: float = 20.0
    ws_per_message_deflate: bool = False
    max_connections_per_user: int = 20
    command_rate: float = 30.0  # commands per second per socket (token bucket refill)
    command_burst: int = 60
    rate_limit_strikes: int = 50  # refused commands or junk chunks in a row before close 4009
    upload_frame_rate: float = 20.0  # binary frames per second per socket (token bucket refill)
    upload_frame_burst: int = 40  # a whole 10 MiB image in 512 KiB chunks fits in one burst
    subscribe_limit: str = "120/minute"  # subscribe commands per user, across the cluster
    quiz_start_limit: str = "10/minute"  # quiz.start commands per user, across the cluster
    close_timeout: float = (
        5.0  # seconds a socket close may take before the TCP connection is aborted
    )
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
    # model-backed analyses a free-plan user may start per calendar month (UTC); premium: no cap
    free_analyses_per_month: int = 5
    upload_ttl: int = 3600  # seconds an incomplete upload is kept
    upload_rate_limit: str = "10/minute"  # POST /files/upload per user (limits syntax)
    # es | en: the language of a user with no saved locale and no usable Accept-Language
    default_locale: str = "es"
    upload_user_bytes: int = 64 * 1024 * 1024  # upload bytes one user may hold in the KV store
    upload_process_bytes: int = 256 * 1024 * 1024  # upload bytes one process holds in flight
    analysis_lease: float = 5.0  # seconds a run's lease and slot outlive its node's last heartbeat
    db_retry_window: float = (
        180.0  # seconds a run retries recording its outcome while the database is down
    )
    image_retention: int = 0  # seconds a validated image is kept after its analysis (0 = none)
    cache_ttl: int = 30 * 24 * 3600  # `analysis` cache namespace
    # USD per 1M tokens, for the admin analytics' estimated model cost (docs/analytics.md):
    # prompt tokens at the input price; output and thinking tokens at the output price.
    # Defaults: Gemini 2.5 Flash paid tier list prices.
    model_price_input_per_1m: float = 0.30
    model_price_output_per_1m: float = 2.50

    # Billing (Stripe; docs/billing.md) ------------------------------------------------------
    stripe_secret_key: str = ""  # sk_…; "" = billing disabled (checkout answers 503)
    stripe_webhook_secret: str = ""  # whsec_… of the webhook endpoint; "" = webhooks refused
    stripe_price_id: str = ""  # price_… of the premium subscription
    stripe_api_base: str = ""  # "" = Stripe's own API; tests point it at a local fake
    stripe_webhook_tolerance: int = 300  # seconds a signed webhook timestamp may be old
    billing_success_url: str = "http://localhost:8000/?billing=success"  # after checkout
    billing_cancel_url: str = "http://localhost:8000/?billing=cancel"  # checkout abandoned

    # Web Push (docs/billing.md) ---------------------------------------------------------------
    vapid_private_key: str = ""  # base64url raw P-256 private key or PEM; "" = push disabled
    vapid_subject: str = "mailto:admin@example.com"  # contact the push services see in the JWT
    push_ttl: int = 24 * 3600  # seconds a push service keeps an undelivered notification
    push_retries: int = 3  # further attempts after a failed delivery (5xx, 429, network)
    push_backoff: float = 0.5  # first retry delay in seconds; doubles per retry
    push_max_subscriptions: int = 10  # browsers per user; the oldest is replaced past it
    push_queue_size: int = 1000  # deliveries waiting per node; past it new ones are dropped
    # http:// endpoints on 127.0.0.1/localhost (a local push service in tests); never in production
    push_allow_insecure_endpoints: bool = False

    # Operations -------------------------------------------------------------------------
    metrics_interval: float = 2.0
    metrics_token: str = ""  # bearer for /metrics in addition to admin tokens
    # prometheus-client's own variable: set it (to an emptied directory) in the environment of
    # every uvicorn worker to aggregate /metrics across workers; "" = one process, in-memory.
    prometheus_multiproc_dir: str = ""
    log_level: str = "INFO"
    log_json: bool = True

    # -----------------------------------------------------------------------------------
    @property
    def production(self) -> bool:
        if self.environment:
            return self.environment == "production"
        return bool(self.database_url or self.redis_url.startswith("redis"))

    @property
    def embedded(self) -> bool:
        """True when this process holds state no other process can see (one process only)."""
        return self.effective_database_url.startswith(
            "sqlite"
        ) or self.effective_redis_url.startswith("memory")

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            url = self.database_url
            if "://" not in url:
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
        _warn_about_old_variables(env)
        values: dict[str, Any] = {}
        for f in fields(cls):
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
        for variable, url, accepted in (
            ("DATABASE_URL", self.database_url, DATABASE_SCHEMES),
            ("REDIS_URL", self.effective_redis_url, REDIS_SCHEMES),
        ):
            problem = url_scheme_error(variable, url, accepted) if url else None
            if problem is not None:
                raise SettingsError(problem)
        if self.production and not self.jwt_secret_key:
            raise SettingsError("JWT_SECRET_KEY is required in production")
        from synthia_rt.auth.throttle import rules  # here: auth imports settings

        for name in ("login_account_ceiling", "register_rate", "refresh_rate", "feedback_rate"):
            try:
                rules(getattr(self, name))
            except ValueError as exc:
                raise SettingsError(f"{name.upper()}: {exc}") from None
        if self.argon2_concurrency < 1:
            raise SettingsError("ARGON2_CONCURRENCY must be at least 1")
        try:
            trusted_networks(self.forwarded_allow_ips)
        except ValueError as exc:
            raise SettingsError(f"FORWARDED_ALLOW_IPS: {exc}") from None
        if self.jwt_secret_key:  # in every mode: a weak key is a forgeable token
            _check_secret(self.jwt_secret_key)
        from synthia_rt.i18n import SUPPORTED  # here: i18n is imported late by design

        if self.default_locale not in SUPPORTED:
            raise SettingsError(f"DEFAULT_LOCALE must be one of {', '.join(SUPPORTED)}")
        for name in ("user_cache_ttl", "session_cache_ttl", "cache_ttl"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name.upper()} must be at least 1 (seconds)")
        if self.max_chunk_bytes > self.max_image_bytes:
            raise SettingsError("MAX_CHUNK_BYTES cannot exceed MAX_IMAGE_BYTES")

    def resolved_secret(self) -> str:
        """The signing key; the embedded default generates one and keeps it in ``data_dir``.

        A generated key file that is unreadable as a strong key (empty, truncated, edited) is
        replaced by a new one, with a warning; the file is kept 0600 in a 0700 directory.
        """
        directory = Path(self.data_dir)
        if self.jwt_secret_key:
            _check_secret(self.jwt_secret_key)
            if directory.is_dir():
                private_dir(directory)  # it may hold the SQLite file and uploads
            return self.jwt_secret_key
        if self.production:
            raise SettingsError("JWT_SECRET_KEY is required in production")
        private_dir(directory)
        path = directory / "jwt-secret"
        try:
            current = path.read_text().strip()
        except FileNotFoundError:
            current = None
        except (OSError, UnicodeDecodeError):
            current = ""
        if current is not None and secret_weakness(current) is None:
            private_file(path)
            return current
        if current is not None:
            log.warning(
                "the generated JWT key file %s is not a strong key; replacing it "
                "(every token signed with the old one stops working)",
                path,
            )
        fresh = secrets.token_urlsafe(48)
        temp = directory / f".jwt-secret.{secrets.token_hex(4)}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(fresh)
        os.replace(temp, path)  # atomic: a crash leaves the old file or the new one
        return fresh


# Variables of the Flask app this service replaces that mean nothing here: what to do instead.
OLD_VARIABLES = {
    "REDIS_ENABLED": "Redis is used exactly when REDIS_URL is set (redis://host:6379/0); leave "
    "REDIS_URL empty for the embedded in-memory store (one process only). Redis >= 7 is "
    "required (docs/coming-from-flask.md)",
}


def _warn_about_old_variables(env: Mapping[str, str]) -> None:
    for name, instead in OLD_VARIABLES.items():
        if name in env:
            log.warning("%s is ignored by synthia_rt: %s", name, instead, extra={"setting": name})


def _check_secret(secret: str) -> None:
    problem = secret_weakness(secret)
    if problem is not None:
        raise SettingsError(
            f"JWT_SECRET_KEY is too weak ({problem}): use at least {MIN_SECRET_LENGTH} random "
            "bytes, e.g. the output of `openssl rand -base64 48`"
        )
