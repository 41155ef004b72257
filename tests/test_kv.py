"""The key-value seam: one scenario suite run against Redis and the in-process twin."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio as aioredis

from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.kv import KeyValue, create_kv
from tests.conftest import REDIS_URL, WITH_CLUSTER
from tests.nodes import free_port


@pytest.fixture(params=WITH_CLUSTER)
def backend(request: pytest.FixtureRequest) -> str:
    """The scenario suite also runs on Redis Cluster (issue 12 C)."""
    return str(request.param)


async def eventually(check: Callable[[], Awaitable[bool]], deadline: float = 3.0) -> None:
    """Poll until ``check`` holds; the deadline only bounds a failure, it measures nothing."""
    async with asyncio.timeout(deadline):
        while not await check():  # noqa: ASYNC110 - expiry is time-driven: nothing to wait on
            await asyncio.sleep(0.02)


async def test_set_get_delete_exists(kv: KeyValue) -> None:
    assert await kv.get("a") is None
    assert await kv.set("a", b"1") is True
    assert await kv.get("a") == b"1"
    assert await kv.exists("a")
    assert await kv.set("a", b"2", nx=True) is False
    assert await kv.get("a") == b"1"
    assert await kv.set("b", b"x", nx=True) is True
    assert await kv.delete("a", "b", "missing") == 2
    assert not await kv.exists("a")
    assert await kv.delete() == 0


async def test_ttl_expiry(kv: KeyValue) -> None:
    await kv.set("short", b"v", ttl=0.05)
    await kv.set("long", b"v", ttl=60)
    await eventually(lambda: _gone(kv, "short"))
    assert await kv.get("long") == b"v"
    await kv.set("later", b"v")
    await kv.expire("later", 0.05)
    await eventually(lambda: _gone(kv, "later"))


async def _gone(kv: KeyValue, key: str) -> bool:
    return await kv.get(key) is None


async def test_incr_sets_ttl_only_on_creation(kv: KeyValue) -> None:
    assert await kv.incr("n") == 1
    assert await kv.incr("n", 5) == 6
    assert await kv.get("n") == b"6"
    # An existing key without TTL must not gain one from incr(ttl=…).
    await kv.set("kept", b"10")
    assert await kv.incr("kept", 1, ttl=0.05) == 11
    # A key incr creates gets the TTL.
    assert await kv.incr("fresh", 1, ttl=0.05) == 1
    await eventually(lambda: _gone(kv, "fresh"))
    assert await kv.get("kept") == b"11"  # outlived "fresh", which had the same ttl


async def test_append_at_refuses_wrong_offsets_and_changes_nothing(kv: KeyValue) -> None:
    assert await kv.append_at("up", 0, b"abc", ttl=60) == 3
    assert await kv.append_at("up", 3, b"de", ttl=60) == 5
    # A resent chunk (old offset) and a chunk from the future are both refused...
    assert await kv.append_at("up", 3, b"de", ttl=60) == -6
    assert await kv.append_at("up", 9, b"zz", ttl=60) == -6
    # ...and leave the value untouched.
    assert await kv.get("up") == b"abcde"
    assert await kv.strlen("up") == 5
    assert await kv.strlen("none") == 0
    assert await kv.append_at("none", 1, b"x", ttl=60) == -1
    assert not await kv.exists("none")


async def test_append_at_refreshes_ttl(kv: KeyValue) -> None:
    assert await kv.append_at("up", 0, b"a", ttl=0.4) == 1
    assert await kv.append_at("up", 1, b"b", ttl=60) == 2
    await asyncio.sleep(0.6)  # past the first TTL: only a refreshed TTL keeps the key
    assert await kv.get("up") == b"ab"


async def test_sorted_sets_count_above_and_prune(kv: KeyValue) -> None:
    await kv.zadd("z", "a", 1.0)
    await kv.zadd("z", "b", 2.0)
    await kv.zadd("z", "c", 3.0, ttl=60)
    assert await kv.zcount_above("z", 1.5) == 2
    # "a" (score 1 <= 1.5) was pruned: it no longer counts even below its score.
    assert await kv.zcount_above("z", 0.0) == 2
    await kv.zrem("z", "b")
    assert await kv.zcount_above("z", 0.0) == 1
    await kv.zadd("z", "c", 10.0)  # re-adding updates the score
    assert await kv.zcount_above("z", 5.0) == 1
    assert await kv.zcount_above("missing", 0.0) == 0


async def test_zadd_ttl_expires_set(kv: KeyValue) -> None:
    await kv.zadd("presence", "socket-1", 1.0, ttl=0.05)
    await eventually(lambda: _zero(kv, "presence"))


async def _zero(kv: KeyValue, key: str) -> bool:
    return await kv.zcount_above(key, float("-inf")) == 0


async def test_zadd_capped_admits_up_to_the_cap_in_one_step(kv: KeyValue) -> None:
    async def admit(member: str, now: float, drop: tuple[str, ...] = ()) -> bool:
        return await kv.zadd_capped("cap", member, now, floor=now - 10, cap=2, ttl=60, drop=drop)

    assert await admit("a", 100.0)
    assert await admit("b", 100.0)
    assert not await admit("c", 100.0)  # two live members: the third is refused
    assert await kv.zcount_above("cap", 0.0) == 2  # and nothing of it was written
    assert await admit("b", 101.0)  # a member already in is re-scored, not refused
    assert await admit("c", 101.0, drop=("a",))  # dropping a gone member makes room
    assert not await admit("d", 101.0)
    # "b" and "c" were last seen at 101: at 112 the floor (102) prunes them both.
    assert await admit("d", 112.0)
    assert await kv.zcount_above("cap", 0.0) == 1


async def test_pipelined_scripts_survive_a_script_flush(
    kv: KeyValue, backend: str, redis_client: aioredis.Redis
) -> None:
    """A Redis that lost its scripts (a restart, SCRIPT FLUSH) answers NOSCRIPT to the
    pipelined EVALSHA: the scripts are loaded and the commands run once more, unseen."""
    assert await kv.zadd_capped("cap", "a", 1.0, floor=0.0, cap=2, ttl=60)
    if backend == "redis":
        await redis_client.script_flush()
    results = await asyncio.gather(
        *(kv.zadd_capped("cap", m, 1.0, floor=0.0, cap=2, ttl=60) for m in ("a", "b", "c"))
    )
    # "a" is in already; of "b" and "c" exactly one fits under the cap (concurrent callers
    # are not ordered among themselves).
    assert results[0] and results[1:].count(True) == 1
    assert await kv.zcount_above("cap", 0.0) == 2


async def test_concurrent_reads_share_round_trips_and_keep_their_answers(
    kv: KeyValue, backend: str
) -> None:
    """Reads of one loop iteration leave as one pipeline (synthia_rt/autopipeline.py); each caller still
    gets its own answer, one caller's error or cancellation touches nobody else."""
    for i in range(50):
        await kv.set(f"r{i}", str(i).encode())
    await kv.zadd("zset", "m", 1.0)
    batcher = getattr(kv, "_read", None)
    before = batcher.batches if batcher is not None else 0

    doomed = asyncio.ensure_future(kv.get("r0"))
    doomed.cancel()
    wrong = asyncio.ensure_future(kv.get("zset"))  # WRONGTYPE on Redis
    values = await asyncio.gather(
        *(kv.get(f"r{i}") for i in range(50)),
        *(kv.exists(f"r{i}") for i in range(0, 50, 10)),
        kv.get("missing"),
        kv.exists("missing"),
    )
    assert values[:50] == [str(i).encode() for i in range(50)]
    assert values[50:55] == [True] * 5
    assert values[55:] == [None, False]
    with pytest.raises(asyncio.CancelledError):
        await doomed
    with pytest.raises(Exception):  # noqa: B017 - redis-py's ResponseError (WRONGTYPE)
        await wrong
    if backend != "memory":
        assert batcher is not None
        # 57 reads in one loop iteration: one pipeline (a cluster splits it per shard inside)
        assert batcher.batches - before == 1


