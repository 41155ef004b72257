"""Single-node socket scenarios, run against both backends (redis:// and memory://).

Every refusal of protocol section 1 and every error of section 2, plus subscribe/replay
semantics of sections 3 and 6, over a real uvicorn socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import warnings
from typing import Any

import httpx
import jwt
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from synthia_rt.store import notifications
from tests.conftest import JWT_SECRET, Live, serving
from tests.wsclient import register, ws_session


async def _refusal(url: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(InvalidStatus) as info:
        async with connect(url, **kwargs):
            pass
    response = info.value.response
    return response.status_code, orjson.loads(response.body or b"{}")


async def _closed_at_handshake(url: str, **kwargs: Any) -> tuple[int | None, str]:
    """A synthia.v1 refusal: the upgrade is accepted (selecting synthia.v1), no frame is sent,
    and the socket closes at once; returns the close code and reason."""
    async with connect(url, **kwargs) as conn:
        assert conn.subprotocol == "synthia.v1"
        with pytest.raises(ConnectionClosed):
            frame = await asyncio.wait_for(conn.recv(), 5)
            raise AssertionError(f"a refused socket got a frame: {frame!r}")
        rcvd = conn.protocol.close_rcvd
        return (rcvd.code, rcvd.reason) if rcvd is not None else (None, "")


@pytest.fixture
async def user(live: Live) -> dict[str, Any]:
    return await register(f"http://{live}")


async def test_session_ready_and_subprotocol(live: Live, user: dict[str, Any]) -> None:
    async with ws_session(f"ws://{live}/ws", user["access_token"]) as client:
        ready = client.ready  # type: ignore[attr-defined]
        assert client.conn.subprotocol == "synthia.v1"
        assert ready["user_id"] == user["user"]["id"]
        assert 0 < ready["expires_in"] <= 900
        assert set(ready["limits"]) == {"max_image_bytes", "max_chunk_bytes", "max_message_bytes"}
        assert ready["session_id"] and ready["node"]


async def test_authorization_header_is_accepted(live: Live, user: dict[str, Any]) -> None:
    headers = {"Authorization": f"Bearer {user['access_token']}"}
    async with connect(
        f"ws://{live}/ws", subprotocols=["synthia.v1"], additional_headers=headers
    ) as conn:  # type: ignore[list-item]
        assert conn.subprotocol == "synthia.v1"
        assert orjson.loads(await conn.recv())["event"] == "session.ready"


def _forge(claims: dict[str, Any], key: str = JWT_SECRET, alg: str = "HS256") -> str:
    base = {
        "iss": "synthia-rt",
        "aud": "synthia",
        "iat": int(time.time()),
        "exp": int(time.time()) + 600,
    }
    with warnings.catch_warnings():  # HS512 with our 45-byte test key: the attack we simulate
        warnings.simplefilter("ignore")
        return jwt.encode({**base, **claims}, key, algorithm=alg)


async def test_handshake_refusals(live: Live, user: dict[str, Any]) -> None:
    url = f"ws://{live}/ws"
    uid = user["user"]["id"]
    good = user["access_token"]
    # Foreign origin: 403 before accept, even with a valid token.
    status, body = await _refusal(
        url, subprotocols=["synthia.v1", f"bearer.{good}"], origin="https://evil.example"
    )  # type: ignore[list-item, arg-type]
    assert (status, body["error"]["code"]) == (403, "forbidden")
    # Missing token; a token in the query string is ignored.
    assert await _closed_at_handshake(f"{url}?token={good}", subprotocols=["synthia.v1"]) == (
        4003,
        "unauthorized",
    )  # type: ignore[list-item]
    # A client that offered no subprotocol gets the HTTP status instead.
    status, body = await _refusal(f"{url}?token={good}")
    assert (status, body["error"]["code"]) == (401, "unauthorized")
    header, payload, _ = good.split(".")
    none_alg = jwt.utils.base64url_encode(orjson.dumps({"alg": "none", "typ": "JWT"})).decode()
    bad_tokens = {
        "malformed": "not-a-jwt",
        "alg none": f"{none_alg}.{payload}.",
        "other key": _forge(
            {"sub": uid, "typ": "access", "role": "user", "jti": "x"}, key="y" * 40
        ),
        "expired": _forge(
            {"sub": uid, "typ": "access", "role": "user", "jti": "x", "exp": int(time.time()) - 5},
            key=live.runtime.settings.resolved_secret(),
        ),
        "refresh as access": user["refresh_token"],
        "other algorithm": _forge(
            {"sub": uid, "typ": "access", "role": "user", "jti": "x"}, alg="HS512"
        ),
        "wrong audience": _forge(
            {"sub": uid, "typ": "access", "role": "user", "jti": "x", "aud": "other"}
        ),
    }
    for name, token in bad_tokens.items():
        expected = (4001, "token_expired") if name == "expired" else (4003, "token_invalid")
        closed = await _closed_at_handshake(url, subprotocols=["synthia.v1", f"bearer.{token}"])  # type: ignore[list-item]
        assert closed == expected, name
        status, body = await _refusal(url, additional_headers={"Authorization": f"Bearer {token}"})
        assert (status, body["error"]["code"]) == (401, expected[1]), name
        assert "Traceback" not in orjson.dumps(body).decode()


async def test_revoked_token_is_refused(live: Live, user: dict[str, Any]) -> None:
    async with httpx.AsyncClient(base_url=f"http://{live}") as http:
        r = await http.post(
            "/api/v1/auth/logout", headers={"Authorization": f"Bearer {user['access_token']}"}
        )
        assert r.status_code in (200, 204)
    # Revoked is final (4010), not "unauthorized" (4003); REST callers still read token_invalid.
    closed = await _closed_at_handshake(
        f"ws://{live}/ws", subprotocols=["synthia.v1", f"bearer.{user['access_token']}"]
    )  # type: ignore[list-item]
    assert closed == (4010, "token_invalid")
    status, body = await _refusal(
        f"ws://{live}/ws", additional_headers={"Authorization": f"Bearer {user['access_token']}"}
    )
    assert (status, body["error"]["code"]) == (401, "token_invalid")


async def test_frame_errors_keep_the_socket_open(live: Live, user: dict[str, Any]) -> None:
    async with ws_session(f"ws://{live}/ws", user["access_token"]) as client:
        cases: list[tuple[str, int | None, str]] = [
            ("{not json", None, "bad_request"),
            ("[1, 2]", None, "bad_request"),
            ('"text"', None, "bad_request"),
            ('{"id": 3}', 3, "bad_request"),
            ('{"id": 4, "op": "teleport"}', 4, "unknown_op"),
            ('{"id": 5, "op": 42}', 5, "bad_request"),
            ('{"id": 6, "op": "subscribe", "channel": 7}', 6, "bad_request"),
            ('{"id": 7, "op": "subscribe"}', 7, "bad_request"),
            ('{"id": "8", "op": "ping"}', None, "bad_request"),
            ('{"id": -1, "op": "ping"}', None, "bad_request"),
            (
                '{"id": 9, "op": "subscribe", "channel": "broadcast", "since": {"offset": "x", "epoch": "e"}}',
                9,
                "bad_request",
            ),
        ]
        for raw, expected_id, code in cases:
            await client.send_raw(raw)
            reply = await client.reply(expected_id)
            assert reply["ok"] is False, raw
            assert reply["error"]["code"] == code, raw
            assert reply["error"]["message"]
            assert reply["error"]["temporary"] is False
        pong = await client.command("ping")
        assert pong["ok"] is True and isinstance(pong["ts"], float)


async def test_oversized_text_frame_closes_1009(live: Live, user: dict[str, Any]) -> None:
    async with ws_session(f"ws://{live}/ws", user["access_token"]) as client:
        await client.send_raw('{"id":1,"op":"ping","pad":"' + "x" * (65 * 1024) + '"}')
        assert await client.closed_with() == 1009


async def test_channel_permissions(live: Live, user: dict[str, Any]) -> None:
    other = await register(f"http://{live}")
    async with ws_session(f"ws://{live}/ws", user["access_token"]) as client:
        for channel in (
            f"user:{other['user']['id']}",
            "admin:metrics",
            "analysis:00000000-0000-0000-0000-000000000000",
            "analysis:not-a-uuid",
            "secret:stuff",
        ):
            reply = await client.command("subscribe", channel=channel)
            assert reply["ok"] is False, channel
            assert reply["error"] == {
                "code": "forbidden",
                "message": "you may not subscribe to this channel",
                "temporary": False,
            }
        own = await client.command("subscribe", channel=f"user:{user['user']['id']}")
        assert own["ok"] is True and own["recovered"] is False and isinstance(own["epoch"], str)


async def test_notification_delivery_and_replay_with_since(
    live: Live, user: dict[str, Any]
) -> None:
    uid = user["user"]["id"]
    channel = f"user:{uid}"
    async with ws_session(f"ws://{live}/ws", user["access_token"]) as client:
        start = await client.command("subscribe", channel=channel)
        base, epoch = start["offset"], start["epoch"]
        await _notify(live, uid, "first")
        first = await client.event("notification")
        assert (
            first["channel"] == channel and first["offset"] == base + 1 and first["epoch"] == epoch
        )
        assert first["title"] == "first"
    # Offline: two more notifications, then reconnect with since.
    await _notify(live, uid, "second")
    await _notify(live, uid, "third")
    async with ws_session(f"ws://{live}/ws", user["access_token"]) as client:
        reply = await client.command(
            "subscribe", channel=channel, since={"offset": base + 1, "epoch": epoch}
        )
        assert reply["ok"] and reply["recovered"] is True and reply["offset"] == base + 3
        replayed = [await client.event("notification") for _ in range(2)]
        assert [e["title"] for e in replayed] == ["second", "third"]
        assert [e["offset"] for e in replayed] == [base + 2, base + 3]
        # Wrong epoch: not recovered; what is kept is replayed, except what this socket already
        # sent (each event reaches a socket at most once).
        stale = await client.command(
            "subscribe", channel=channel, since={"offset": 1, "epoch": "gone"}
        )
        assert stale["recovered"] is False
        assert (await client.event("notification"))[
            "offset"
        ] == base + 1  # sent on the first socket only
        # The same socket asking again from an older position gets nothing twice either.
        again = await client.command(
            "subscribe", channel=channel, since={"offset": base + 2, "epoch": epoch}
        )
        assert again["recovered"] is True
        await _notify(live, uid, "fourth")
        assert (await client.event("notification"))["offset"] == base + 4
        assert [e for e in client.events if e.get("event") == "notification"] == []
    # A new socket is a new start: a stale epoch replays everything that is kept.
    async with ws_session(f"ws://{live}/ws", user["access_token"]) as client:
        stale = await client.command(
            "subscribe", channel=channel, since={"offset": 1, "epoch": "gone"}
        )
        assert stale["recovered"] is False
        kept = [await client.event("notification") for _ in range(4)]
        assert [e["offset"] for e in kept] == [base + 1, base + 2, base + 3, base + 4]


async def _notify(live: Live, user_id: str, title: str, body: str = "body") -> None:
    """Publish through the node's server-side API (what the admin REST route calls)."""
    record = await notifications.create(user_id, "info", title, body)
    await live.runtime.hub.notify(user_id, record)


