"""Who is calling: the verified identity carried by a request or a socket."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    role: str  # "user" | "admin"
    jti: str  # id of the access token that authenticated this caller
    expires_at: float  # unix seconds when that token expires
    session_id: str | None = None  # the login (refresh family) the token belongs to
    auth_time: float | None = None  # unix seconds when this login's password was checked
    issued_at: float | None = None  # the token's ``iat`` (a user cutoff compares against it)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"
