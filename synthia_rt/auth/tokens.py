"""Issue and verify JWTs (HS256): short-lived access tokens and rotating refresh tokens.

Claims: ``iss aud sub iat exp jti typ`` plus ``role`` and optionally ``sid`` (access: the
login it belongs to) or ``fam`` (refresh: the login's token family; ``sid == fam``).
``iat`` carries microseconds (RFC 7519 allows a fractional NumericDate) so that a token
issued right after a logout is not caught by that logout's cutoff.

The algorithm is pinned on decode: ``alg: none`` or any other algorithm is refused, whatever
the header says.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from synthia_rt.auth.principal import Principal
from synthia_rt.auth.revocation import CutoffLoader, CutoffSaver, Revocation
from synthia_rt.errors import AppError, ErrorCode, TokenRevoked
from synthia_rt.kv.base import KeyValue
from synthia_rt.settings import Settings
from synthia_rt.store import users as user_store
from synthia_rt.store.users import UserGone

ALGORITHM = "HS256"
ACCESS = "access"
REFRESH = "refresh"
ROLES = frozenset({"user", "admin"})
MAX_TOKEN_LENGTH = 4096  # far above a real token; refuses junk before any parsing
_REQUIRED = ["iss", "aud", "sub", "iat", "exp", "jti", "typ"]


@dataclass(frozen=True, slots=True)
class RefreshClaims:
    user_id: str
    family_id: str
    jti: str
    issued_at: float
    expires_at: float


class TokenService:
    def __init__(
        self,
        settings: Settings,
        kv: KeyValue,
        *,
        load_cutoff: CutoffLoader = user_store.get_tokens_valid_after,
        save_cutoff: CutoffSaver = user_store.set_tokens_valid_after,
    ) -> None:
        self._settings = settings
        self._secret = settings.resolved_secret()
        self.revocation = Revocation(kv, load_cutoff, save_cutoff)

    # -- issuing ---------------------------------------------------------------------------
    def _encode(self, user_id: str, typ: str, ttl: int, **extra: str) -> tuple[str, str, float]:
        now = time.time()
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
        self, user_id: str, role: str, session_id: str | None = None
    ) -> tuple[str, Principal]:
        """``session_id`` (the refresh family) lets logout end exactly this login."""
        extra = {"role": role} if session_id is None else {"role": role, "sid": session_id}
        token, jti, exp = self._encode(user_id, ACCESS, self._settings.access_token_ttl, **extra)
        return token, Principal(
            user_id=user_id, role=role, jti=jti, expires_at=exp, session_id=session_id
        )

    def issue_refresh(self, user_id: str, family_id: str) -> tuple[str, str, float]:
        """Returns ``(token, jti, exp)``; the caller records ``jti`` as the family's current link."""
        return self._encode(user_id, REFRESH, self._settings.refresh_token_ttl, fam=family_id)

    # -- verifying -------------------------------------------------------------------------
    def _decode(self, token: object, typ: str) -> dict[str, Any]:
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            raise AppError(ErrorCode.TOKEN_INVALID)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=self._settings.jwt_audience,
                issuer=self._settings.jwt_issuer,
                options={"require": _REQUIRED},
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

    async def verify_access(self, token: object) -> Principal:
        claims = self._decode(token, ACCESS)
        role = claims.get("role")
        if role not in ROLES:
            raise AppError(ErrorCode.TOKEN_INVALID)
        # Both lookups at once: this runs on every socket connect and every REST call.
        revoked, _ = await asyncio.gather(
            self.revocation.is_revoked(claims["jti"]),
            self._check_cutoff(claims["sub"], float(claims["iat"])),
        )
        if revoked:
            raise TokenRevoked()
        sid = claims.get("sid")
        return Principal(
            user_id=claims["sub"],
            role=str(role),
            jti=claims["jti"],
            expires_at=float(claims["exp"]),
            session_id=sid if isinstance(sid, str) else None,
        )

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
        )

    # -- revoking --------------------------------------------------------------------------
    async def revoke_jti(self, jti: str, exp: float) -> None:
        await self.revocation.revoke_jti(jti, exp)

    async def revoke_user_tokens(self, user_id: str) -> float:
        """Every token of the user issued until now becomes invalid (on every node)."""
        return await self.revocation.revoke_user(user_id)
