"""Plans and the free plan's monthly quota: REST, the analysis service, races across callers."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.store import plans
from tests.analysis_support import (  # noqa: F401
    CHROMATIC_RESULT,
    analysis_runtime,
    fake,
    gemini_settings,
    new_user,
    service,
)
from tests.conftest import running_app
from tests.fake_gemini import FakeGemini, Stream
from tests.rest_helpers import API, bearer, register

BASE = {
    "veins": "blue_purple",
    "jewellery": "silver",
    "hair": "black",
    "eyes": "dark_brown",
    "contrast": "high",
}


def answers(white: str) -> dict[str, str]:
    return {**BASE, "white": white}


def test_reset_is_the_next_calendar_month_in_utc() -> None:
    assert plans.next_reset(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == datetime(
        2027, 1, 1, tzinfo=UTC
    )
    assert plans.next_reset(datetime(2026, 3, 5, tzinfo=UTC)) == datetime(2026, 4, 1, tzinfo=UTC)
    assert plans.month_of(datetime(2026, 3, 5, tzinfo=UTC)) == "2026-03"


async def test_free_quota_over_rest(settings_for: Any, backend: str, fake: FakeGemini) -> None:  # noqa: F811
    fake.default = Stream(json.dumps(CHROMATIC_RESULT))
    settings = gemini_settings(settings_for(backend), fake, free_analyses_per_month=2)
    async with running_app(settings) as (_, client):
        session = await register(client)
        auth = bearer(session["access_token"])
        assert session["user"]["plan"] == "free"
        usage = (await client.get(f"{API}/users/usage", headers=auth)).json()
        assert (usage["plan"], usage["used"], usage["limit"]) == ("free", 0, 2)
        for white in ("pure_white", "cream"):
            r = await client.post(
                f"{API}/chromatic-analysis/analyze", headers=auth, json={"answers": answers(white)}
            )
            assert r.status_code == 200, r.text
        refused = await client.post(
            f"{API}/chromatic-analysis/analyze", headers=auth, json={"answers": answers("both")}
        )
        assert refused.status_code == 402, refused.text
        error = refused.json()["error"]
        assert error["code"] == "quota_exceeded" and error["retry_after"] > 0
        usage = (await client.get(f"{API}/users/usage", headers=auth)).json()
        assert re.search(r"resets at \d{4}-\d\d-01T00:00:00Z", error["message"])
        assert usage["used"] == 2 and usage["resets_at"].startswith(
            error["message"].split("resets at ")[1][:10]
        )
        # a cached answer is not a model call: still served, still not counted
        cached = await client.post(
            f"{API}/chromatic-analysis/analyze", headers=auth, json={"answers": answers("cream")}
        )
        assert cached.status_code == 200 and cached.json()["cached"] is True
        # premium: no cap (the existing per-user rate limits still apply)
        assert await plans.set_plan(session["user"]["id"], "premium")
        r = await client.post(
            f"{API}/chromatic-analysis/analyze", headers=auth, json={"answers": answers("both")}
        )
        assert r.status_code == 200, r.text
        usage = (await client.get(f"{API}/users/usage", headers=auth)).json()
        assert (usage["plan"], usage["used"], usage["limit"]) == ("premium", 3, None)
        profile = (await client.get(f"{API}/users/profile", headers=auth)).json()
        assert profile["plan"] == "premium"


async def test_the_local_analyzer_is_free(settings_for: Any) -> None:
    async with running_app(settings_for("memory", free_analyses_per_month=0)) as (_, client):
        auth = bearer((await register(client))["access_token"])
        r = await client.post(
            f"{API}/chromatic-analysis/analyze", headers=auth, json={"answers": answers("cream")}
        )
        assert r.status_code == 200, r.text
        assert (await client.get(f"{API}/users/usage", headers=auth)).json()["used"] == 0


async def test_socket_entry_points_refuse_past_the_quota(
    settings_for: Any,
    fake: FakeGemini,  # noqa: F811 - the fixture imported above
) -> None:
    """``analysis.start`` goes through the same launcher: refused before any upload is created."""
    settings = gemini_settings(settings_for("redis"), fake, free_analyses_per_month=0)
    async with analysis_runtime(settings) as runtime:
        svc = service(runtime)
        user = await new_user()
        with pytest.raises(AppError) as caught:
            await svc.start_analysis(
                user,
                kind="facial",
                content_type="image/jpeg",
                size=1000,
                sha256="ab" * 32,
                file_id=None,
            )
        assert caught.value.code is ErrorCode.QUOTA_EXCEEDED and caught.value.status == 402
        assert caught.value.retry_after is not None and caught.value.retry_after > 0
        # the slot taken before the charge was given back
        assert await svc.slots.active(user.user_id) == 0


async def test_charges_are_race_safe_across_callers(settings_for: Any) -> None:
    """Twelve concurrent charges on PostgreSQL (separate pool connections): exactly the limit pass."""
    async with analysis_runtime(settings_for("redis")) as _runtime:
        user = await new_user()
        results = await asyncio.gather(
            *(plans.charge(user.user_id, 3) for _ in range(12)), return_exceptions=True
        )
        passed = [r for r in results if isinstance(r, str)]
        refused = [
            r for r in results if isinstance(r, AppError) and r.code is ErrorCode.QUOTA_EXCEEDED
        ]
        assert len(passed) == 3 and len(refused) == 9, results
        usage = await plans.usage(user.user_id, 3)
        assert usage is not None and usage.used == 3
        await plans.refund(user.user_id, passed[0])
        assert (await plans.usage(user.user_id, 3)).used == 2  # type: ignore[union-attr]
        assert await plans.usage(str(uuid.uuid4()), 3) is None
