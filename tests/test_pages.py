"""The pages as a person meets them (issue 15.4): in Spanish and English, on a phone (375×812)
and a desktop (1280×800), in Debian's headless Chromium against a real node (local analyzer).

Each run goes register → photo (chosen with the keyboard) → result streamed as cards → quiz →
history (an entry opened) → profile (language changed) → account deleted, and checks on the
way that nothing scrolls sideways and that axe-core finds no serious or critical WCAG problem.
The words come from the catalogs (synthia_rt/web/ui.py + i18n.LABELS): the assertions read
the expected texts from there, never from literals.

With UPDATE_SCREENSHOTS=1 the Spanish runs write docs/screenshots/{app,admin}-es-{phone,desktop}.png.
"""

# ruff: noqa: F811  (the fixtures imported from tests/test_browser.py are parameters of the tests)
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from synthia_rt.web import ui
from tests.conftest import running_app, unique_email
from tests.nodes import Node
from tests.opshelpers import PASSWORD, admin_on_nodes
from tests.rest_helpers import API, add_analysis, bearer, register
from tests.test_browser import (  # noqa: F401 - fixtures shared with the other page tests
    FACE_SHAPES,
    SCREENSHOTS,
    SEASONS,
    astronaut_jpeg,
    browser,
    chromium_path,
    rgb,
    web_node,
)

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "synthia_rt" / "web"
A11Y = Path(__file__).resolve().parent / "a11y"
AXE = A11Y / "node_modules" / "axe-core" / "axe.min.js"
SIZES = {"phone": {"width": 375, "height": 812}, "desktop": {"width": 1280, "height": 800}}
BROWSER_LOCALE = {"es": "es-ES", "en": "en-US"}
OTHER = {"es": "en", "en": "es"}
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


def words(lang: str) -> dict[str, Any]:
    return ui.bundle(lang)


# -- the words: every key the pages name exists, in both catalogs ----------------------------------
def test_every_key_the_pages_use_is_in_the_table() -> None:
    used: set[str] = set()
    for html in ("index.html", "admin.html"):
        text = re.sub(r"<!--.*?-->", "", (WEB / html).read_text(), flags=re.S)
        used |= set(re.findall(r'data-i18n(?:-[a-z-]+)?="([\w.-]+)"', text))
    for script in ("app.js", "admin.js", "i18n.js"):
        text = (WEB / "static" / script).read_text()
        used |= set(re.findall(r'\bt\(\s*"([\w.-]+)"', text))
        used |= set(
            re.findall(
                r'"((?:hint|admin|analyze|quiz|result|profile|push|history|auth|session)\.[\w.]+)"',
                text,
            )
        )
    used -= {"quiz.estimate"}  # a socket event's name, not a text
    # keys built from a value: every value the server can send has its text
    used |= {f"kind.{k}" for k in ("facial", "chromatic")}
    used |= {f"status.{s}" for s in ("queued", "running", "failed", "cancelled")}
    used |= {f"conn.{s}" for s in ("idle", "connecting", "ready", "reconnecting", "closed")}
    used |= {
        f"stage.{s}"
        for s in ("uploading", "validating", "queued", "analyzing", "persisting", "done")
    }
    assert sorted(used - set(ui.STRINGS)) == []
    for lang in ("es", "en"):
        strings = words(lang)["strings"]
        assert all(strings[k] for k in ui.STRINGS), lang
        # placeholders survive translation
        for key, english in ui.STRINGS.items():
            assert set(re.findall(r"\{\w+\}", strings[key])) == set(
                re.findall(r"\{\w+\}", english)
            ), (lang, key)
    spanish, english = words("es")["strings"], words("en")["strings"]
    assert spanish["nav.history"] == "Historial" and english["nav.history"] == "History"
    assert sum(spanish[k] != english[k] for k in ui.STRINGS) > 0.9 * len(
        ui.STRINGS
    )  # really translated


