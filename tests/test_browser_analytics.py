"""The analytics section of /admin in Debian's Chromium: the charts draw the seeded figures."""

from __future__ import annotations

import httpx
from playwright.async_api import Browser, expect

from tests.analytics_support import END, START, TZ, seed, unseed
from tests.nodes import Node
from tests.opshelpers import admin_on_nodes
from tests.test_browser import (  # noqa: F401 - fixtures shared with the other page tests
    browser,
    chromium_path,
    new_page,
    sign_in,
    web_node,
)


async def test_admin_page_draws_the_analytics_charts(
    web_node: Node,  # noqa: F811 - the fixture imported above
    browser: Browser,  # noqa: F811
    pg_url: str,
) -> None:
    users = await seed(pg_url)
    try:
        async with httpx.AsyncClient(base_url=web_node.http) as http:
            admin = await admin_on_nodes(http, "", pg_url)
        page = await new_page(browser)
        await sign_in(page, f"{web_node.http}/admin?from={START}&to={END}&tz={TZ}", admin["email"])
        await expect(page.locator("#dashboard")).to_be_visible(timeout=15000)
        await expect(page.locator("#analytics-result")).to_have_text(
            f"{START} … {END} ({TZ})", timeout=15000
        )

        analyses = page.locator("#chart-analyses rect")
        drawn = {
            (
                await r.get_attribute("data-date"),
                await r.get_attribute("data-key"),
            ): await r.get_attribute("data-count")
            for r in await analyses.all()
        }
        assert drawn == {
            ("2031-03-02", "done"): "3",
            ("2031-03-04", "done"): "1",
            ("2031-03-04", "failed:model_error"): "1",
            ("2031-03-05", "cancelled"): "1",
        }
        active = {
            await r.get_attribute("data-date"): await r.get_attribute("data-count")
            for r in await page.locator("#chart-active rect").all()
        }
        assert active == {
            "2031-03-02": "2",
            "2031-03-04": "1",
            "2031-03-05": "1",
            "2031-03-06": "1",
        }
        for chart, expected in (
            ("#chart-seasons", {"autumn": "1", "winter": "1"}),
            ("#chart-shapes", {"oval": "1", "round": "1"}),
        ):
            bars = {
                await r.get_attribute("data-key"): await r.get_attribute("data-count")
                for r in await page.locator(f"{chart} rect").all()
            }
            assert bars == expected, chart
        await expect(page.locator("#analytics-total-analyses")).to_have_text("6")
        await expect(page.locator("#analytics-total-active-users")).to_have_text("3")
        await expect(page.locator("#analytics-total-conversions")).to_have_text("2")
        await expect(page.locator("#legend-analyses")).to_contain_text("failed:model_error")

        # a bad zone is answered in the section, not as a page error
        await page.fill("#analytics-tz", "Mars/Olympus_Mons")
        await page.click("#analytics-form button[type=submit]")
        await expect(page.locator("#analytics-result")).to_contain_text("is not an IANA time zone")
        await expect(page.locator("#analytics-tz")).to_have_attribute("aria-invalid", "true")
        assert page.errors == []  # type: ignore[attr-defined]
    finally:
        await unseed(pg_url, users)
