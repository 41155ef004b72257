"""REST compatibility: file upload and the two awaited analyses, through the real app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from synthia_rt import rest
from tests.analysis_support import astronaut_jpeg, coffee_jpeg, png_bomb
from tests.conftest import running_app
from tests.rest_helpers import API, bearer, register

ANSWERS = {
    "veins": "blue_purple",
    "jewellery": "silver",
    "hair": "black",
    "eyes": "dark_brown",
    "contrast": "high",
    "white": "pure_white",
}


@pytest.fixture
async def client(
    settings_for: Any, backend: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    # Until rest/__init__.py lists them, mount this module's resources for the test app.
    missing = tuple(m for m in ("files", "analyze") if m not in rest.MODULES)
    monkeypatch.setattr(rest, "MODULES", (*rest.MODULES, *missing))
    async with running_app(
        settings_for(backend, max_image_bytes=1024 * 1024, max_chunk_bytes=64 * 1024)
    ) as (_, c):
        yield c


@pytest.fixture
async def auth(client: httpx.AsyncClient) -> dict[str, str]:
    return bearer((await register(client))["access_token"])


def image_form(data: bytes, name: str = "image", filename: str = "photo.jpg") -> dict[str, Any]:
    return {"files": {name: (filename, data, "image/jpeg")}}


def error_code(r: httpx.Response) -> str:
    code: str = r.json()["error"]["code"]
    return code


async def test_facial_analysis_returns_the_final_result(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    r = await client.post(
        f"{API}/facial-analysis/analyze", headers=auth, **image_form(astronaut_jpeg())
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (
        body["kind"] == "facial" and body["cached"] is False and body["model"] == "local-opencv-1"
    )
    assert r.headers["X-Cache"] == "MISS"
    assert body["result"]["face_shape"] and body["result"]["skin"]["undertone"]
    assert "event" not in body
    again = await client.post(
        f"{API}/facial-analysis/analyze", headers=auth, **image_form(astronaut_jpeg(), "file")
    )
    assert again.status_code == 200 and again.json()["cached"] is True
    assert again.headers["X-Cache"] == "HIT"
    assert again.json()["result"] == body["result"]


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"this is text, not a jpeg", 400, "invalid_image"),
        (png_bomb(9000, 9000), 400, "invalid_image"),
        (astronaut_jpeg()[:30000], 400, "invalid_image"),
        (b"\xff" * (1024 * 1024 + 1), 413, "too_large"),
    ],
)
async def test_facial_analysis_refusals(
    client: httpx.AsyncClient, auth: dict[str, str], data: bytes, status: int, code: str
) -> None:
    r = await client.post(f"{API}/facial-analysis/analyze", headers=auth, **image_form(data))
    assert (r.status_code, error_code(r)) == (status, code)
    assert "Traceback" not in r.text


async def test_no_face_and_no_auth(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    r = await client.post(
        f"{API}/facial-analysis/analyze", headers=auth, **image_form(coffee_jpeg())
    )
    assert (r.status_code, error_code(r)) == (422, "no_face_detected")
    r = await client.post(f"{API}/facial-analysis/analyze", **image_form(astronaut_jpeg()))
    assert (r.status_code, error_code(r)) == (401, "unauthorized")
    # JSON is for {"file_id"} (an upload kept by /files/upload), not for inline image bytes.
    r = await client.post(f"{API}/facial-analysis/analyze", headers=auth, json={"image": "base64?"})
    assert (r.status_code, error_code(r)) == (422, "validation_error")
    r = await client.post(
        f"{API}/facial-analysis/analyze",
        headers={**auth, "Content-Type": "image/jpeg"},
        content=astronaut_jpeg(),
    )
    assert (r.status_code, error_code(r)) == (400, "bad_request")
    r = await client.post(
        f"{API}/facial-analysis/analyze", headers=auth, **image_form(astronaut_jpeg(), "avatar")
    )
    assert (r.status_code, error_code(r)) == (400, "bad_request")


async def test_file_upload_gives_a_file_id(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    r = await client.post(
        f"{API}/files/upload", headers=auth, **image_form(astronaut_jpeg(), "file")
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"file_id", "sha256", "size", "content_type", "expires_at"}
    assert body["content_type"] == "image/jpeg" and body["size"] == len(astronaut_jpeg())
    bad = await client.post(f"{API}/files/upload", headers=auth, **image_form(b"GIF89a not really"))
    assert (bad.status_code, error_code(bad)) == (400, "invalid_image")


async def test_chromatic_analysis(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    r = await client.post(
        f"{API}/chromatic-analysis/analyze", headers=auth, json={"answers": ANSWERS}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["kind"] == "chromatic" and body["result"]["season"] == "winter"
    assert all(len(s["hex"]) == 7 for s in body["result"]["palette"])
    again = await client.post(
        f"{API}/chromatic-analysis/analyze",
        headers=auth,
        json={"answers": dict(reversed(list(ANSWERS.items())))},
    )
    assert again.json()["cached"] is True
    for answers, code in (
        ({"veins": "plaid"}, "validation_error"),
        ({"veins": "green"}, "validation_error"),
    ):
        r = await client.post(
            f"{API}/chromatic-analysis/analyze", headers=auth, json={"answers": answers}
        )
        assert (r.status_code, error_code(r)) == (422, code)
    r = await client.post(
        f"{API}/chromatic-analysis/analyze", headers=auth, json={"answers": ["veins"]}
    )
    assert (r.status_code, error_code(r)) == (400, "bad_request")


async def test_facial_analysis_of_an_uploaded_file_id(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    up = await client.post(
        f"{API}/files/upload", headers=auth, **image_form(astronaut_jpeg(), "file")
    )
    assert up.status_code == 201, up.text
    r = await client.post(
        f"{API}/facial-analysis/analyze", headers=auth, json={"file_id": up.json()["file_id"]}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (
        body["kind"] == "facial" and body["result"]["face_shape"] and r.headers["X-Cache"] == "MISS"
    )
    # The same picture sent as bytes now is a cache hit: one pipeline, whichever way in.
    again = await client.post(
        f"{API}/facial-analysis/analyze", headers=auth, **image_form(astronaut_jpeg())
    )
    assert again.json()["cached"] is True and again.json()["result"] == body["result"]
    # The kept file is used up by its analysis; unknown ids name the field.
    for file_id in (up.json()["file_id"], "00000000-0000-0000-0000-000000000000", "nope"):
        gone = await client.post(
            f"{API}/facial-analysis/analyze", headers=auth, json={"file_id": file_id}
        )
        assert (gone.status_code, error_code(gone)) == (404, "not_found")
        assert gone.json()["error"]["field"] == "file_id"
    r = await client.post(f"{API}/facial-analysis/analyze", headers=auth, json={"file": "x"})
    assert r.status_code in (400, 422)


async def test_quiz_questions_over_rest_are_cacheable(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    r = await client.get(f"{API}/chromatic-analysis/questions")  # public: no token needed
    assert r.status_code == 200, r.text
    body = r.json()
    ids = {q["id"]: [o["id"] for o in q["options"]] for q in body["questions"]}
    assert set(ANSWERS) <= set(ids) and all(ANSWERS[q] in ids[q] for q in ANSWERS)
    assert body["min_answers"] == 4
    etag = r.headers["ETag"]
    assert etag.startswith('"') and "max-age=" in r.headers["Cache-Control"]
    assert "Accept-Language" in r.headers["Vary"]
    same = await client.get(f"{API}/chromatic-analysis/questions", headers={"If-None-Match": etag})
    assert same.status_code == 304 and same.content == b"" and same.headers["ETag"] == etag
    other = await client.get(
        f"{API}/chromatic-analysis/questions", headers={"If-None-Match": '"stale"'}
    )
    assert other.status_code == 200 and other.json() == body
    localized = await client.get(
        f"{API}/chromatic-analysis/questions",
        params={"locale": "es"},
        headers={"Accept-Language": "es-MX,es;q=0.9"},
    )
    assert localized.status_code == 200 and {q["id"] for q in localized.json()["questions"]} == set(
        ids
    )
    # The ids it lists are the ones the analysis takes.
    first = {q: opts[0] for q, opts in list(ids.items())[:4]}
    done = await client.post(
        f"{API}/chromatic-analysis/analyze", headers=auth, json={"answers": first}
    )
    assert done.status_code == 200, done.text
    bad = await client.get(f"{API}/chromatic-analysis/questions", params={"locale": "x" * 36})
    assert bad.status_code == 422
