"""The dashboard in a real browser: Playwright for Python driving Debian's
Chromium (/usr/bin/chromium; Playwright's own browser download is not used),
headless, against the whole local stack served by uvicorn (as tests/e2e
serves it), with people signed in through the stack's Supabase Auth stand-in.

Without Chromium these tests skip with a one-line reason on a laptop, and
fail in CI (CI=true), where .ci/run installs it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from devstack import auth_users, migrate, postgres
from tests.e2e.conftest import E2EStack, serve_stack

CHROMIUM = Path(os.environ.get("RECSYS_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = Path(__file__).parent / "screenshots"
VIEWPORT = {"width": 1280, "height": 800}
PASSWORD = "browser tests only"
GRANTOR = "00000000-0000-4000-8000-00000000b0b0"
# Every wait is for something (an element, a request's answer, a page state),
# never a fixed pause; the limit is generous so a machine whose cores are
# busy with another test run still passes. Playwright's expect() has its
# own default (5 s), so it is set here too.
WAIT_MS = 90_000
expect.set_options(timeout=WAIT_MS)


def _missing() -> str | None:
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Module scope: Playwright's sync API keeps an event loop running in this
    # thread while it is open, which async tests after these could not share.
    missing = _missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests cannot run in CI: {missing}")
        pytest.skip(missing)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield launched
        finally:
            launched.close()


@dataclass(frozen=True)
class Person:
    email: str
    user_id: str
    role: str


@pytest.fixture(scope="session")
def site(pg_server: postgres.Server) -> Iterator[E2EStack]:
    with postgres.fresh_database(pg_server, prefix="rec_browser") as url:
        migrate.migrate(url, seed=True)
        with serve_stack(url) as stack:
            yield stack


@pytest.fixture(scope="session")
def people(site: E2EStack) -> dict[str, Person]:
    """An admin and a viewer with passwords, as `recsys-exp admin add` makes them."""
    found = {}
    with psycopg.connect(site.db_url) as conn:
        for role in ("admin", "viewer"):
            email = f"{role}@browser.test"
            user_id, _ = auth_users.put_user(conn, email, PASSWORD)
            conn.execute("select rec_grant_admin(%s, %s, %s)", [user_id, role, GRANTOR])
            found[role] = Person(email, user_id, role)
        conn.commit()
    return found


class Problems:
    """What went wrong in the page that a person would not see: script errors,
    CSP violations, failed requests other than the function errors a test provokes."""

    def __init__(self, page: Page) -> None:
        self.items: list[str] = []
        page.on("pageerror", lambda error: self.items.append(f"page error: {error}"))
        page.on("console", self._console)

    def _console(self, message: Any) -> None:
        if message.type == "error" and "status of 4" not in message.text:
            self.items.append(f"console: {message.text}")


def open_page(browser: Browser, site: E2EStack) -> tuple[Page, Problems]:
    context = browser.new_context(viewport=VIEWPORT, base_url=site.url)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.set_default_navigation_timeout(WAIT_MS)
    return page, Problems(page)


def wait_until(page: Page, condition: str, arg: Any = None) -> Any:
    """Wait for a JavaScript condition on the page (e.g. a chart's data, the
    session storage) to hold; its value."""
    return page.wait_for_function(condition, arg=arg, timeout=WAIT_MS).json_value()


def sign_in(page: Page, person: Person) -> None:
    page.goto("/dashboard/")
    page.get_by_label("E-mail").fill(person.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_test_id("role").wait_for()


def shot(page: Page, name: str) -> None:
    """Save the page as a person sees it at 1280x800; it must fit without scrolling sideways."""
    wide, seen = page.evaluate("() => [document.body.scrollWidth, document.documentElement.clientWidth]")
    assert wide <= seen, f"{name}: the page scrolls sideways ({wide} > {seen} px)"
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