async def test_rate_limit_then_4009(settings_for: Any, backend: str) -> None:
    settings = settings_for(backend, command_rate=1.0, command_burst=3, rate_limit_strikes=5)
    async with serving(settings) as live:
        user = await register(f"http://{live}")
        async with ws_session(f"ws://{live}/ws", user["access_token"]) as client:
            replies = [await client.command("ping") for _ in range(4)]
            assert [r["ok"] for r in replies[:3]] == [True, True, True]
            assert replies[3]["error"]["code"] == "rate_limited"
            assert 0 < replies[3]["error"]["retry_after"] <= 1.0
            assert replies[3]["error"]["temporary"] is True
            for _ in range(4):  # strikes 2..5: the fifth closes the socket
                await client.send_raw('{"id": 99, "op": "ping"}')
            refused = []
            with contextlib.suppress(ConnectionClosed):
                while True:
                    refused.append(await client.recv())
            # Every refusal is replied to, the one that closes the socket included.
            assert [f["error"]["code"] for f in refused if f.get("id") == 99] == [
                "rate_limited"
            ] * 4
            rcvd = client.conn.protocol.close_rcvd
            assert rcvd is not None and (rcvd.code, rcvd.reason) == (4009, "rate limited")


async def test_token_expiry_warns_then_closes_4001(settings_for: Any, backend: str) -> None:
    settings = settings_for(backend, access_token_ttl=3, expiry_warning=2)
    async with serving(settings) as live:
        user = await register(f"http://{live}")
        async with ws_session(f"ws://{live}/ws", user["access_token"]) as client:
            expiring = await client.event("session.expiring")
            assert 0 <= expiring["expires_in"] <= 2
            assert await client.closed_with(timeout=6) == 4001


