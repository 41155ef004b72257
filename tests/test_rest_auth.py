"""REST authentication: register, login, refresh rotation and re-use, logout, throttling."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import orjson
import pytest

from synthia_rt.app import create_app
from synthia_rt.observability.logging import (
    REDACTED,
    JsonFormatter,
    RequestIdFilter,
    redact_text,
    request_id,
)
from synthia_rt.store import audit as audit_store
from synthia_rt.store import users
from tests.conftest import running_app
from tests.conftest_helpers import unique_email
from tests.rest_helpers import API, PASSWORD, bearer, login, record_revocations, register

Pair = tuple[Any, httpx.AsyncClient]


async def test_register_returns_a_working_session(app_client: Pair) -> None:
    _, client = app_client
    email = unique_email()
    body = await register(client, email=email.upper(), display_name="Ada")
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == pytest.approx(900, abs=2)
    assert body["user"]["email"] == email  # normalised
    assert body["user"]["display_name"] == "Ada" and body["user"]["role"] == "user"
    assert "password" not in str(body["user"])
    me = await client.get(f"{API}/users/profile", headers=bearer(body["access_token"]))
    assert me.status_code == 200 and me.json()["id"] == body["user"]["id"]


async def test_register_refuses_duplicates_and_bad_input(app_client: Pair) -> None:
    _, client = app_client
    email = unique_email()
    await register(client, email=email)
    dup = await client.post(f"{API}/auth/register", json={"email": email, "password": PASSWORD})
    assert dup.status_code == 409 and dup.json()["error"]["code"] == "conflict"
    cases = [
        ({"email": "not-an-email", "password": PASSWORD}, 422, "validation_error", "email"),
        ({"email": unique_email(), "password": "short"}, 422, "validation_error", "password"),
        ({"email": unique_email()}, 422, "validation_error", "password"),
        ({"email": unique_email(), "password": 12345678}, 400, "bad_request", "password"),
        (
            {"email": unique_email(), "password": PASSWORD, "display_name": "x" * 121},
            422,
            "validation_error",
            "display_name",
        ),
    ]
    for payload, status, code, field in cases:
        r = await client.post(f"{API}/auth/register", json=payload)
        assert r.status_code == status, (payload, r.text)
        assert r.json()["error"]["code"] == code
        assert r.json()["error"]["field"] == field


async def test_concurrent_registrations_of_one_email_create_one_account(app_client: Pair) -> None:
    _, client = app_client
    email = unique_email()
    payload = {"email": email, "password": PASSWORD}
    results = await asyncio.gather(
        *(client.post(f"{API}/auth/register", json=payload) for _ in range(4))
    )
    assert sorted(r.status_code for r in results) == [201, 409, 409, 409]
    assert await users.by_email(email) is not None


async def test_malformed_bodies_are_bad_requests(app_client: Pair) -> None:
    _, client = app_client
    for raw in (b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe"):
        r = await client.post(
            f"{API}/auth/login", content=raw, headers={"content-type": "application/json"}
        )
        assert r.status_code == 400, raw
        error = r.json()["error"]
        assert error["code"] == "bad_request"
        assert "Traceback" not in r.text and "pydantic" not in r.text.lower()
    huge = await client.post(f"{API}/auth/login", content=b"{" + b" " * 70_000 + b"}")
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "too_large"


async def test_login_success_and_enumeration_safe_failures(app_client: Pair) -> None:
    _, client = app_client
    email = unique_email()
    await register(client, email=email)
    ok = await login(client, email.upper())
    assert ok.status_code == 200 and ok.json()["user"]["email"] == email
    wrong_password = await login(client, email, "wrong password!")
    unknown_email = await login(client, unique_email(), "wrong password!")
    assert wrong_password.status_code == unknown_email.status_code == 401
    assert wrong_password.json() == unknown_email.json()
    assert wrong_password.json()["error"]["code"] == "invalid_credentials"
    assert wrong_password.headers.get("www-authenticate") == unknown_email.headers.get(
        "www-authenticate"
    )


async def test_login_attempts_are_audited_with_ip_and_without_email(app_client: Pair) -> None:
    _, client = app_client
    email = unique_email()
    user_id = (await register(client, email=email))["user"]["id"]
    await login(client, email)
    await login(client, email, "wrong password!")
    succeeded = [
        r for r in await audit_store.recent("login.succeeded") if r["subject_id"] == user_id
    ]
    failed = [r for r in await audit_store.recent("login.failed") if r["subject_id"] == user_id]
    assert len(succeeded) == 1 and len(failed) == 1
    assert succeeded[0]["ip"] == failed[0]["ip"] == "127.0.0.1"
    for row in (*succeeded, *failed):
        assert email not in str(row) and PASSWORD not in str(row)


async def test_refresh_rotates_and_reuse_revokes_the_family(app_client: Pair) -> None:
    _, client = app_client
    first = await register(client)
    r1 = await client.post(f"{API}/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r1.status_code == 200, r1.text
    second = r1.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert (
        await client.get(f"{API}/users/profile", headers=bearer(second["access_token"]))
    ).status_code == 200

    # The rotated-out token comes back: someone copied it. The whole login dies.
    reused = await client.post(
        f"{API}/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert reused.status_code == 401 and reused.json()["error"]["code"] == "token_reused"
    latest = await client.post(
        f"{API}/auth/refresh", json={"refresh_token": second["refresh_token"]}
    )
    assert latest.status_code == 401 and latest.json()["error"]["code"] == "token_invalid"
    rows = [
        r
        for r in await audit_store.recent("token.reused")
        if r["subject_id"] == first["user"]["id"]
    ]
    assert len(rows) == 1


async def test_refresh_refuses_access_tokens_and_junk(app_client: Pair) -> None:
    _, client = app_client
    session = await register(client)
    for token in (session["access_token"], "junk", session["refresh_token"] + "x"):
        r = await client.post(f"{API}/auth/refresh", json={"refresh_token": token})
        assert r.status_code == 401 and r.json()["error"]["code"] == "token_invalid"


async def test_other_logins_survive_a_refresh_reuse(app_client: Pair) -> None:
    _, client = app_client
    email = unique_email()
    a = await register(client, email=email)
    b = (await login(client, email)).json()
    await client.post(f"{API}/auth/refresh", json={"refresh_token": a["refresh_token"]})
    await client.post(f"{API}/auth/refresh", json={"refresh_token": a["refresh_token"]})  # reuse
    ok = await client.post(f"{API}/auth/refresh", json={"refresh_token": b["refresh_token"]})
    assert ok.status_code == 200


async def test_logout_revokes_this_login_and_closes_sockets(app_client: Pair) -> None:
    app, client = app_client
    closed = record_revocations(app)
    email = unique_email()
    this = await register(client, email=email)
    other = (await login(client, email)).json()
    out = await client.post(f"{API}/auth/logout", headers=bearer(this["access_token"]))
    assert out.status_code == 204
    assert closed == [this["user"]["id"]]
    gone = await client.get(f"{API}/users/profile", headers=bearer(this["access_token"]))
    assert gone.status_code == 401 and gone.json()["error"]["code"] == "token_invalid"
    r = await client.post(f"{API}/auth/refresh", json={"refresh_token": this["refresh_token"]})
    assert r.status_code == 401
    # The other login is another session: it goes on.
    assert (
        await client.get(f"{API}/users/profile", headers=bearer(other["access_token"]))
    ).status_code == 200
    assert (
        await client.post(f"{API}/auth/refresh", json={"refresh_token": other["refresh_token"]})
    ).status_code == 200


async def test_logout_with_a_refresh_token_ends_that_family_too(app_client: Pair) -> None:
    _, client = app_client
    email = unique_email()
    a = await register(client, email=email)
    b = (await login(client, email)).json()
    out = await client.post(
        f"{API}/auth/logout",
        headers=bearer(a["access_token"]),
        json={"refresh_token": b["refresh_token"]},
    )
    assert out.status_code == 204
    assert (
        await client.post(f"{API}/auth/refresh", json={"refresh_token": b["refresh_token"]})
    ).status_code == 401


async def test_protected_routes_need_a_bearer(app_client: Pair) -> None:
    _, client = app_client
    session = await register(client)
    for headers in (
        {},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer"},
        bearer("junk"),
        bearer(session["refresh_token"]),
    ):
        r = await client.get(f"{API}/users/profile", headers=headers)
        assert r.status_code == 401
        assert r.json()["error"]["code"] in {"unauthorized", "token_invalid"}
        assert r.headers["www-authenticate"] == "Bearer"
    query = await client.get(f"{API}/users/profile", params={"token": session["access_token"]})
    assert query.status_code == 401  # tokens in URLs are ignored


async def test_blocked_account_cannot_login_or_refresh(app_client: Pair) -> None:
    _, client = app_client
    email = unique_email()
    session = await register(client, email=email)
    assert await users.set_active(session["user"]["id"], False)
    r = await login(client, email)
    assert r.status_code == 403 and r.json()["error"]["code"] == "account_blocked"
    wrong = await login(client, email, "wrong password!")
    assert wrong.status_code == 401  # blocked status is told only to the password holder
    refreshed = await client.post(
        f"{API}/auth/refresh", json={"refresh_token": session["refresh_token"]}
    )
    assert refreshed.status_code == 403 and refreshed.json()["error"]["code"] == "account_blocked"


@pytest.mark.parametrize("backend_name", ["redis", "memory"])
async def test_login_is_throttled_per_account(settings_for: Any, backend_name: str) -> None:
    settings = settings_for(backend_name, login_attempts_per_account=3, login_window=60)
    async with running_app(settings) as (_, client):
        email = unique_email()
        await register(client, email=email)
        statuses = [(await login(client, email, "wrong password!")).status_code for _ in range(3)]
        assert statuses == [401, 401, 401]
        limited = await login(client, email)  # even the right password waits now
        assert limited.status_code == 429
        assert limited.json()["error"]["code"] == "rate_limited"
        retry_after = int(limited.headers["retry-after"])
        assert 1 <= retry_after <= 60
        assert limited.json()["error"]["retry_after"] == pytest.approx(retry_after, abs=1)
        # Another account from the same IP is not affected by this account's limit.
        other = unique_email()
        await register(client, email=other)
        assert (await login(client, other)).status_code == 200


@pytest.mark.parametrize("backend_name", ["redis", "memory"])
async def test_login_is_throttled_per_ip(settings_for: Any, backend_name: str) -> None:
    settings = settings_for(backend_name, login_attempts_per_ip=4, login_attempts_per_account=100)
    async with running_app(settings) as (app, client):
        statuses = [
            (await login(client, unique_email(), "wrong password!")).status_code for _ in range(5)
        ]
        assert statuses == [401, 401, 401, 401, 429]
        # A client at another address is not affected.
        transport = httpx.ASGITransport(app=app, client=("10.0.0.9", 40000))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver"
        ) as elsewhere:
            assert (await login(elsewhere, unique_email(), "wrong password!")).status_code == 401


async def test_throttle_keys_live_under_the_namespace(
    settings_for: Any, redis_client: Any, namespace: str
) -> None:
    async with running_app(settings_for("redis")) as (_, client):
        email = unique_email()
        await login(client, email, "wrong password!")
        keys = [k.decode() async for k in redis_client.scan_iter(match="*limits*")]
        mine = [k for k in keys if k.startswith(f"{namespace}:limits:")]
        assert mine
        assert not any(email in k for k in mine)  # hashed, never the address itself


async def test_errors_have_the_documented_shape(app_client: Pair) -> None:
    _, client = app_client
    missing = await client.get(f"{API}/no-such-route")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    wrong_method = await client.put(f"{API}/auth/login", json={})
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"


async def test_every_response_carries_a_request_id_and_security_headers(app_client: Pair) -> None:
    _, client = app_client
    r = await client.get("/healthz")
    assert len(r.headers["x-request-id"]) >= 8
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    echoed = await client.get("/healthz", headers={"X-Request-ID": "client-chosen-id-1"})
    assert echoed.headers["x-request-id"] == "client-chosen-id-1"
    hostile = await client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert hostile.headers["x-request-id"] != "bad id\twith spaces"


async def test_cors_allows_only_configured_origins(settings_for: Any) -> None:
    settings = settings_for("memory", allowed_origins=("https://app.example.com",))
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        preflight = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        }
        good = await client.options(
            f"{API}/auth/login", headers={"Origin": "https://app.example.com", **preflight}
        )
        assert good.headers.get("access-control-allow-origin") == "https://app.example.com"
        bad = await client.options(
            f"{API}/auth/login", headers={"Origin": "https://evil.example.com", **preflight}
        )
        assert "access-control-allow-origin" not in bad.headers


async def test_a_refused_cors_preflight_says_which_origin_and_setting(
    settings_for: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="synthia_rt.access")
    app = create_app(settings_for("memory"))  # default origins: a Vite dev server is not one
    transport = httpx.ASGITransport(app=app)
    preflight = {
        "Origin": "http://localhost:5173",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for _ in range(3):
            r = await client.options(f"{API}/auth/login", headers=preflight)
            assert r.status_code == 400 and "access-control-allow-origin" not in r.headers
    hints = [
        rec.getMessage() for rec in caplog.records if "CORS preflight refused" in rec.getMessage()
    ]
    assert len(hints) == 1  # once per origin, not per request
    assert "http://localhost:5173" in hints[0] and "ALLOWED_ORIGINS" in hints[0]
    allowed = create_app(settings_for("memory", allowed_origins=("http://localhost:5173",)))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=allowed), base_url="http://testserver"
    ) as client:
        ok = await client.options(f"{API}/auth/login", headers=preflight)
        assert ok.headers.get("access-control-allow-origin") == "http://localhost:5173"


# --- logs -------------------------------------------------------------------------------------
def test_redaction_masks_secret_shapes() -> None:
    jwt_like = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    samples = {
        f"Authorization: Bearer {jwt_like}": jwt_like,
        "bearer abc.def-ghi": "abc.def-ghi",
        f"token issued {jwt_like} for user": jwt_like,
        "password=hunter2 next": "hunter2",
        '{"refresh_token": "opaque-value-1"}': "opaque-value-1",
        "api_key: AIzaSyD-secret": "AIzaSyD-secret",
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g": "aGFzaGhhc2g",
    }
    for text, secret in samples.items():
        assert secret not in redact_text(text), text
        assert REDACTED in redact_text(text)
    assert redact_text("user 42 logged in from 127.0.0.1") == "user 42 logged in from 127.0.0.1"


def test_json_lines_carry_the_request_id_and_redact_fields() -> None:
    record = logging.LogRecord(
        "synthia_rt.x", logging.INFO, __file__, 1, "hello %s", ("world",), None
    )
    record.password = "hunter2"
    record.nested = {"refresh_token": "abc", "count": 3}
    token = request_id.set("req-123456")
    try:
        RequestIdFilter().filter(record)
    finally:
        request_id.reset(token)
    line = orjson.loads(JsonFormatter().format(record))  # formatted after the request ended
    assert line["msg"] == "hello world" and line["level"] == "INFO"
    assert line["request_id"] == "req-123456"
    assert line["password"] == REDACTED
    assert line["nested"] == {"refresh_token": REDACTED, "count": 3}


async def test_no_password_or_token_reaches_the_logs(
    app_client: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    _, client = app_client
    caplog.set_level(logging.DEBUG)
    caplog.handler.addFilter(RequestIdFilter())
    email = unique_email()
    rid = {"X-Request-ID": "trace-me-0001"}
    session = await register(client, email=email)
    await client.post(
        f"{API}/auth/login", json={"email": email, "password": "wrong password!"}, headers=rid
    )
    rotated = (
        await client.post(f"{API}/auth/refresh", json={"refresh_token": session["refresh_token"]})
    ).json()
    await client.post(
        f"{API}/auth/refresh", json={"refresh_token": session["refresh_token"]}
    )  # reuse
    await client.get(f"{API}/users/profile", headers=bearer(rotated["access_token"]))
    await client.post(f"{API}/auth/logout", headers=bearer(rotated["access_token"]))
    lines = [JsonFormatter().format(r) for r in caplog.records]
    assert lines
    text = "\n".join(lines)
    for secret in (
        PASSWORD,
        "wrong password!",
        session["access_token"],
        session["refresh_token"],
        rotated["access_token"],
        rotated["refresh_token"],
        "$argon2",
    ):
        assert secret not in text
    traced = [orjson.loads(line) for line in lines if "trace-me-0001" in line]
    assert traced and all(entry["request_id"] == "trace-me-0001" for entry in traced)
