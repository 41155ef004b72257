"""Hostile users vs. logins (issue 9): whole-login revocation, admin role re-checks, throttles
that strangers cannot turn into lockouts, rate limits, deletion re-authentication."""

from __future__ import annotations

import asyncio
import contextlib
import stat
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from synthia_rt.analysis.cache import decode
from synthia_rt.clientaddr import client_address
from synthia_rt.settings import Settings, SettingsError
from synthia_rt.store import users
from synthia_rt.store.tables import User
from tests.conftest import Live, running_app
from tests.conftest_helpers import unique_email
from tests.nodes import start_node
from tests.opshelpers import admin_in_process, bearer, promote_in_process
from tests.redis_server import private_redis
from tests.rest_helpers import API, PASSWORD, register

Pair = tuple[Any, httpx.AsyncClient]


async def _socket_status(live: Live, token: str) -> int:
    """101 when the socket is served (``session.ready`` arrives), else the close code of the
    refusal (a ``synthia.v1`` client is accepted, then closed: 4001/4003/4010/1013/4029)."""
    try:
        async with connect(
            f"ws://{live}/ws", subprotocols=["synthia.v1", f"bearer.{token}"]
        ) as conn:  # type: ignore[list-item]
            try:
                first = orjson.loads(await asyncio.wait_for(conn.recv(), 10))
            except ConnectionClosed:
                assert conn.protocol.close_rcvd is not None
                return int(conn.protocol.close_rcvd.code)
            assert first["event"] == "session.ready", first
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
        other = (
            await http.post(
                f"{API}/auth/login", json={"email": first["user"]["email"], "password": PASSWORD}
            )
        ).json()
        for token in (first["access_token"], second):
            assert (
                await http.get(f"{API}/users/profile", headers=bearer(token))
            ).status_code == 200
            assert await _socket_status(live, token) == 101
        out = await http.post(f"{API}/auth/logout", headers=bearer(second))
        assert out.status_code == 204
        for token in (first["access_token"], second):
            r = await http.get(f"{API}/users/profile", headers=bearer(token))
            assert r.status_code == 401 and r.json()["error"]["code"] == "token_invalid"
            assert await _socket_status(live, token) == 4010
        # Another login of the same user is another session: it goes on.
        assert (
            await http.get(f"{API}/users/profile", headers=bearer(other["access_token"]))
        ).status_code == 200
        assert await _socket_status(live, other["access_token"]) == 101


async def test_login_revocation_survives_loss_of_the_kv(live: Live) -> None:
    async with httpx.AsyncClient(base_url=f"http://{live}") as http:
        first, second = await _two_tokens_of_one_login(http)
        assert (await http.post(f"{API}/auth/logout", headers=bearer(second))).status_code == 204
        kv = live.runtime.need_kv()
        assert await kv.delete(f"cache:session:{_sid(second)}") == 1  # Redis restarted empty
        r = await http.get(f"{API}/users/profile", headers=bearer(first["access_token"]))
        assert r.status_code == 401  # the family row says revoked
        assert decode(await kv.get(f"cache:session:{_sid(second)}") or b"j0") is True  # cache back


async def test_refresh_reuse_refuses_every_access_token_of_the_login(live: Live) -> None:
    async with httpx.AsyncClient(base_url=f"http://{live}") as http:
        first, second = await _two_tokens_of_one_login(http)
        reused = await http.post(
            f"{API}/auth/refresh", json={"refresh_token": first["refresh_token"]}
        )
        assert reused.status_code == 401 and reused.json()["error"]["code"] == "token_reused"
        for token in (first["access_token"], second):
            assert (
                await http.get(f"{API}/users/profile", headers=bearer(token))
            ).status_code == 401
            assert await _socket_status(live, token) == 4010


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
    assert (
        await client.get(f"{API}/admin/audit", headers=bearer(admin["access_token"]))
    ).status_code == 200
    await User.update({User.role: "user"}).where(User.id == uuid.UUID(admin["user"]["id"])).run()
    # The role is read through the `user` cache: a change made through the service drops the
    # entry (this call); a bare SQL edit is seen within USER_CACHE_TTL (docs/security.md).
    await app.state.runtime.forget_user(admin["user"]["id"])
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
    fresh = (
        await client.post(
            f"{API}/auth/login", json={"email": account["user"]["email"], "password": PASSWORD}
        )
    ).json()
    for _, path, _body in _admin_paths(str(uuid.uuid4()))[2:]:
        assert (await client.get(path, headers=bearer(fresh["access_token"]))).status_code == 200