async def test_auth_refresh_extends_the_session(settings_for: Any, backend: str) -> None:
    settings = settings_for(backend, access_token_ttl=4, expiry_warning=3)
    async with serving(settings) as live:
        user = await register(f"http://{live}")
        async with ws_session(f"ws://{live}/ws", user["access_token"]) as client:
            await client.event("session.expiring")
            async with httpx.AsyncClient(base_url=f"http://{live}") as http:
                r = await http.post(
                    "/api/v1/auth/refresh", json={"refresh_token": user["refresh_token"]}
                )
                fresh = r.json()["access_token"]
            reply = await client.command("auth.refresh", token=fresh)
            assert reply["ok"] is True and 0 < reply["expires_in"] <= 4
            other = await register(f"http://{live}")
            foreign = await client.command("auth.refresh", token=other["access_token"])
            assert foreign["error"]["code"] == "token_invalid"
            await asyncio.sleep(1.5)  # past the first token's expiry
            assert (await client.command("ping"))["ok"] is True


async def test_per_user_connection_cap(settings_for: Any, backend: str) -> None:
    async with serving(settings_for(backend, max_connections_per_user=2)) as live:
        user = await register(f"http://{live}")
        url = f"ws://{live}/ws"
        async with ws_session(url, user["access_token"]), ws_session(url, user["access_token"]):
            closed = await _closed_at_handshake(
                url, subprotocols=["synthia.v1", f"bearer.{user['access_token']}"]
            )  # type: ignore[list-item]
            assert closed == (4029, "too_many_connections")
            with pytest.raises(InvalidStatus) as info:
                async with connect(
                    url, additional_headers={"Authorization": f"Bearer {user['access_token']}"}
                ):
                    pass
            assert info.value.response.status_code == 429
            assert info.value.response.headers["Retry-After"] == "5"
        async with ws_session(url, user["access_token"]) as again:  # slots are given back on close
            assert (await again.command("ping"))["ok"]