async def test_pages_are_rendered_in_the_negotiated_language(settings_for: Any) -> None:
    async with running_app(settings_for("memory", default_locale="es")) as (_, client):
        for path in ("/", "/admin"):
            r = await client.get(path)  # no header: DEFAULT_LOCALE
            assert (
                r.status_code == 200
                and '<html lang="es"' in r.text
                and r.headers["content-language"] == "es"
            )
            assert "Accept-Language" in r.headers["vary"] and "Cookie" in r.headers["vary"]
            english = (await client.get(path, headers={"Accept-Language": "en-GB,en;q=0.9"})).text
            assert '<html lang="en"' in english
            chosen = (
                await client.get(
                    path, headers={"Accept-Language": "en", "Cookie": "synthia_locale=es"}
                )
            ).text
            assert '<html lang="es"' in chosen  # the switcher's cookie wins over the header
            asked = (
                await client.get(f"{path}?lang=en", headers={"Cookie": "synthia_locale=es"})
            ).text
            assert '<html lang="en"' in asked
        page = (await client.get("/", headers={"Accept-Language": "es"})).text
        assert (
            ">Historial</span>" in page
            and ">Elegir una foto</span>" in page
            and 'aria-label="Secciones"' in page
        )
        assert '<title data-i18n="app.title">Synthia Style — tus colores' in page
        assert page.count(" aria-label=") == page.count(
            " data-i18n-aria-label="
        )  # one per element, none left in English
        assert (
            '"labels":{"face_shape":{"oval":"Ovalado"' in page
        )  # the bundle, embedded for the script
        assert 'id="push-enable"' in page

        r = await client.get(
            f"{API}/i18n/ui", params={"locale": "en"}, headers={"Accept-Language": "es"}
        )
        assert (
            r.status_code == 200
            and r.json()["locale"] == "en"
            and r.json()["strings"]["nav.quiz"] == "Colour quiz"
        )
        assert r.headers["cache-control"].startswith("public")
        r = await client.get(f"{API}/i18n/ui", headers={"Accept-Language": "es-MX"})
        body = r.json()
        assert (
            body["strings"]["nav.quiz"] == "Test de color"
            and body["labels"]["subseason"]["deep_autumn"] == "Otoño profundo"
        )
        assert body["languages"] == {"es": "Español", "en": "English"}
        r = await client.get(f"{API}/i18n/ui", params={"locale": "fr"})
        assert r.status_code == 422 and r.json()["error"]["field"] == "locale"


async def test_history_entries_carry_labels_in_the_readers_language(settings_for: Any) -> None:
    async with running_app(settings_for("memory", default_locale="es")) as (_, client):
        me = await register(client)
        await add_analysis(
            me["user"]["id"],
            kind="chromatic",
            status="done",
            result={
                "season": "autumn",
                "subseason": "deep_autumn",
                "undertone": "warm",
                "contrast": "high",
                "palette": [{"name": "Burgundy", "hex": "#800020"}],
                "confidence": 0.8,
                "reasons": ["a future field"],
            },
        )
        r = await client.get(
            f"{API}/history", headers={**bearer(me["access_token"]), "Accept-Language": "es"}
        )
        item = r.json()["items"][0]
        assert item["labels"]["season"] == "Otoño" and item["labels"]["palette"] == ["Burdeos"]
        one = await client.get(
            f"{API}/analyses/{item['id']}",
            headers={**bearer(me["access_token"]), "Accept-Language": "en"},
        )
        assert one.json()["labels"]["subseason"] == "Deep autumn"


# -- in the browser ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def axe_path() -> Path:
    """axe-core from the npm registry (tests/a11y/package.json, pinned by its lock file)."""
    if not AXE.exists():
        npm = shutil.which("npm")
        assert npm, (
            "tests/test_pages.py needs npm on PATH to install axe-core (apt-get install -y npm)"
        )
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=A11Y,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, f"npm ci in tests/a11y failed:\n{done.stdout}\n{done.stderr}"
    return AXE


async def open_page(browser: Browser, size: str, lang: str) -> Page:
    context = await browser.new_context(
        viewport=SIZES[size],
        locale=BROWSER_LOCALE[lang],
        bypass_csp=True,  # only so that axe-core can be injected; the pages need no exception
    )
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors  # type: ignore[attr-defined]
    # Playwright turns file-chooser interception on, without waiting, when the first listener
    # is added: listening from the start means a chooser opened later is never missed.
    page.on("filechooser", lambda chooser: None)
    return page


