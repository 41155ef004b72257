"""``/api/v1/cache``: public health, admin-only metrics, invalidation and SCAN-based deletion
confined to the service's own ``cache:`` keys (checked against the raw Redis keyspace)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest
import redis.asyncio as aioredis

from synthia_rt.analysis.cache import ResultCache
from synthia_rt.runtime import Runtime
from synthia_rt.store import plans
from tests.opshelpers import admin_in_process, bearer, register

Pair = tuple[Any, httpx.AsyncClient]
API = "/api/v1"


def _cache(app: Any) -> ResultCache:
    runtime: Runtime = app.state.runtime
    assert runtime.analysis is not None
    cache: ResultCache = runtime.analysis.cache
    return cache


async def _seed(cache: ResultCache) -> None:
    await cache.set("analysis", "u1:facial:m:v1:aaa", {"result": 1})
    await cache.set("analysis", "u1:facial:m:v1:bbb", {"result": 2})
    await cache.set("analysis", "u2:facial:m:v1:ccc", {"result": 3})
    await cache.set("user", "u1", {"name": "x"})
    await cache.set("session", "s1", False)


async def _live(cache: ResultCache) -> dict[str, bool]:
    keys = [
        ("analysis", "u1:facial:m:v1:aaa"),
        ("analysis", "u1:facial:m:v1:bbb"),
        ("analysis", "u2:facial:m:v1:ccc"),
        ("user", "u1"),
        ("session", "s1"),
    ]
    return {f"{ns}:{k}": await cache.kv.exists(f"cache:{ns}:{k}") for ns, k in keys}


async def test_health_is_public(app_client: Pair, backend: str) -> None:
    _, client = app_client
    r = await client.get("/api/v1/cache/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "backend": backend}


async def test_admin_cache_endpoints_refuse_others(app_client: Pair) -> None:
    app, client = app_client
    cache = _cache(app)
    await _seed(cache)
    user = await register(client)
    calls = [
        ("GET", "/api/v1/cache/metrics"),
        ("POST", "/api/v1/cache/invalidate/analysis"),
        ("DELETE", "/api/v1/cache/keys/cache:*"),
    ]
    for method, path in calls:
        assert (await client.request(method, path)).status_code == 401, path
        r = await client.request(method, path, headers=bearer(user["access_token"]))
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", path
    assert all((await _live(cache)).values())  # nothing was deleted by the refused calls


async def test_metrics_report_hits_misses_per_namespace(app_client: Pair) -> None:
    app, client = app_client
    cache = _cache(app)
    admin = await admin_in_process(client)
    before = (
        await client.get("/api/v1/cache/metrics", headers=bearer(admin["access_token"]))
    ).json()
    await cache.set("analysis", "k", {"v": 1})
    for key in ("k", "k", "k", "absent"):
        await cache.get("analysis", key)
    r = await client.get("/api/v1/cache/metrics", headers=bearer(admin["access_token"]))
    assert r.status_code == 200
    body = r.json()
    rec = body["namespaces"]["analysis"]
    assert (rec["hits"], rec["misses"], rec["hit_ratio"]) == (3, 1, 0.75)
    # + the second call's own token check: one `user` (admin role) and one `session` lookup
    assert body["ops"] == before["ops"] + 4 + 2
    assert set(body["namespaces"]) == {"user", "analysis", "session"}
    assert body["memory_used_bytes"] > 0
    assert body["avg_response_ms"] is not None and body["avg_response_ms"] >= 0


async def test_invalidate_drops_one_namespace_only(app_client: Pair) -> None:
    app, client = app_client
    cache = _cache(app)
    await _seed(cache)
    admin = await admin_in_process(client)
    r = await client.post(
        "/api/v1/cache/invalidate/analysis", headers=bearer(admin["access_token"])
    )
    assert r.status_code == 200 and r.json()["deleted"] == 3
    live = await _live(cache)
    assert [k for k, v in live.items() if v] == ["user:u1", "session:s1"]
    bad = await client.post(
        "/api/v1/cache/invalidate/tokens", headers=bearer(admin["access_token"])
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "namespace"
    audit = (await client.get("/api/v1/admin/audit", headers=bearer(admin["access_token"]))).json()
    assert audit["items"][0]["action"] == "admin.cache.invalidate"
    assert audit["items"][0]["detail"] == {"ns": "analysis", "deleted": 3}


async def test_delete_keys_by_pattern(app_client: Pair) -> None:
    app, client = app_client
    cache = _cache(app)
    await _seed(cache)
    admin = await admin_in_process(client)
    r = await client.delete(
        "/api/v1/cache/keys/" + quote("cache:analysis:u1:*", safe=":*"),
        headers=bearer(admin["access_token"]),
    )
    assert r.status_code == 200 and r.json()["deleted"] == 2
    live = await _live(cache)
    assert [k for k, v in live.items() if v] == [
        "analysis:u2:facial:m:v1:ccc",
        "user:u1",
        "session:s1",
    ]
    one = await client.delete(
        "/api/v1/cache/keys/" + quote("cache:user:u?", safe=":"),
        headers=bearer(admin["access_token"]),
    )
    assert one.status_code == 200 and one.json()["deleted"] == 1


async def test_patterns_outside_the_cache_are_refused(app_client: Pair) -> None:
    app, client = app_client
    cache = _cache(app)
    await _seed(cache)
    admin = await admin_in_process(client)
    escapes = [
        "*",
        "cache*",
        "cachestat:*",
        "revoked:*",
        ":cache:*",
        "cache:",
        "cache:[a-z]*",
        "cache:\\*",
        "cache:{x}*",
        "CACHE:*",
        "cache: *",
        "x" * 10 + "cache:*",
        "cache:" + "a" * 201,
    ]
    for pattern in escapes:
        r = await client.delete(
            "/api/v1/cache/keys/" + quote(pattern, safe=""), headers=bearer(admin["access_token"])
        )
        assert r.status_code in (404, 422), pattern  # 404: not even a single path segment
        if r.status_code == 422:
            assert r.json()["error"]["field"] == "pattern"
    assert all((await _live(cache)).values())


async def test_wildcard_delete_spares_other_keys_of_this_service_and_foreign_ones(
    pg_app: Pair, namespace: str, redis_client: aioredis.Redis
) -> None:
    app, client = pg_app
    cache = _cache(app)
    await _seed(cache)
    foreign = f"other-{namespace}:cache:analysis:x"  # another service sharing the Redis
    own_other = f"{namespace}:revoked:some-jti"  # this service, but not the cache
    stats = f"{namespace}:cachestat:analysis:hit"
    await redis_client.set(foreign, b"1")
    await redis_client.set(own_other, b"1")
    await redis_client.set(stats, b"7")
    try:
        admin = await admin_in_process(client)
        r = await client.delete("/api/v1/cache/keys/cache:*", headers=bearer(admin["access_token"]))
        # the 5 seeded + the admin's own `user` and `session` entries made by its token check
        assert r.status_code == 200 and r.json()["deleted"] == 7
        remaining = {k.decode() async for k in redis_client.scan_iter(match=f"{namespace}:cache:*")}
        assert remaining == set()
        assert await redis_client.exists(foreign, own_other, stats) == 3
    finally:
        await redis_client.delete(foreign)


async def _counts(cache: ResultCache, ns: str) -> tuple[int, int]:
    s = (await cache.stats())[ns]
    return int(s["hits"]), int(s["misses"])


async def test_user_namespace_serves_profiles_and_admin_roles_and_is_dropped_on_writes(
    pg_app: Pair,
) -> None:
    app, client = pg_app
    cache = _cache(app)
    kv = cache.kv
    admin = await admin_in_process(client)
    user = await register(client)
    uid, auth = user["user"]["id"], bearer(user["access_token"])
    h0, m0 = await _counts(cache, "user")
    assert (await client.get(f"{API}/users/profile", headers=auth)).json()["id"] == uid  # miss
    assert (await client.get(f"{API}/users/profile", headers=auth)).status_code == 200  # hit
    assert await _counts(cache, "user") == (h0 + 1, m0 + 1)
    assert await kv.exists(f"cache:user:{uid}")
    # The admin-role confirmation of an admin token reads the same namespace.
    for _ in range(2):
        assert (
            await client.get(f"{API}/admin/audit", headers=bearer(admin["access_token"]))
        ).status_code == 200
    assert await _counts(cache, "user") == (h0 + 2, m0 + 2)
    # PATCH drops the entry: the next read is the new row (a miss), never the old name.
    patched = await client.patch(
        f"{API}/users/profile", headers=auth, json={"display_name": "Renamed"}
    )
    assert patched.status_code == 200 and not await kv.exists(f"cache:user:{uid}")
    assert (await client.get(f"{API}/users/profile", headers=auth)).json()[
        "display_name"
    ] == "Renamed"
    assert await _counts(cache, "user") == (h0 + 2, m0 + 3)
    # A plan change, a block and an unblock drop it too.
    admin_auth = bearer(admin["access_token"])
    for method, path, body in (
        ("POST", f"{API}/admin/users/{uid}/plan", {"plan": "premium"}),
        ("POST", f"{API}/admin/users/{uid}/block", None),
        ("POST", f"{API}/admin/users/{uid}/unblock", None),
    ):
        await cache.set("user", uid, {"stale": True})
        r = await client.request(method, path, headers=admin_auth, json=body)
        assert r.status_code == 200, (path, r.text)
        assert not await kv.exists(f"cache:user:{uid}"), path
    # Deleting the account drops it as well.
    other = await register(client)
    oid = other["user"]["id"]
    assert (
        await client.get(f"{API}/users/profile", headers=bearer(other["access_token"]))
    ).status_code == 200
    assert await kv.exists(f"cache:user:{oid}")
    r = await client.request(
        "DELETE", f"{API}/users/profile", headers=bearer(other["access_token"]), json={}
    )
    assert r.status_code == 204 and not await kv.exists(f"cache:user:{oid}")
    # And an admin can drop the namespace: it now holds something to drop.
    r = await client.post(f"{API}/cache/invalidate/user", headers=admin_auth)
    assert r.status_code == 200 and r.json()["deleted"] >= 1


async def test_session_namespace_caches_the_login_check_and_logout_overwrites_it(
    pg_app: Pair,
) -> None:
    app, client = pg_app
    cache = _cache(app)
    user = await register(client)
    auth = bearer(user["access_token"])
    h0, m0 = await _counts(cache, "session")
    for _ in range(3):
        assert (await client.get(f"{API}/users/usage", headers=auth)).status_code == 200
    assert await _counts(cache, "session") == (h0 + 2, m0 + 1)  # one family read, then hits
    sid = app.state.runtime.need_tokens()._decode(user["access_token"], "access")["sid"]
    assert await cache.get("session", sid) is False
    assert (await client.post(f"{API}/auth/logout", headers=auth)).status_code == 204
    assert await cache.get("session", sid) is True  # the logout wrote "revoked" over "live"
    assert (await client.get(f"{API}/users/usage", headers=auth)).status_code == 401
    # Invalidating the namespace costs a database read, not a resurrection.
    admin = await admin_in_process(client)
    r = await client.post(f"{API}/cache/invalidate/session", headers=bearer(admin["access_token"]))
    assert r.status_code == 200 and r.json()["deleted"] >= 2
    assert (await client.get(f"{API}/users/usage", headers=auth)).status_code == 401


async def test_metrics_serve_the_old_guides_shape_with_real_values(
    pg_app: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, client = pg_app
    admin = await admin_in_process(client)
    auth = bearer(admin["access_token"])
    for _ in range(3):
        assert (await client.get(f"{API}/users/profile", headers=auth)).status_code == 200

    async def unreachable(*_: Any) -> None:
        raise ConnectionRefusedError(111, "refused")

    monkeypatch.setattr(plans, "usage", unreachable)
    assert (await client.get(f"{API}/users/usage", headers=auth)).status_code == 503
    r = await client.get(f"{API}/cache/metrics", headers=auth)
    assert r.status_code == 200
    body = r.json()
    assert set(body["cache_metrics"]) == {
        "hit_ratio",
        "total_requests",
        "avg_response_time",
        "memory_usage_mb",
    }
    assert set(body["api_metrics"]) == {"requests_per_minute", "avg_response_time", "error_rate"}
    cm, am = body["cache_metrics"], body["api_metrics"]
    assert 0 < cm["hit_ratio"] < 1 and cm["total_requests"] == body["ops"] > 0
    assert cm["avg_response_time"] > 0 and cm["memory_usage_mb"] > 0
    assert am["requests_per_minute"] > 0 and am["avg_response_time"] > 0
    assert 0 < am["error_rate"] < 1  # the one 503 among the requests so far
    assert body["namespaces"]  # ours is still there beside it


async def test_delete_accepts_the_guides_namespace_relative_pattern(app_client: Pair) -> None:
    app, client = app_client
    cache = _cache(app)
    await _seed(cache)
    admin = await admin_in_process(client)
    r = await client.delete(
        "/api/v1/cache/keys/" + quote("analysis:*", safe=":*"),
        headers=bearer(admin["access_token"]),
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"deleted": 3, "pattern": "cache:analysis:*", "namespace": None}
    live = await _live(cache)
    assert [k for k, v in live.items() if v] == ["user:u1", "session:s1"]
    audit = (await client.get(f"{API}/admin/audit", headers=bearer(admin["access_token"]))).json()
    assert audit["items"][0]["action"] == "admin.cache.delete"
    assert audit["items"][0]["detail"] == {"pattern": "cache:analysis:*", "deleted": 3}
    for pattern in ("tokens:*", "cachestat:*", "analysisx:*", "user", "analysis:[a]*"):
        bad = await client.delete(
            "/api/v1/cache/keys/" + quote(pattern, safe=""), headers=bearer(admin["access_token"])
        )
        assert bad.status_code == 422, pattern