async def test_slow_consumer_is_closed_4008_others_keep_receiving(
    settings_for: Any, backend: str
) -> None:
    settings = settings_for(
        backend, outbound_queue_size=8, close_timeout=60.0
    )  # this client reads again
    async with serving(settings) as live:
        user = await register(f"http://{live}")
        url = f"ws://{live}/ws"
        # The slow client stops reading: tiny client-side buffers make it push back at once.
        async with (
            ws_session(url, user["access_token"], max_queue=1, max_size=2**20) as slow,
            ws_session(url, user["access_token"]) as fast,
        ):
            slow.conn.transport.pause_reading()
            pad = "x" * 16 * 1024
            for i in range(400):
                await _notify(live, user["user"]["id"], str(i), pad)
                await fast.event("notification")
            slow.conn.transport.resume_reading()
            assert await slow.closed_with(timeout=15) == 4008
            assert (await fast.command("ping"))["ok"]


async def test_a_replay_longer_than_the_outbound_queue_is_delivered_whole(
    settings_for: Any, backend: str
) -> None:
    """A socket back from far behind (a storm: its node died long ago) gets its whole catch-up.
    Before, a replay of more than OUTBOUND_QUEUE_SIZE events closed it 4008 every time it
    came back (found by the 5,000-socket storm bench); live frames keep the cap."""
    settings = settings_for(backend, outbound_queue_size=8)
    async with serving(settings) as live:
        user = await register(f"http://{live}")
        uid = user["user"]["id"]
        url = f"ws://{live}/ws"
        async with ws_session(url, user["access_token"]) as client:
            start = await client.command("subscribe", channel=f"user:{uid}")
        for i in range(40):  # five times the queue, while the socket is away
            await _notify(live, uid, str(i))
        async with ws_session(url, user["access_token"]) as client:
            since = {"offset": start["offset"], "epoch": start["epoch"]}
            reply = await client.command("subscribe", channel=f"user:{uid}", since=since)
            assert reply["ok"] and reply["recovered"] is True
            replayed = [await client.event("notification") for _ in range(40)]
            assert [e["title"] for e in replayed] == [str(i) for i in range(40)]
            assert (await client.command("ping"))["ok"]