async def test_reads_queued_while_a_batch_is_out_leave_as_the_next_batch(
    kv: KeyValue, backend: str
) -> None:
    """One server: one batch in flight on the pipeline's own connection; reads asked in the
    loop iterations meanwhile leave together once it is answered, each with its answer."""
    if backend != "redis":
        pytest.skip("one batch in flight is the single-server design (a cluster: per shard)")
    for i in range(6):
        await kv.set(f"q{i}", str(i).encode())
    batcher = getattr(kv, "_read")  # noqa: B009 - RedisKV's AutoPipeline
    before = batcher.batches
    # A batch that keeps Redis busy for ~100 ms (a Lua busy loop), then reads in 5 iterations.
    busy = "local t = redis.call('TIME'); local t0 = t[1] * 1e6 + t[2]; " + (
        "repeat t = redis.call('TIME') until t[1] * 1e6 + t[2] - t0 > 100000; return 1"
    )
    slow = asyncio.ensure_future(batcher("EVAL", busy, 0))
    await asyncio.sleep(0.01)
    later = []
    for i in range(5):
        later.append(asyncio.ensure_future(kv.get(f"q{i}")))
        await asyncio.sleep(0.005)
    assert not slow.done()
    assert await slow == 1
    assert await asyncio.gather(*later) == [str(i).encode() for i in range(5)]
    assert batcher.batches - before == 2


