"""Hostile users vs. logins (issue 9): whole-login revocation, admin role re-checks, throttles
that strangers cannot turn into lockouts, rate limits, deletion re-authentication."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import jwt
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from synthia_rt.store import users
from synthia_rt.store.tables import User
from tests.conftest import Live
from tests.opshelpers import admin_in_process, bearer, promote_in_process
from tests.rest_helpers import API, register

Pair = tuple[Any, httpx.AsyncClient]


async def _socket_status(live: Live, token: str) -> int:
    """101 when the handshake is accepted, else the refusal's HTTP status."""
    try:
        async with connect(f"ws://{live}/ws", subprotocols=["synthia.v1", f"bearer.{token}"]):  # type: ignore[list-item]
            return 101
    except InvalidStatus as exc:
        return int(exc.response.status_code)


def _sid(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["sid"])


# -- 9.3: logout ends the login ----------------------------------------------------------------
async def _two_tokens_of_one_login(http: httpx.AsyncClient) -> tuple[dict[str, Any], str]:
    first = await register(http)
    r = await http.post(f"{API}/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 200, r.text
    second = r.json()
    assert _sid(first["access_token"]) == _sid(second["access_token"])
    return first, second["access_token"]


async def test_logout_refuses_every_access_token_of_the_login(live: Live) -> None:
    async with httpx.AsyncClient(base_url=f"http://{live}") as http:
        first, second = await _two_tokens_of_one_login(http)
        other = (await http.post(f"{API}/auth/login", json={"email": first["user"]["email"], "password": "correct horse battery staple"})).json()
        for token in (first["access_token"], second):
            assert (await http.get(f"{API}/users/profile", headers=bearer(token))).status_code == 200
            assert await _socket_status(live, token) == 101
        out = await http.post(f"{API}/auth/logout", headers=bearer(second))
        assert out.status_code == 204
        for token in (first["access_token"], second):
            r = await http.get(f"{API}/users/profile", headers=bearer(token))
            assert r.status_code == 401 and r.json()["error"]["code"] == "token_invalid"
            assert await _socket_status(live, token) == 401
        # Another login of the same user is another session: it goes on.
        assert (await http.get(f"{API}/users/profile", headers=bearer(other["access_token"]))).status_code == 200
        assert await _socket_status(live, other["access_token"]) == 101


async def test_login_revocation_survives_loss_of_the_kv(live: Live) -> None:
    async with httpx.AsyncClient(base_url=f"http://{live}") as http:
        first, second = await _two_tokens_of_one_login(http)
        assert (await http.post(f"{API}/auth/logout", headers=bearer(second))).status_code == 204
        kv = live.runtime.need_kv()
        assert await kv.delete(f"revoked-sid:{_sid(second)}") == 1  # Redis restarted empty
        r = await http.get(f"{API}/users/profile", headers=bearer(first["access_token"]))
        assert r.status_code == 401  # the family row says revoked
        assert await kv.get(f"revoked-sid:{_sid(second)}") == b"1"  # and the cache is back


async def test_refresh_reuse_refuses_every_access_token_of_the_login(live: Live) -> None:
    async with httpx.AsyncClient(base_url=f"http://{live}") as http:
        first, second = await _two_tokens_of_one_login(http)
        reused = await http.post(f"{API}/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert reused.status_code == 401 and reused.json()["error"]["code"] == "token_reused"
        for token in (first["access_token"], second):
            assert (await http.get(f"{API}/users/profile", headers=bearer(token))).status_code == 401
            assert await _socket_status(live, token) == 401


# -- 9.4: the admin role is the database's, not the token's -----------------------------------
def _admin_paths(user_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("POST", f"{API}/admin/notifications", {"all": True, "title": "x"}),
        ("POST", f"{API}/admin/users/{user_id}/block", None),
        ("GET", f"{API}/admin/audit", None),
        ("GET", "/metrics", None),
    ]


async def test_forged_or_stale_admin_claims_do_not_reach_admin_routes(app_client: Pair) -> None:
    app, client = app_client
    tokens = app.state.runtime.need_tokens()
    victim = await register(client)
    plain = await register(client)
    # Minted with the right key, for a user who is not an admin.
    forged, _ = tokens.issue_access(plain["user"]["id"], "admin")
    # An admin demoted after the token was issued.
    admin = await admin_in_process(client)
    assert (await client.get(f"{API}/admin/audit", headers=bearer(admin["access_token"]))).status_code == 200
    await User.update({User.role: "user"}).where(User.id == uuid.UUID(admin["user"]["id"])).run()
    for token in (forged, admin["access_token"]):
        for method, path, body in _admin_paths(victim["user"]["id"]):
            r = await client.request(method, path, json=body, headers=bearer(token))
            assert r.status_code == 403, (path, r.text)
        # The user's own routes still work: the token is valid, the claim is not believed.
        assert (await client.get(f"{API}/users/profile", headers=bearer(token))).status_code == 200
    assert (await users.by_id(victim["user"]["id"])) is not None
    assert (await users.by_id(victim["user"]["id"])).active  # type: ignore[union-attr]


async def test_a_current_admin_still_gets_in(app_client: Pair) -> None:
    _, client = app_client
    account = await register(client)
    await promote_in_process(account["user"]["id"])
    fresh = (await client.post(f"{API}/auth/login", json={"email": account["user"]["email"], "password": "correct horse battery staple"})).json()
    for _, path, _body in _admin_paths(str(uuid.uuid4()))[2:]:
        assert (await client.get(path, headers=bearer(fresh["access_token"]))).status_code == 200