async def test_many_sockets_joining_at_once_all_receive(live: Live) -> None:
    """The join race that loses subscribers in encode/broadcaster: 60 sockets join together."""
    users = [await register(f"http://{live}") for _ in range(3)]
    url = f"ws://{live}/ws"
    async with contextlib.AsyncExitStack() as stack:
        clients = await asyncio.gather(
            *(
                stack.enter_async_context(ws_session(url, users[i % 3]["access_token"]))
                for i in range(60)
            )
        )
        # Some sockets leave while others are still joining the same channel.
        await asyncio.gather(*(c.conn.close() for c in clients[:10]))
        await live.runtime.hub.announce(
            await notifications.create_broadcast("info", "to everyone", "hi")
        )
        received = await asyncio.gather(*(c.event("notification") for c in clients[10:]))
        assert all(e["channel"] == "broadcast" and e["title"] == "to everyone" for e in received)
        assert len({e["offset"] for e in received}) == 1


async def test_subprotocol_and_same_origin_rules(live: Live, user: dict[str, Any]) -> None:
    url, token = f"ws://{live}/ws", user["access_token"]
    status, body = await _refusal(url, subprotocols=["synthia.v2", f"bearer.{token}"])  # type: ignore[list-item]
    assert (status, body["error"]["code"]) == (400, "bad_request")
    # With ALLOWED_ORIGINS unset, the page's own origin is allowed whatever the port.
    async with connect(
        url, subprotocols=["synthia.v1", f"bearer.{token}"], origin=f"http://{live}"
    ) as conn:  # type: ignore[list-item, arg-type]
        assert orjson.loads(await conn.recv())["event"] == "session.ready"
    status, _ = await _refusal(
        url, subprotocols=["synthia.v1", f"bearer.{token}"], origin="http://localhost:1"
    )  # type: ignore[list-item, arg-type]
    assert status == 403


async def test_configured_origins_are_exact(settings_for: Any, backend: str) -> None:
    async with serving(settings_for(backend, allowed_origins=("https://app.example",))) as live:
        user = await register(f"http://{live}")
        offer = ["synthia.v1", f"bearer.{user['access_token']}"]
        status, _ = await _refusal(f"ws://{live}/ws", subprotocols=offer, origin=f"http://{live}")  # type: ignore[arg-type]
        assert status == 403
        async with connect(
            f"ws://{live}/ws", subprotocols=offer, origin="https://app.example"
        ) as conn:  # type: ignore[arg-type]
            assert orjson.loads(await conn.recv())["event"] == "session.ready"
