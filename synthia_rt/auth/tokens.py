"""Issue and verify JWTs (HS256): short-lived access tokens and rotating refresh tokens.

Claims: ``iss aud sub iat exp jti typ`` plus ``role`` and optionally ``sid`` (access: the
login it belongs to) or ``fam`` (refresh: the login's token family; ``sid == fam``), and
``auth_time`` (when the password was last checked for this login; carried across refreshes).
``iat`` carries microseconds (RFC 7519 allows a fractional NumericDate) so that a token
issued right after a logout is not caught by that logout's cutoff.

The algorithm is pinned on decode: ``alg: none`` or any other algorithm is refused, whatever
the header says.
"""

from __future__ import annotations

import asyncio
import binascii
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.algorithms import HMACAlgorithm
from jwt.api_jws import PyJWS
from jwt.utils import base64url_decode, base64url_encode

from synthia_rt.analysis.cache import ResultCache
from synthia_rt.auth.principal import Principal
from synthia_rt.auth.revocation import CutoffLoader, CutoffSaver, Revocation, SessionLoader
from synthia_rt.errors import AppError, ErrorCode, TokenRevoked
from synthia_rt.kv.base import KeyValue
from synthia_rt.settings import Settings
from synthia_rt.store import refresh_families
from synthia_rt.store import users as user_store
from synthia_rt.store.users import UserGone

ALGORITHM = "HS256"
ACCESS = "access"
REFRESH = "refresh"
ROLES = frozenset({"user", "admin"})
MAX_TOKEN_LENGTH = 4096  # far above a real token; refuses junk before any parsing
_REQUIRED = ["iss", "aud", "sub", "iat", "exp", "jti", "typ"]
_SEGMENT = re.compile(rb"[A-Za-z0-9_-]*")


class _Segments(PyJWS):
    """PyJWS whose base64url check is one regex match instead of a generator over every
    character (PyJWT 2.15: half of a decode's time; a token is checked on every connect).
    Same refusals (a character outside the alphabet, an impossible length, a non-canonical
    encoding), and padded segments too, which stock PyJWT accepts and our issuer never
    writes."""

    @staticmethod
    def _decode_base64url_segment(segment: bytes, name: str) -> bytes:
        if _SEGMENT.fullmatch(segment) is None or len(segment) % 4 == 1:
            raise jwt.DecodeError(f"Invalid {name} padding")
        try:
            decoded = base64url_decode(segment)
        except (TypeError, binascii.Error) as err:
            raise jwt.DecodeError(f"Invalid {name} padding") from err
        if base64url_encode(decoded) != segment:
            raise jwt.DecodeError(f"Invalid {name} padding")
        return decoded


class _HS256(HMACAlgorithm):
    """HMAC-SHA256 that vets and prepares the secret once (PyJWT does it for every token:
    PEM/SSH-key checks that cannot change for the same secret)."""

    def __init__(self) -> None:
        super().__init__(HMACAlgorithm.SHA256)
        self._prepared: tuple[str | bytes, bytes] | None = None

    def prepare_key(self, key: str | bytes) -> bytes:
        prepared = self._prepared
        if prepared is None or prepared[0] != key:
            prepared = self._prepared = (key, super().prepare_key(key))
        return prepared[1]


def _decoder() -> jwt.PyJWT:
    """A private PyJWT: our required claims set once, the two speed-ups above, HS256 only."""
    api = jwt.PyJWT(options={"require": _REQUIRED})
    # ``_jws`` is private: PyJWT's own module-level decoder is wired the same way. The pin in
    # pyproject.toml and tests/test_auth_tokens.py (junk, alg:none, tampering) guard it.
    api._jws = _Segments(algorithms=[])
    api._jws.register_algorithm(ALGORITHM, _HS256())
    return api


@dataclass(frozen=True, slots=True)
class RefreshClaims:
    user_id: str
    family_id: str
    jti: str
    issued_at: float
    expires_at: float
    auth_time: float | None = None


async def _family_revoked(family_id: str) -> bool:
    family = await refresh_families.get(family_id)
    return family is not None and family.revoked


async def _current_role(user_id: str) -> str | None:
    user = await user_store.by_id(user_id)
    return user.role if user is not None and user.active else None


RoleLoader = Callable[[str], Awaitable[str | None]]


