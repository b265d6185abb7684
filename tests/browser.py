"""Debian's Chromium driven by Playwright, for every browser test (a fixture of conftest.py).

Skipped with the reason when Chromium or the playwright package is absent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.async_api import Browser

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Screenshots of the browser tests, kept for a person to look at.
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():  # noqa: ASYNC240 - one stat, before anything runs
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    api = pytest.importorskip("playwright.async_api", reason="the playwright package is absent")
    async with api.async_playwright() as pw:
        launched: Browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield launched
        finally:
            await launched.close()