async def test_reads_queued_behind_a_cancelled_batch_still_leave(
    kv: KeyValue, backend: str
) -> None:
    """If the task sending a batch is cancelled (a shutdown), the reads queued behind it are
    not stranded: they leave as a batch of their own."""
    if backend != "redis":
        pytest.skip("the single-server sender")
    await kv.set("s", b"1")
    batcher = getattr(kv, "_read")  # noqa: B009 - RedisKV's AutoPipeline
    busy = "local t = redis.call('TIME'); local t0 = t[1] * 1e6 + t[2]; " + (
        "repeat t = redis.call('TIME') until t[1] * 1e6 + t[2] - t0 > 100000; return 1"
    )
    slow = asyncio.ensure_future(batcher("EVAL", busy, 0))
    await asyncio.sleep(0.01)
    queued = asyncio.ensure_future(kv.get("s"))
    await asyncio.sleep(0.01)
    batcher._sender.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    assert await asyncio.wait_for(queued, 5) == b"1"


async def test_scan_yields_relative_keys_of_own_namespace_only(
    kv: KeyValue, backend: str, namespace: str, redis_client: aioredis.Redis
) -> None:
    for key in ("up:1", "up:2", "rl:x", "{tag}:k"):
        await kv.set(key, b"v")
    neighbour = create_kv(REDIS_URL if backend == "redis" else "memory://", namespace + "x")
    await neighbour.start()
    try:
        await neighbour.set("up:3", b"v")  # same-prefixed namespace: must stay invisible
        assert sorted([k async for k in kv.scan()]) == ["rl:x", "up:1", "up:2", "{tag}:k"]
        assert sorted([k async for k in kv.scan("up:*")]) == ["up:1", "up:2"]
        assert [k async for k in neighbour.scan()] == ["up:3"]
    finally:
        await neighbour.delete("up:3")
        await neighbour.close()
    if backend == "redis":
        assert await redis_client.get(f"{namespace}:up:1") == b"v"  # the prefix is really there


async def test_used_memory(kv: KeyValue) -> None:
    await kv.set("a", b"x" * 100)
    used = await kv.used_memory()
    assert used is not None and used > 0
    assert await kv.ping()


async def test_wrong_type_is_an_error(kv: KeyValue) -> None:
    await kv.set("s", b"text")
    with pytest.raises(Exception):  # noqa: B017 - redis ResponseError vs TypeError/ValueError
        await kv.incr("s")
    assert await kv.get("s") == b"text"


async def test_unreachable_redis_is_unavailable() -> None:
    store = create_kv(f"redis://127.0.0.1:{free_port()}/0", "nowhere")
    try:
        assert not await store.ping()
        with pytest.raises(AppError) as err:
            await store.get("k")
        assert err.value.code is ErrorCode.UNAVAILABLE and err.value.temporary
        with pytest.raises(AppError):
            await store.append_at("k", 0, b"x", ttl=10)
        with pytest.raises(AppError):
            [k async for k in store.scan()]
        with pytest.raises(AppError):
            await store.start()
    finally:
        await store.close()