class TokenService:
    def __init__(
        self,
        settings: Settings,
        kv: KeyValue,
        *,
        load_cutoff: CutoffLoader = user_store.get_tokens_valid_after,
        save_cutoff: CutoffSaver = user_store.set_tokens_valid_after,
        load_session: SessionLoader = _family_revoked,
        load_role: RoleLoader = _current_role,
        metrics: Any = None,
    ) -> None:
        """``load_role`` is the app's ``UserCache.role`` (the ``user`` cache namespace); the
        login-revocation fallback uses the ``session`` namespace."""
        self._settings = settings
        self._secret = settings.resolved_secret()
        self._jwt = _decoder()
        self._load_role = load_role
        self.revocation = Revocation(
            kv, load_cutoff, save_cutoff, load_session, ResultCache(kv, settings, metrics)
        )

    # -- issuing ---------------------------------------------------------------------------
    def _encode(
        self, user_id: str, typ: str, ttl: int, now: float | None = None, **extra: str | float
    ) -> tuple[str, str, float]:
        now = time.time() if now is None else now
        jti = uuid.uuid4().hex
        exp = int(now) + ttl
        claims: dict[str, Any] = {
            "iss": self._settings.jwt_issuer,
            "aud": self._settings.jwt_audience,
            "sub": user_id,
            "iat": round(now, 6),
            "exp": exp,
            "jti": jti,
            "typ": typ,
            **extra,
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM), jti, float(exp)

    def issue_access(
        self,
        user_id: str,
        role: str,
        session_id: str | None = None,
        auth_time: float | None = None,
    ) -> tuple[str, Principal]:
        """``session_id`` (the refresh family) lets logout end exactly this login;
        ``auth_time`` is when its password was checked (default: now, a fresh login)."""
        auth_time = round(time.time() if auth_time is None else auth_time, 6)
        extra: dict[str, str | float] = {"role": role, "auth_time": auth_time}
        if session_id is not None:
            extra["sid"] = session_id
        now = time.time()
        token, jti, exp = self._encode(
            user_id, ACCESS, self._settings.access_token_ttl, now, **extra
        )
        return token, Principal(
            user_id=user_id,
            role=role,
            jti=jti,
            expires_at=exp,
            session_id=session_id,
            auth_time=auth_time,
            issued_at=round(now, 6),
        )

    def issue_refresh(
        self, user_id: str, family_id: str, auth_time: float | None = None
    ) -> tuple[str, str, float]:
        """Returns ``(token, jti, exp)``; the caller records ``jti`` as the family's current link."""
        auth_time = round(time.time() if auth_time is None else auth_time, 6)
        return self._encode(
            user_id, REFRESH, self._settings.refresh_token_ttl, fam=family_id, auth_time=auth_time
        )

    # -- verifying -------------------------------------------------------------------------
    def _decode(self, token: object, typ: str) -> dict[str, Any]:
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            raise AppError(ErrorCode.TOKEN_INVALID)
        try:
            claims: dict[str, Any] = self._jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=self._settings.jwt_audience,
                issuer=self._settings.jwt_issuer,
            )
        except jwt.ExpiredSignatureError:
            raise AppError(ErrorCode.TOKEN_EXPIRED) from None
        except jwt.PyJWTError:
            raise AppError(ErrorCode.TOKEN_INVALID) from None
        if claims.get("typ") != typ:
            raise AppError(ErrorCode.TOKEN_INVALID)
        if not all(isinstance(claims.get(k), str) and claims[k] for k in ("sub", "jti")):
            raise AppError(ErrorCode.TOKEN_INVALID)
        return claims

    async def _check_cutoff(self, user_id: str, issued_at: float) -> None:
        try:
            cutoff = await self.revocation.cutoff(user_id)
        except UserGone:
            raise TokenRevoked() from None
        if cutoff is not None and issued_at <= cutoff:
            raise TokenRevoked()

    async def _role(self, user_id: str, claimed: str) -> str:
        """The admin claim is confirmed against the database (a demoted admin, or a token
        minted for a non-admin, gets ``user``); other roles need no lookup."""
        if claimed != "admin":
            return claimed
        return "admin" if await self._load_role(user_id) == "admin" else "user"

    async def verify_access(self, token: object) -> Principal:
        claims = self._decode(token, ACCESS)
        role = claims.get("role")
        if role not in ROLES:
            raise AppError(ErrorCode.TOKEN_INVALID)
        sid = claims.get("sid")
        sid = sid if isinstance(sid, str) and sid else None
        # This runs on every socket connect and every REST call: the three revocation answers
        # in one round trip, and the admin claim confirmed beside it.
        try:
            lookup = self.revocation.state(claims["jti"], claims["sub"], sid)
            if role == "admin":
                state, actual_role = await asyncio.gather(lookup, self._role(claims["sub"], role))
            else:
                state, actual_role = await lookup, str(role)
        except UserGone:
            raise TokenRevoked() from None
        if state.refuses(float(claims["iat"])):
            raise TokenRevoked()
        return Principal(
            user_id=claims["sub"],
            role=actual_role,
            jti=claims["jti"],
            expires_at=float(claims["exp"]),
            session_id=sid,
            auth_time=_number(claims.get("auth_time")),
            issued_at=float(claims["iat"]),
        )

    async def still_valid(self, principal: Principal) -> bool:
        """Whether a token verified earlier has been revoked since (its jti, its login, or a
        user cutoff after it was issued). Dependency failures raise: no answer, no verdict."""
        issued_at = principal.issued_at if principal.issued_at is not None else 0.0
        try:
            state = await self.revocation.state(
                principal.jti, principal.user_id, principal.session_id
            )
        except UserGone:
            return False
        return not state.refuses(issued_at)

    async def verify_refresh(self, token: object) -> RefreshClaims:
        """Signature, type, expiry and user cutoff; the family check is the caller's (store)."""
        claims = self._decode(token, REFRESH)
        family = claims.get("fam")
        if not isinstance(family, str) or not family:
            raise AppError(ErrorCode.TOKEN_INVALID)
        await self._check_cutoff(claims["sub"], float(claims["iat"]))
        return RefreshClaims(
            user_id=claims["sub"],
            family_id=family,
            jti=claims["jti"],
            issued_at=float(claims["iat"]),
            expires_at=float(claims["exp"]),
            auth_time=_number(claims.get("auth_time")),
        )

    # -- revoking --------------------------------------------------------------------------
    async def revoke_jti(self, jti: str, exp: float) -> None:
        await self.revocation.revoke_jti(jti, exp)

    async def revoke_session(self, sid: str) -> None:
        """Every access token of this login is refused from now on (on every node)."""
        await self.revocation.revoke_session(sid)

    async def revoke_user_tokens(self, user_id: str) -> float:
        """Every token of the user issued until now becomes invalid (on every node)."""
        return await self.revocation.revoke_user(user_id)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
