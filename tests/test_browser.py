"""The pages as a person uses them: Debian's headless Chromium (driven by playwright, never a
downloaded browser) against a real uvicorn node on PostgreSQL and Redis, local analyzer.

Screenshots of both pages (in Spanish, phone and desktop) go to docs/screenshots/ with
UPDATE_SCREENSHOTS=1: tests/test_pages.py takes them.
"""

from __future__ import annotations

import base64
import io
import os
import re
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from playwright.async_api import Browser, Page, async_playwright, expect
from skimage import data as skdata

from tests.conftest import unique_email
from tests.nodes import Node, free_port, start_node
from tests.opshelpers import PASSWORD, admin_on_nodes, bearer, next_event, open_socket, register

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# docs/screenshots/ is refreshed only on request, so a test run leaves the work tree clean.
SCREENSHOTS = (
    Path(__file__).resolve().parent.parent / "docs" / "screenshots"
    if os.environ.get("UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "synthia-screenshots"
)
SCREENSHOTS.mkdir(parents=True, exist_ok=True)
CHUNK = (
    16 * 1024
)  # small chunks: the astronaut JPEG goes up in several, so progress and resume show
FACE_SHAPES = {"oval", "round", "square", "heart", "diamond", "oblong", "triangle"}
SEASONS = {"spring", "summer", "autumn", "winter"}
HEX = re.compile(r"^#[0-9A-Fa-f]{6}$")


def astronaut_jpeg() -> bytes:
    out = io.BytesIO()
    Image.fromarray(skdata.astronaut()).save(out, "JPEG", quality=90)
    return out.getvalue()


@pytest.fixture
async def web_node(node_env: dict[str, str]) -> AsyncIterator[Node]:
    port = free_port()
    env = {
        **node_env,
        "ALLOWED_ORIGINS": f"http://127.0.0.1:{port}",  # the page's own origin
        "ANALYZER": "local",
        "METRICS_INTERVAL": "0.5",
        "MAX_CHUNK_BYTES": str(CHUNK),
    }
    node = await start_node(env, port=port)
    try:
        yield node
    finally:
        await node.stop()


@pytest.fixture(scope="session")
def chromium_path() -> str:
    assert Path(CHROMIUM).exists(), (
        "browser tests need Debian's chromium: apt-get install -y chromium"
    )
    return CHROMIUM


@pytest.fixture
async def browser(chromium_path: str) -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        instance = await pw.chromium.launch(
            executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield instance
        finally:
            await instance.close()


async def new_page(browser: Browser) -> Page:
    page = await browser.new_page(viewport={"width": 1280, "height": 900}, locale="en-US")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors  # type: ignore[attr-defined]  # checked at the end of each test
    return page


async def drop_file(page: Page, selector: str, content: bytes, name: str, mime: str) -> None:
    """Drag-and-drop a file onto an element, as a person dragging it from their desktop."""
    await page.evaluate(
        """([selector, b64, name, mime]) => {
          const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
          const transfer = new DataTransfer();
          transfer.items.add(new File([bytes], name, { type: mime }));
          const target = document.querySelector(selector);
          target.dispatchEvent(new DragEvent("dragover", { dataTransfer: transfer, bubbles: true, cancelable: true }));
          target.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
        }""",
        [selector, base64.b64encode(content).decode(), name, mime],
    )


def rgb(hex_colour: str) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


# -- the live demo ------------------------------------------------------------------------------------
async def test_user_analyses_a_photo_and_takes_the_quiz(web_node: Node, browser: Browser) -> None:
    page = await new_page(browser)
    await page.goto(f"{web_node.http}/")
    await page.fill("#email", unique_email())
    await page.fill("#password", PASSWORD)
    await page.fill("#display-name", "Ada")
    await page.click("#register")
    await expect(page.locator("#conn-state")).to_have_attribute(
        "data-state", "ready", timeout=15000
    )

    # Facial analysis: drop the photo, watch it upload in chunks, stream, and finish.
    await drop_file(page, "#dropzone", astronaut_jpeg(), "astronaut.jpg", "image/jpeg")
    await expect(page.locator("#facial")).to_have_attribute("data-status", "done", timeout=60000)
    assert await page.locator("#upload-progress").get_attribute("value") == "100"
    assert await page.locator("#stages li.current").get_attribute("data-stage") == "done"
    assert await page.locator("#stages li.done").count() == 5
    assert (
        await page.locator("#facial-result [data-field='face_shape']").get_attribute("data-value")
        in FACE_SHAPES
    )
    undertone = await page.locator("#facial-result dd[data-field='skin.undertone']").get_attribute(
        "data-value"
    )
    assert undertone in {"warm", "cool", "neutral", "olive"}
    assert await page.locator("#facial-error").inner_text() == ""

    # The quiz: a provisional season after every answer, then the palette as swatches.
    await page.click("#nav a[data-view='quiz']")
    await page.click("#quiz-start")
    questions = page.locator("#quiz-questions fieldset")
    await expect(questions.first).to_be_visible()
    total = await questions.count()
    assert total >= 5
    for i in range(total):
        await questions.nth(i).locator("input[type=radio]").nth(i % 2).check()
        await expect(page.locator("#quiz-estimate")).to_have_attribute(
            "data-answered", str(i + 1), timeout=10000
        )
        assert await page.locator("#estimate-season").get_attribute("data-value") in SEASONS
    await expect(page.locator("#quiz-submit")).to_be_visible()
    await page.click("#quiz-submit")
    await expect(page.locator("#quiz")).to_have_attribute("data-status", "done", timeout=30000)
    season = await page.locator("#quiz-result [data-field='season']").get_attribute("data-value")
    assert season in SEASONS
    swatches = page.locator("#quiz-result [data-field='palette'] .swatch")
    assert await swatches.count() >= 4
    hex_colour = await swatches.first.get_attribute("data-hex")
    assert hex_colour is not None and HEX.match(hex_colour)
    colour = await swatches.first.evaluate("(el) => getComputedStyle(el).backgroundColor")
    assert colour == rgb(hex_colour)  # drawn in the colour the result names

    # Both analyses are in the history, newest first.
    await page.click("#nav a[data-view='history']")
    await expect(page.locator("#history li")).to_have_count(2, timeout=10000)
    kinds = [await li.get_attribute("data-kind") for li in await page.locator("#history li").all()]
    assert kinds == ["chromatic", "facial"]

    assert page.errors == []  # type: ignore[attr-defined]


async def test_client_resumes_an_upload_after_the_connection_drops(
    web_node: Node, browser: Browser
) -> None:
    """synthia.js on its own: the socket is cut mid-upload; the client reconnects, asks
    upload.status, resumes from the durable offset and the analysis completes."""
    page = await new_page(browser)
    await page.goto(f"{web_node.http}/")
    image = astronaut_jpeg()
    outcome: dict[str, Any] = await page.evaluate(
        """async ([b64, email, password]) => {
          const { SynthiaApi, SynthiaClient } = await import("/static/synthia.js");
          const api = new SynthiaApi();
          await api.register(email, password);
          const client = new SynthiaClient({ token: () => api.accessToken, refresh: () => api.refresh(),
                                             backoff: { initial: 200, max: 1000 } });
          const states = [];
          client.on("state", ({ state }) => states.push(state));
          await client.connect();
          const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
          const progress = [];
          let cut = false;
          let analysisId = null;
          const result = new Promise((resolve) => client.on("analysis.result", (e) => {
            if (e.analysis_id === analysisId) resolve(e);
          }));
          const upload = await client.uploadImage(new Blob([bytes], { type: "image/jpeg" }), {
            onStart: (s) => { analysisId = s.analysisId; },
            onProgress: (done, size) => {
              progress.push(done);
              if (!cut && done > 0 && done < size) { cut = true; client._ws.close(4000, "test cut"); }
            },
          });
          const final = await result;
          return { upload, progress, states, size: bytes.length, result: final.result,
                   status: await client.send("upload.status", { analysis_id: upload.analysisId }) };
        }""",
        [base64.b64encode(image).decode(), unique_email(), PASSWORD],
    )
    assert outcome["upload"]["cached"] is False
    assert "reconnecting" in outcome["states"] and outcome["states"][-1] == "ready"
    progress = outcome["progress"]
    assert progress[-1] == outcome["size"] == len(image)
    assert progress == sorted(progress)  # never went backwards: resumed, not restarted
    assert len([p for p in progress if 0 < p < len(image)]) >= 2
    assert outcome["status"]["offset"] == outcome["status"]["size"] == len(image)
    assert outcome["result"]["face_shape"] in FACE_SHAPES
    assert page.errors == []  # type: ignore[attr-defined]


# -- the admin dashboard --------------------------------------------------------------------------------
async def sign_in(page: Page, url: str, email: str) -> None:
    """Sign in through the login form of the page at ``url`` (the demo or the dashboard)."""
    await page.goto(url)
    await page.fill("#email", email)
    await page.fill("#password", PASSWORD)
    await page.click("#login")


async def test_admin_sees_sockets_change_and_notifies_everyone(
    web_node: Node, browser: Browser, pg_url: str
) -> None:
    async with httpx.AsyncClient(base_url=web_node.http) as http:
        admin = await admin_on_nodes(http, "", pg_url)
        user = await register(http)
    page = await new_page(browser)
    await sign_in(page, f"{web_node.http}/admin", admin["email"])
    await expect(page.locator("#dashboard")).to_be_visible(timeout=15000)
    await expect(page.locator("#total-sockets")).to_have_text("1", timeout=15000)  # the page's own
    await expect(page.locator("#total-nodes")).to_have_text("1")

    ws, ready = await open_socket(web_node.ws, user["access_token"])
    try:
        await expect(page.locator("#total-sockets")).to_have_text("2", timeout=15000)
        row = page.locator(f"#node-rows tr[data-node='{ready['node']}']")
        await expect(row.locator("td.sockets")).to_have_text("2")
        await expect(row.locator("td[data-status='ok']")).to_have_count(2)  # redis and postgres

        # The notification form reaches the other client live, on `broadcast`.
        await page.fill("#notify-title", "Maintenance tonight")
        await page.fill("#notify-body", "A short pause at 02:00 UTC.")
        await page.click("#notify-form button[type=submit]")
        event = await next_event(ws, "notification")
        assert (event["title"], event["channel"]) == ("Maintenance tonight", "broadcast")
        await expect(page.locator("#notify-result")).to_have_text("Sent to all.")
        await expect(
            page.locator("#audit-rows tr[data-action='admin.notification']").first
        ).to_be_visible(timeout=10000)
        for i in range(30):  # some traffic so the charts have something to draw
            await ws.send(f'{{"id": {i + 1}, "op": "ping"}}')
    finally:
        await ws.close()
    await expect(page.locator("#total-sockets")).to_have_text("1", timeout=15000)
    assert page.errors == []  # type: ignore[attr-defined]


async def test_non_admin_is_refused_on_the_admin_page(web_node: Node, browser: Browser) -> None:
    async with httpx.AsyncClient(base_url=web_node.http) as http:
        user = await register(http)
        audit = await http.get("/api/v1/admin/audit", headers=bearer(user["access_token"]))
        assert audit.status_code == 403
    page = await new_page(browser)
    await sign_in(page, f"{web_node.http}/admin", user["email"])
    await expect(page.locator("#refused")).to_be_visible(timeout=15000)
    await expect(page.locator("#refused-reason")).to_contain_text("admin role")
    await expect(page.locator("#dashboard")).to_be_hidden()
    assert await page.locator("#node-rows tr").count() == 0
    assert await page.locator("#audit-rows tr").count() == 0
    assert page.errors == []  # type: ignore[attr-defined]


async def test_blocked_user_is_signed_out_and_does_not_reconnect(
    web_node: Node, browser: Browser, pg_url: str
) -> None:
    """Close 4010 is final for synthia.js: the demo drops back to the sign-in form."""
    async with httpx.AsyncClient(base_url=web_node.http) as http:
        admin = await admin_on_nodes(http, "", pg_url)
        user = await register(http)
        page = await new_page(browser)
        await sign_in(page, f"{web_node.http}/", user["email"])
        await expect(page.locator("#conn-state")).to_have_attribute(
            "data-state", "ready", timeout=15000
        )
        r = await http.post(
            f"/api/v1/admin/users/{user['user']['id']}/block", headers=bearer(admin["access_token"])
        )
        assert r.status_code == 200
    await expect(page.locator("#auth")).to_be_visible(timeout=15000)
    await expect(page.locator("#auth-error")).to_contain_text("session was ended")
    await expect(page.locator("#conn-state")).to_have_attribute("data-state", "closed")
    await page.wait_for_timeout(1500)  # longer than the first backoff: no reconnect happened
    await expect(page.locator("#conn-state")).to_have_attribute("data-state", "closed")
    assert page.errors == []  # type: ignore[attr-defined]


async def test_api_explorer_authorizes_and_tries_a_request(
    web_node: Node, browser: Browser
) -> None:
    async with httpx.AsyncClient(base_url=web_node.http, timeout=10) as client:
        user = await register(client)
    page = await new_page(browser)
    await page.goto(f"{web_node.http}/docs")
    await page.locator(".btn.authorize").first.click()
    await page.locator(".modal-ux input").first.fill(user["access_token"])
    await page.locator(".modal-ux .auth-btn-wrapper .authorize").click()
    await page.locator(".modal-ux .btn-done").click()
    profile = page.locator(
        ".opblock", has=page.locator('[data-path="/api/v1/users/profile"]')
    ).first
    await profile.locator(".opblock-summary").click()
    await profile.locator(".try-out__btn").click()
    await profile.locator(".execute").click()
    await expect(
        profile.locator(".live-responses-table tr.response .response-col_status").first
    ).to_have_text("200", timeout=10_000)
    await expect(profile.locator(".live-responses-table")).to_contain_text(user["email"])
    assert page.errors == []  # type: ignore[attr-defined]


async def test_admin_finds_a_user_by_email_prefix_and_blocks_them(
    web_node: Node, browser: Browser, pg_url: str
) -> None:
    async with httpx.AsyncClient(base_url=web_node.http) as http:
        admin = await admin_on_nodes(http, "", pg_url)
        user = await register(http)
        await register(http)  # someone else, who must not match
    page = await new_page(browser)
    await sign_in(page, f"{web_node.http}/admin", admin["email"])
    await expect(page.locator("#dashboard")).to_be_visible(timeout=15000)

    # Typed with the keyboard into the labelled box: a prefix of the email, in capitals.
    await page.get_by_label("Email or id prefix").click()
    await page.keyboard.type(user["email"][:10].upper())
    await page.keyboard.press("Enter")
    row = page.locator(f"#user-rows tr[data-user-id='{user['user']['id']}']")
    await expect(page.locator("#user-rows tr")).to_have_count(1, timeout=10000)
    await expect(row.locator("td.email")).to_have_text(user["email"])
    await expect(row.locator("td.status")).to_have_text("active")

    # Block from the row, by keyboard: focus the row's button and press Enter.
    await page.get_by_role("button", name=f"Block {user['email']}").focus()
    await page.keyboard.press("Enter")
    await expect(row).to_have_attribute("data-status", "blocked", timeout=10000)
    await expect(row.locator("td.status")).to_have_text("blocked")
    await expect(page.get_by_role("button", name=f"Unblock {user['email']}")).to_be_focused()
    await expect(
        page.locator("#audit-rows tr[data-action='admin.user.block']").first
    ).to_be_visible(timeout=10000)
    async with httpx.AsyncClient(base_url=web_node.http) as http:
        r = await http.post(
            "/api/v1/auth/login", json={"email": user["email"], "password": PASSWORD}
        )
        assert r.status_code == 403 and r.json()["error"]["code"] == "account_blocked", r.text

    # A fresh search shows the stored state; Notify hands the id to the notification form.
    await page.get_by_role("button", name="Search").click()
    await expect(row.locator("td.status")).to_have_text("blocked", timeout=10000)
    await page.get_by_role("button", name=f"Notify {user['email']}").click()
    await expect(page.locator("#notify-user")).to_have_value(user["user"]["id"])
    await expect(page.locator("#notify-title")).to_be_focused()
    assert page.errors == []  # type: ignore[attr-defined]