async def check_layout_and_a11y(page: Page, axe: Path, where: str) -> None:
    """No sideways scroll at this width, and no serious or critical axe-core finding."""
    width, inner = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width <= inner, f"{where}: the page scrolls sideways ({width} > {inner})"
    if not await page.evaluate("typeof window.axe === 'object'"):
        await page.add_script_tag(path=str(axe))
    violations = await page.evaluate(
        """async (tags) => {
          const r = await axe.run(document, { runOnly: { type: "tag", values: tags }, resultTypes: ["violations"] });
          return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
                                            nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ")) }));
        }""",
        WCAG_TAGS,
    )
    bad = [v for v in violations if v["impact"] in ("serious", "critical")]
    assert bad == [], f"{where}: {bad}"


async def spoken(page: Page) -> list[str]:
    return await page.evaluate("window.__spoken")  # type: ignore[no-any-return]


LISTEN = """() => {
  // Every text that appears in a live region, as a screen reader would be handed it.
  window.__spoken = [];
  const observer = new MutationObserver(() => {
    for (const region of document.querySelectorAll('[aria-live="polite"]')) {
      const text = region.textContent.trim();
      if (text && window.__spoken[window.__spoken.length - 1] !== text) window.__spoken.push(text);
    }
  });
  observer.observe(document.body, { subtree: true, childList: true, characterData: true });
}"""


async def go(page: Page, view: str) -> None:
    """Open a section from the navigation, with the keyboard."""
    await page.locator(f"#nav a[data-view='{view}']").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator(f"#view-{view}")).to_be_visible()
    await expect(page.locator(f"#{view}-title")).to_be_focused()