# -- 9.6: strangers cannot lock the owner out ---------------------------------------------------
@contextlib.asynccontextmanager
async def _at(app: Any, ip: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def _login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> int:
    r = await client.post(f"{API}/auth/login", json={"email": email, "password": password})
    if r.status_code == 429:
        assert 1 <= int(r.headers["retry-after"]) <= 3600
    return r.status_code


@pytest.mark.parametrize("backend_name", ["redis", "memory"])
async def test_a_stranger_cannot_lock_the_owner_out(settings_for: Any, backend_name: str) -> None:
    settings = settings_for(backend_name, login_attempts_per_account=3, login_attempts_per_ip=100)
    async with running_app(settings) as (app, owner):
        email = unique_email()
        async with _at(app, "10.9.9.9") as elsewhere:  # registered elsewhere: owner's IP not known
            await register(elsewhere, email=email)
        async with _at(app, "10.0.0.66") as attacker:
            assert [await _login(attacker, email, "wrong guess!") for _ in range(4)] == [
                401,
                401,
                401,
                429,
            ]
        assert await _login(owner, email) == 200
        session = (
            await owner.post(f"{API}/auth/login", json={"email": email, "password": PASSWORD})
        ).json()
        changed = await owner.patch(
            f"{API}/users/profile",
            headers=bearer(session["access_token"]),
            json={"current_password": PASSWORD, "password": PASSWORD + "!"},
        )
        assert changed.status_code == 200, changed.text


@pytest.mark.parametrize("backend_name", ["redis", "memory"])
async def test_guessing_from_many_addresses_hits_the_account_ceiling_not_the_owner(
    settings_for: Any, backend_name: str
) -> None:
    settings = settings_for(
        backend_name,
        login_attempts_per_account=2,
        login_attempts_per_ip=100,
        login_account_ceiling="7 per minute; 100 per day",  # the owner's first login counts
    )
    async with running_app(settings) as (app, owner):
        email = unique_email()
        async with _at(app, "10.9.9.9") as elsewhere:
            await register(elsewhere, email=email)
        assert await _login(owner, email) == 200  # the owner's address becomes known
        for i in range(3):
            async with _at(app, f"10.0.1.{i + 1}") as attacker:
                assert [await _login(attacker, email, "wrong guess!") for _ in range(2)] == [
                    401,
                    401,
                ]
        async with _at(app, "10.0.2.1") as stranger:
            assert await _login(stranger, email, "wrong guess!") == 429  # the ceiling
            assert await _login(stranger, email) == 429  # even with the password, from here
        assert await _login(owner, email) == 200  # the owner's known address skips it


# -- 9.5 / 9.8: REST rate limits ------------------------------------------------------------------
@pytest.mark.parametrize("backend_name", ["redis", "memory"])
async def test_registration_is_limited_per_address_and_keeps_its_409(
    settings_for: Any, backend_name: str
) -> None:
    async with running_app(settings_for(backend_name, register_rate="3 per hour")) as (app, client):
        email = unique_email()
        await register(client, email=email)
        dup = await client.post(f"{API}/auth/register", json={"email": email, "password": PASSWORD})
        assert dup.status_code == 409 and dup.json()["error"]["code"] == "conflict"
        await register(client)
        limited = await client.post(
            f"{API}/auth/register", json={"email": unique_email(), "password": PASSWORD}
        )
        assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(limited.headers["retry-after"]) <= 3600
        taken = await client.post(
            f"{API}/auth/register", json={"email": email, "password": PASSWORD}
        )
        assert taken.status_code == 429  # no enumeration past the limit either
        async with _at(app, "10.0.3.1") as other:
            await register(other)


@pytest.mark.parametrize("backend_name", ["redis", "memory"])
async def test_refresh_is_limited_per_login(settings_for: Any, backend_name: str) -> None:
    async with running_app(settings_for(backend_name, refresh_rate="2 per minute")) as (_, client):
        email = unique_email()
        session = await register(client, email=email)
        token = session["refresh_token"]
        for _ in range(2):
            r = await client.post(f"{API}/auth/refresh", json={"refresh_token": token})
            assert r.status_code == 200
            token = r.json()["refresh_token"]
        limited = await client.post(f"{API}/auth/refresh", json={"refresh_token": token})
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        other = (
            await client.post(f"{API}/auth/login", json={"email": email, "password": PASSWORD})
        ).json()
        r = await client.post(f"{API}/auth/refresh", json={"refresh_token": other["refresh_token"]})
        assert r.status_code == 200  # another login has its own budget


@pytest.mark.parametrize("backend_name", ["redis", "memory"])
async def test_feedback_is_limited_per_user(settings_for: Any, backend_name: str) -> None:
    async with running_app(settings_for(backend_name, feedback_rate="2 per hour")) as (_, client):
        a, b = await register(client), await register(client)
        post = {"rating": 4, "comment": "ok"}
        for _ in range(2):
            assert (
                await client.post(f"{API}/feedback", json=post, headers=bearer(a["access_token"]))
            ).status_code == 201
        limited = await client.post(f"{API}/feedback", json=post, headers=bearer(a["access_token"]))
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert (
            await client.post(f"{API}/feedback", json=post, headers=bearer(b["access_token"]))
        ).status_code == 201


# -- 9.9: client addresses behind a balancer ------------------------------------------------------
def test_client_address_takes_the_rightmost_untrusted_hop() -> None:
    trusted = ("127.0.0.1", "10.0.0.0/8")

    def scope(peer: str, xff: str | None = None) -> dict[str, Any]:
        headers = [(b"x-forwarded-for", xff.encode())] if xff else []
        return {"client": (peer, 1234), "headers": headers}

    assert client_address(scope("127.0.0.1", "1.2.3.4"), trusted) == "1.2.3.4"
    assert client_address(scope("127.0.0.1", "6.6.6.6, 1.2.3.4, 10.1.1.1"), trusted) == "1.2.3.4"
    assert client_address(scope("8.8.8.8", "1.2.3.4"), trusted) == "8.8.8.8"  # untrusted peer
    assert client_address(scope("127.0.0.1", "1.2.3.4"), ()) == "127.0.0.1"  # trust none
    assert client_address(scope("127.0.0.1", "[2001:db8::1]:443"), trusted) == "2001:db8::1"
    assert client_address(scope("127.0.0.1", "not an address"), trusted) == "127.0.0.1"
    with pytest.raises(SettingsError, match="FORWARDED_ALLOW_IPS"):
        Settings.from_env({"FORWARDED_ALLOW_IPS": "10.0.0.0/8, nonsense"})


async def _wrong_login_from(http: httpx.AsyncClient, xff: str) -> int:
    r = await http.post(
        f"{API}/auth/login",
        json={"email": unique_email(), "password": "wrong guess!"},
        headers={"X-Forwarded-For": xff},
    )
    return r.status_code


async def test_forwarded_for_is_believed_only_from_trusted_proxies(
    node_env: dict[str, str],
) -> None:
    limits = {"LOGIN_ATTEMPTS_PER_IP": "2", "LOGIN_ATTEMPTS_PER_ACCOUNT": "100"}
    # Behind a trusted balancer (loopback): every client has its own bucket.
    node = await start_node({**node_env, **limits, "FORWARDED_ALLOW_IPS": "127.0.0.1"})
    try:
        async with httpx.AsyncClient(base_url=node.http) as http:
            assert [await _wrong_login_from(http, "198.51.100.1") for _ in range(3)] == [
                401,
                401,
                429,
            ]
            assert await _wrong_login_from(http, "203.0.113.9, 198.51.100.2") == 401
    finally:
        await node.stop()
    # No trusted proxy configured: the header is the client's own claim, and ignored.
    node = await start_node({**node_env, **limits})
    try:
        async with httpx.AsyncClient(base_url=node.http) as http:
            statuses = [await _wrong_login_from(http, f"198.51.100.{10 + i}") for i in range(3)]
            assert statuses == [401, 401, 429]
    finally:
        await node.stop()


# -- 9.7: deleting an account needs the password (or a fresh login) -----------------------------
async def test_deleting_the_account_needs_the_password_or_a_fresh_login(app_client: Pair) -> None:
    app, client = app_client
    session = await register(client)
    user_id = session["user"]["id"]
    # A token whose login is 10 minutes old (refreshed since): what a thief would hold.
    stale, _ = app.state.runtime.need_tokens().issue_access(
        user_id, "user", auth_time=time.time() - 600
    )
    for body in (None, {"password": "not the password"}):
        r = await client.request("DELETE", f"{API}/users/profile", json=body, headers=bearer(stale))
        assert r.status_code == 422 and r.json()["error"]["field"] == "password", r.text
        assert await users.by_id(user_id) is not None
    r = await client.request(
        "DELETE", f"{API}/users/profile", json={"password": PASSWORD}, headers=bearer(stale)
    )
    assert r.status_code == 204
    assert await users.by_id(user_id) is None


async def test_refreshing_keeps_the_login_time(app_client: Pair) -> None:
    _, client = app_client
    session = await register(client)
    r = await client.post(f"{API}/auth/refresh", json={"refresh_token": session["refresh_token"]})
    claims = [
        jwt.decode(t, options={"verify_signature": False})
        for t in (session["access_token"], r.json()["access_token"])
    ]
    assert claims[0]["auth_time"] == claims[1]["auth_time"] and claims[1]["iat"] > claims[0]["iat"]
    # A fresh login may delete without re-entering the password, even through a refreshed token.
    r = await client.delete(f"{API}/users/profile", headers=bearer(r.json()["access_token"]))
    assert r.status_code == 204


# -- 9.11: embedded data is private; the CSP names real socket hosts ----------------------------
async def test_embedded_data_is_created_private(settings_for: Any, tmp_path: Path) -> None:
    settings = settings_for("memory", data_dir=str(tmp_path / "fresh"))
    async with running_app(settings):
        data = tmp_path / "fresh"
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        assert stat.S_IMODE((data / "synthia.sqlite3").stat().st_mode) == 0o600
        assert stat.S_IMODE((data / "jwt-secret").stat().st_mode) == 0o600


async def test_existing_embedded_data_is_made_private_at_start(
    settings_for: Any, tmp_path: Path
) -> None:
    data = tmp_path / "old"
    async with running_app(settings_for("memory", data_dir=str(data))):
        pass
    data.chmod(0o755)
    (data / "synthia.sqlite3").chmod(0o644)
    async with running_app(settings_for("memory", data_dir=str(data))):
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        assert stat.S_IMODE((data / "synthia.sqlite3").stat().st_mode) == 0o600


async def test_csp_connect_src_names_this_host_and_allowed_origins_only(settings_for: Any) -> None:
    settings = settings_for("memory", allowed_origins=("https://app.example.com",))
    async with running_app(settings) as (_, client):
        csp = (await client.get("/healthz")).headers["content-security-policy"]
    connect = next(d for d in csp.split(";") if d.strip().startswith("connect-src")).split()[1:]
    assert "ws:" not in connect and "wss:" not in connect
    assert set(connect) == {
        "'self'",
        "https://app.example.com",
        "wss://app.example.com",
        "ws://testserver",
        "wss://testserver",
    }


# -- 10.6: login while Redis is down, and right after it returns -----------------------------------
async def test_login_answers_503_while_redis_is_down_and_works_when_it_returns(
    settings_for: Any, tmp_path: Path
) -> None:
    async with private_redis(tmp_path / "redis") as server:
        settings = settings_for("redis", redis_url=server.url)
        async with running_app(settings) as (_, client):
            email = unique_email()
            await register(client, email=email)
            assert await _login(client, email) == 200
            await server.kill()
            down = await client.post(
                f"{API}/auth/login", json={"email": email, "password": PASSWORD}
            )
            assert down.status_code == 503, down.text
            assert (
                down.json()["error"]["code"] == "unavailable" and down.json()["error"]["temporary"]
            )
            assert int(down.headers["retry-after"]) >= 1
            await server.start()
            back = await client.post(
                f"{API}/auth/login", json={"email": email, "password": PASSWORD}
            )
            assert back.status_code == 200, back.text  # the very first one after the restart
            # A restart between two requests: pooled connections are dead, nothing failed yet.
            await server.kill()
            await server.start()
            assert await _login(client, email) == 200