@pytest.mark.parametrize("size", ["phone", "desktop"])
@pytest.mark.parametrize("lang", ["es", "en"])
async def test_a_person_uses_the_app(
    web_node: Node, browser: Browser, axe_path: Path, lang: str, size: str
) -> None:
    w = words(lang)
    s, labels = w["strings"], w["labels"]
    page = await open_page(browser, size, lang)
    await page.goto(f"{web_node.http}/")
    assert await page.get_attribute("html", "lang") == lang
    await expect(page.locator("#login")).to_have_text(s["sign_in"])
    await expect(page.get_by_label(s["password"], exact=True)).to_be_visible()
    await check_layout_and_a11y(page, axe_path, "sign-in")

    # A friendly error for a wrong sign-in: the server's message in this language and what to do.
    email = unique_email()
    await page.fill("#email", email)
    await page.fill("#password", PASSWORD)
    await page.click("#login")
    await expect(page.locator("#auth-error .notice-hint")).to_have_text(
        s["hint.invalid_credentials"]
    )
    assert "invalid_credentials" not in await page.locator("#auth-error").inner_text()

    await page.fill("#display-name", "Ada")
    await page.click("#register")
    await expect(page.locator("#conn-state")).to_have_attribute(
        "data-state", "ready", timeout=15000
    )
    await expect(page.locator("#conn-text")).to_have_text(s["conn.ready"])
    await expect(page.locator("#nav a[aria-current='page']")).to_have_attribute(
        "data-view", "analyze"
    )
    await check_layout_and_a11y(page, axe_path, "analyse, before a photo")

    # The photo, with the keyboard only: from the section's link (Enter moves focus to its
    # heading) Tab lands on the real file input (its label is the visible button, with a
    # focus ring), and Space opens the chooser.
    await page.evaluate(LISTEN)
    await go(page, "analyze")
    await page.keyboard.press("Tab")
    await expect(page.locator("#file-input")).to_be_focused()
    assert (
        await page.locator("label[for='file-input']").evaluate(
            "(l) => getComputedStyle(l).outlineStyle"
        )
        == "solid"
    )
    await expect(page.get_by_label(s["analyze.choose"])).to_have_attribute("type", "file")
    async with page.expect_file_chooser() as chooser:
        await page.keyboard.press("Space")
    await (await chooser.value).set_files(
        files=[{"name": "astronaut.jpg", "mimeType": "image/jpeg", "buffer": astronaut_jpeg()}]
    )
    await expect(page.locator("#facial")).to_have_attribute("data-status", "done", timeout=60000)

    # The result as cards, in words of this language; the progress is a labelled <progress>.
    assert await page.get_by_label(s["analyze.upload"]).evaluate("(p) => [p.tagName, p.value]") == [
        "PROGRESS",
        100,
    ]
    await expect(page.locator("#stages li[aria-current='step']")).to_have_attribute(
        "data-stage", "done"
    )
    shape_card = page.locator("#facial-result [data-field='face_shape']")
    shape = await shape_card.get_attribute("data-value")
    assert shape in FACE_SHAPES
    await expect(shape_card.locator("h2")).to_have_text(s["result.face_shape"])
    await expect(shape_card.locator(".big-value")).to_have_text(labels["face_shape"][shape])
    await expect(shape_card.locator("svg.face-art")).to_be_visible()
    tone = page.locator("#facial-result dd[data-field='skin.tone']")
    await expect(tone).to_have_text(labels["tone"][await tone.get_attribute("data-value")])
    undertone = page.locator("#facial-result dd[data-field='skin.undertone']")
    await expect(undertone).to_have_text(
        labels["undertone"][await undertone.get_attribute("data-value")]
    )
    await expect(page.locator("#facial-result .skin-swatch")).to_have_attribute("role", "img")
    chips = await page.locator(
        "#facial-result [data-field='recommendations'] .chip"
    ).all_inner_texts()
    assert chips and set(chips) <= set(labels["category"].values())
    if lang == "es":
        assert (
            labels["face_shape"][shape] != shape.capitalize() or shape == "oval"
        )  # Spanish, not the raw key
        assert labels["face_shape"]["oval"] == "Ovalado"
    await expect(page.locator("#facial-error")).to_be_empty()
    # What a screen reader heard while it streamed: the stages, then the result in words.
    heard = await spoken(page)
    assert s["analyze.uploading"] in heard and s["analyze.working"] in heard, heard
    assert any(
        s["analyze.done"] in text and labels["face_shape"][shape].lower() in text for text in heard
    ), heard
    assert await page.locator("#facial-status").get_attribute("aria-live") == "polite"
    await check_layout_and_a11y(page, axe_path, "facial result")
    if lang == "es":
        await page.screenshot(path=str(SCREENSHOTS / f"app-es-{size}.png"), full_page=True)

    # The quiz: a provisional season after each answer, then the palette as named swatches.
    await go(page, "quiz")
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
    season_now = await page.locator("#estimate-season").get_attribute("data-value")
    assert season_now in SEASONS
    await expect(page.locator("#estimate-season")).to_have_text(labels["season"][season_now])
    await check_layout_and_a11y(page, axe_path, "quiz answered")
    await page.click("#quiz-submit")
    await expect(page.locator("#quiz")).to_have_attribute("data-status", "done", timeout=30000)
    season_card = page.locator("#quiz-result [data-field='season']")
    season = await season_card.get_attribute("data-value")
    assert season in SEASONS
    await expect(season_card.locator(".big-value")).to_have_text(labels["season"][season])
    sub = season_card.locator("[data-field='subseason']")
    await expect(sub).to_have_text(labels["subseason"][await sub.get_attribute("data-value")])
    swatches = page.locator("#quiz-result [data-field='palette'] .swatch")
    assert await swatches.count() >= 4
    hex_colour = await swatches.first.get_attribute("data-hex")
    assert hex_colour and await swatches.first.evaluate(
        "(el) => getComputedStyle(el).backgroundColor"
    ) == rgb(hex_colour)
    names = await page.locator("#quiz-result [data-field='palette'] .swatch-name").all_inner_texts()
    assert all(names)
    await expect(page.locator("#quiz-status")).to_contain_text(s["quiz.done"])
    await check_layout_and_a11y(page, axe_path, "quiz result")

    # The history: both analyses, newest first, in words; one opens with the keyboard.
    await go(page, "history")
    entries = page.locator("#history li")
    await expect(entries).to_have_count(2, timeout=10000)
    assert [await li.get_attribute("data-kind") for li in await entries.all()] == [
        "chromatic",
        "facial",
    ]
    await expect(entries.nth(1).locator("strong")).to_have_text(s["kind.facial"])
    await check_layout_and_a11y(page, axe_path, "history")
    await entries.nth(1).locator("button").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#history-detail-title")).to_contain_text(
        s["kind.facial"], timeout=10000
    )
    await expect(page.locator("#history-detail-title")).to_be_focused()
    opened = page.locator("#history-result [data-field='face_shape']")
    await expect(opened).to_have_attribute("data-value", shape)
    await expect(opened.locator("h3")).to_have_text(s["result.face_shape"])
    await expect(opened.locator(".big-value")).to_have_text(labels["face_shape"][shape])
    await check_layout_and_a11y(page, axe_path, "history entry")
    await page.click("#history-back")
    await expect(entries.nth(1).locator("button")).to_be_focused()

    # The profile: the language switches in place and is saved to the account.
    await go(page, "profile")
    await expect(page.locator("#profile-email")).to_have_text(email)
    await expect(page.locator("#profile-name")).to_have_value("Ada")
    await check_layout_and_a11y(page, axe_path, "profile")
    other = OTHER[lang]
    o = words(other)
    await page.select_option("#profile-locale", other)
    await page.click("#profile-save")
    await expect(page.locator("#profile-result")).to_have_text(
        o["strings"]["profile.saved"], timeout=10000
    )
    assert await page.get_attribute("html", "lang") == other
    await expect(page.locator("#nav a[data-view='profile'] span")).to_have_text(
        o["strings"]["nav.profile"]
    )
    await expect(page.locator("#locale-select")).to_have_value(other)
    await expect(page.locator("#conn-state")).to_have_attribute(
        "data-state", "ready", timeout=15000
    )
    await expect(page.locator("#facial-result [data-field='face_shape'] .big-value")).to_have_text(
        o["labels"]["face_shape"][shape]
    )
    saved = await page.evaluate(
        """async () => {
          const { access_token } = JSON.parse(sessionStorage.getItem("synthia.demo.tokens"));
          const r = await fetch("/api/v1/users/profile", { headers: { Authorization: `Bearer ${access_token}` } });
          return (await r.json()).locale;
        }"""
    )
    assert saved == other
    # ...and back with the switcher in the header.
    await page.select_option("#locale-select", lang)
    await expect(page.locator("html")).to_have_attribute("lang", lang, timeout=10000)
    await expect(page.locator("#profile-title")).to_have_text(s["profile.title"])
    await expect(page.locator("#conn-state")).to_have_attribute(
        "data-state", "ready", timeout=15000
    )

    # Deleting the account needs the password: a wrong one is a friendly error, the right one
    # erases the account and signs out.
    await page.fill("#delete-password", "not my password")
    await page.click("#delete-account")
    await expect(page.locator("#delete-error .notice-message")).not_to_be_empty(timeout=10000)
    assert "_" not in await page.locator("#delete-error").inner_text()  # no raw error code
    await page.fill("#delete-password", PASSWORD)
    await page.click("#delete-account")
    await expect(page.locator("#auth")).to_be_visible(timeout=10000)
    await expect(page.locator("#auth-error")).to_have_text(s["auth.deleted"])
    await expect(page.locator("#nav")).to_be_hidden()
    async with httpx.AsyncClient(base_url=web_node.http) as http:
        r = await http.post(f"{API}/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 401
    assert page.errors == []  # type: ignore[attr-defined]
    await page.context.close()


@pytest.mark.parametrize("size", ["phone", "desktop"])
async def test_the_admin_dashboard_in_spanish(
    web_node: Node, browser: Browser, axe_path: Path, pg_url: str, size: str
) -> None:
    s = words("es")["strings"]
    async with httpx.AsyncClient(base_url=web_node.http) as http:
        admin = await admin_on_nodes(http, "", pg_url)
    page = await open_page(browser, size, "es")
    await page.goto(f"{web_node.http}/admin")
    await expect(page.locator("#auth-title")).to_have_text(s["admin.sign_in"])
    await check_layout_and_a11y(page, axe_path, "admin sign-in")
    await page.fill("#email", admin["email"])
    await page.fill("#password", PASSWORD)
    await page.click("#login")
    await expect(page.locator("#dashboard")).to_be_visible(timeout=15000)
    await expect(page.locator("#total-sockets")).to_have_text("1", timeout=15000)
    await expect(page.locator("#cluster-title")).to_have_text(s["admin.cluster"])
    await expect(page.locator("#analytics-result")).to_contain_text(
        "(", timeout=15000
    )  # analytics loaded
    await page.get_by_label(s["admin.user_query"]).fill(admin["email"][:12])
    await page.get_by_role("button", name=s["admin.search"], exact=True).click()
    await expect(page.locator("#user-search-result")).to_contain_text(
        s["admin.users_shown"].split(" ")[-1], timeout=10000
    )
    await expect(page.locator("#user-rows tr").first.locator("td.status")).to_have_text(
        re.compile(f"^({s['admin.active']}|{s['admin.blocked']})$")
    )
    await page.wait_for_timeout(1200)  # a few snapshots for the charts
    await check_layout_and_a11y(page, axe_path, "admin dashboard")
    await page.screenshot(path=str(SCREENSHOTS / f"admin-es-{size}.png"), full_page=True)
    assert page.errors == []  # type: ignore[attr-defined]
    await page.context.close()


async def test_errors_in_the_app_say_what_to_do(web_node: Node, browser: Browser) -> None:
    """A file that is not an image: the analysis fails with the translated message and a hint,
    never a raw code, and the person can try again from the notice."""
    s = words("es")["strings"]
    page = await open_page(browser, "phone", "es")
    await page.goto(f"{web_node.http}/")
    await page.fill("#email", unique_email())
    await page.fill("#password", PASSWORD)
    await page.click("#register")
    await expect(page.locator("#conn-state")).to_have_attribute(
        "data-state", "ready", timeout=15000
    )
    await page.set_input_files(
        "#file-input",
        files=[
            {"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"not an image at all" * 20}
        ],
    )
    await expect(page.locator("#facial")).to_have_attribute("data-status", "error", timeout=30000)
    notice = page.locator("#facial-error")
    await expect(notice.locator(".notice-hint")).to_have_text(s["hint.invalid_image"])
    await expect(notice.locator(".notice-message")).not_to_be_empty()
    assert "invalid_image" not in await notice.inner_text()
    assert await notice.get_attribute("role") == "alert"
    async with page.expect_file_chooser():
        await notice.get_by_role("button", name=s["try_again"]).click()
    assert page.errors == []  # type: ignore[attr-defined]
    await page.context.close()


async def test_a_result_draws_only_the_fields_it_has(web_node: Node, browser: Browser) -> None:
    """The result models grow (confidence, reasons, more): the page draws the fields it knows
    that are there, skips malformed ones and ignores the rest. Opened from a notification's link."""
    s, labels = words("es")["strings"], words("es")["labels"]
    page = await open_page(browser, "phone", "es")
    await page.goto(f"{web_node.http}/")
    await page.fill("#email", unique_email())
    await page.fill("#password", PASSWORD)
    await page.click("#register")
    await expect(page.locator("#conn-state")).to_have_attribute(
        "data-state", "ready", timeout=15000
    )
    aid = "0190a1b2-0000-7000-8000-00000000abcd"
    entry = {
        "id": aid,
        "kind": "facial",
        "status": "done",
        "cached": False,
        "model": "future-model",
        "created_at": "2031-03-02T10:00:00Z",
        "labels": {"face_shape": "Corazón", "unknown_group": {"x": 1}},
        "result": {
            "face_shape": "heart",
            "confidence": 0.82,
            "reasons": ["wide forehead", {"why": "a shape"}],
            "skin": {"tone": "tan", "undertone": 7, "hex": "not a colour"},
            "recommendations": [
                {"category": "headwear", "title": "Wide brims"},
                "junk",
                {"detail": "no title"},
                None,
            ],
            "brand_new": {"nested": [1, 2, 3]},
        },
    }

    async def fulfil(route: Any) -> None:
        await route.fulfill(json=entry)

    await page.route(f"**/api/v1/analyses/{aid}", fulfil)
    await page.goto(f"{web_node.http}/?analysis={aid}")  # same tab: still signed in
    detail = page.locator("#history-result")
    await expect(detail.locator("[data-field='face_shape'] .big-value")).to_have_text(
        labels["face_shape"]["heart"], timeout=15000
    )
    await expect(detail.locator("[data-field='face_shape']")).to_contain_text(
        s["result.confidence"].format(pct=82)
    )
    await expect(detail.locator("dd[data-field='skin.tone']")).to_have_text(labels["tone"]["tan"])
    await expect(detail.locator("dd[data-field='skin.undertone']")).to_have_count(
        0
    )  # not a word: skipped
    await expect(detail.locator(".skin-swatch")).to_have_count(
        1
    )  # the tone's colour stands in for a bad hex
    await expect(detail.locator("[data-field='recommendations'] li")).to_have_count(1)
    await expect(detail.locator("[data-field='recommendations'] .chip")).to_have_text(
        "Headwear"
    )  # unknown key, readable
    assert (
        await detail.locator(".result-card").count() == 3
    )  # shape, skin, recommendations; nothing for the rest
    await expect(page.locator("#history-detail-title")).to_contain_text(s["kind.facial"])
    width, inner = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width <= inner
    assert page.errors == []  # type: ignore[attr-defined]
    await page.context.close()
