"""The seed's story, told through the dashboard as a person sees it: sign in,
create, edit variants, activate, traffic, charts and results, a user pinned
and released, the salt rotated, the experiment ended; a viewer who can only
look; a function's error shown where it happened; no secret in the browser."""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from typing import Any

import httpx
import psycopg
import pytest
from playwright.sync_api import Browser, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from psycopg.types.json import Jsonb

from devstack import auth_users
from tests.browser.conftest import (
    GRANTOR,
    PASSWORD,
    SCREENSHOTS,
    Person,
    open_page,
    shot,
    sign_in,
    wait_until,
)
from tests.e2e.conftest import E2EStack
from tests.stack.conftest import key_headers

KEY = f"browser-ranker-{uuid.uuid4().hex[:6]}"
USERS = 40


def service(site: E2EStack, name: str, body: dict[str, Any]) -> Any:
    """A function call with the secret key, as a server would make it (never the browser)."""
    response = httpx.post(f"{site.url}/functions/v1/{name}", json=body, headers=key_headers(site.keys.secret))
    assert response.status_code == 200, response.text
    return response.json()["data"]


def play_traffic(site: E2EStack, shopper: str) -> dict[str, Counter[str]]:
    """A recommender's day: assign through rec_assign_variants, log impressions
    tagged with the map, and clicks on some. Returns what the day should show."""
    users = [shopper] + [str(uuid.uuid5(uuid.NAMESPACE_URL, f"{KEY}/{i}")) for i in range(USERS - 1)]
    seen: dict[str, Counter[str]] = {"impressions": Counter(), "users": Counter(), "engaged": Counter()}
    with (
        httpx.Client(base_url=site.url, headers=key_headers(site.keys.secret)) as client,
        psycopg.connect(site.db_url) as conn,
    ):
        for i, user in enumerate(users):
            answer = client.post("/rest/v1/rpc/rec_assign_variants", json={"user_id": user})
            assert answer.status_code == 200, answer.text
            tags = answer.json()
            variant = tags[KEY]
            shown = 2 + i % 3
            engaged = (i % 2) + (1 if variant == "treatment" and shown > 2 else 0)
            seen["impressions"][variant] += shown
            seen["users"][variant] += 1
            seen["engaged"][variant] += engaged
            for n in range(shown):
                row = conn.execute(
                    "insert into rec_impressions (user_id, item_id, request_context)"
                    " values (%s, %s, %s) returning id",
                    [user, f"item-{n}", Jsonb({"experiments": tags})],
                ).fetchone()
                assert row is not None
                if n < engaged:
                    conn.execute(
                        "insert into rec_outcomes (impression_id, user_id, outcome) values (%s, %s, 'click')",
                        [row[0], user],
                    )
        conn.commit()
    return seen


def confirm(page: Page, says: list[str], button: str) -> None:
    dialog = page.get_by_role("dialog")
    for text in says:
        expect(dialog).to_contain_text(text)
    dialog.get_by_role("button", name=button).click()
    expect(dialog).to_have_count(0)


def test_admin_story(browser: Browser, site: E2EStack, people: dict[str, Person]) -> None:
    page, problems = open_page(browser, site)
    page.goto("/dashboard/")
    expect(page.get_by_role("form", name="Sign in")).to_be_visible()
    expect(page.get_by_role("navigation", name="Pages")).to_be_hidden()
    shot(page, "00-sign-in")
    sign_in(page, people["admin"])
    expect(page.get_by_test_id("person")).to_have_text(people["admin"].email)
    expect(page.get_by_test_id("role")).to_have_text("admin")
    expect(page.get_by_role("table", name="Experiments")).to_contain_text("swipe-blend")
    shot(page, "01-experiments")

    # Create a draft.
    page.get_by_role("link", name="New experiment").click()
    page.get_by_label("Key", exact=True).fill(KEY)
    page.get_by_label("Name", exact=True).fill("Browser ranker")
    expect(page.get_by_label("Variant 2 share")).to_have_text("50.0%")
    shot(page, "02-new-experiment")
    page.get_by_role("button", name="Create draft").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(KEY)
    expect(page.get_by_role("heading", level=1)).to_contain_text("draft")

    # Edit its variants: shares follow the weights as they are typed.
    page.get_by_role("link", name="Edit").click()
    page.get_by_label("Variant 1 weight").fill("60")
    page.get_by_label("Variant 2 weight").fill("40")
    expect(page.get_by_label("Variant 1 share")).to_have_text("60.0%")
    expect(page.get_by_label("Variant 2 share")).to_have_text("40.0%")
    page.get_by_role("button", name="Add variant").click()
    page.get_by_label("Variant 3 name").fill("spare")
    page.get_by_label("Variant 3 weight").fill("100")
    expect(page.get_by_label("Variant 1 share")).to_have_text("30.0%")
    page.get_by_role("button", name="Remove variant 3").click()
    expect(page.get_by_label("Variant 1 share")).to_have_text("60.0%")
    page.get_by_role("button", name="Save changes").click()
    facts = page.get_by_role("table", name="Variants and assignments")
    expect(facts).to_contain_text("60.0%")
    expect(facts).to_contain_text("40.0%")

    # Activate, after a confirmation naming the experiment and what follows.
    page.get_by_role("button", name="Activate").click()
    confirm(page, [KEY, "variants are locked"], "Activate")
    expect(page.get_by_role("heading", level=1)).to_contain_text("active")
    expect(page.get_by_role("button", name="Activate")).to_have_count(0)
    page.get_by_role("link", name="Edit").click()
    expect(page.get_by_role("group", name="Variants")).to_contain_text("Variants are locked")
    expect(page.get_by_label("Variant 1 weight")).to_be_disabled()
    expect(page.get_by_role("button", name="Add variant")).to_have_count(0)
    shot(page, "02-edit-active")
    page.get_by_role("link", name="Cancel").click()

    shopper = put_person(site, f"shopper-{KEY}@browser.test")
    seen = play_traffic(site, shopper)
    page.reload()
    charts_and_results(page, site, seen)
    shot(page, "03-experiment")
    page.screenshot(path=str(SCREENSHOTS / "03-experiment-full.png"), full_page=True)

    # A user by e-mail prefix: their experiments, then pinned and released.
    page.get_by_role("link", name="Users").click()
    page.get_by_label("User", exact=True).fill("shopper-")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("table", name="Users found")).to_contain_text(f"shopper-{KEY}@browser.test")
    page.get_by_role("link", name=shopper).click()
    row = page.get_by_role("table", name="User's experiments").locator(f"tr[data-key='{KEY}']")
    expect(row).to_contain_text("auto")
    before = row.locator("td").nth(2).inner_text()
    other = "treatment" if before == "control" else "control"
    page.get_by_label("Experiment", exact=True).select_option(KEY)
    page.get_by_label("Variant", exact=True).select_option(other)
    page.get_by_role("button", name="Force variant").click()
    expect(row).to_contain_text("manual")
    expect(row).to_contain_text(other)
    expect(row).to_contain_text("you")
    expect(row.locator("td").nth(6)).to_have_text(before)  # what the rule would give
    shot(page, "04-user")

    page.get_by_role("link", name="Audit log").click()
    page.get_by_label("Action").select_option("set_user_variant")
    audit = page.get_by_role("table", name="Audit entries")
    expect(audit.locator("tbody tr").first).to_contain_text(shopper)
    expect(audit.locator("tbody tr").first).to_contain_text(people["admin"].user_id[:8])
    shot(page, "05-audit")

    page.go_back()
    row.get_by_role("button", name="Reset to auto").click()
    expect(row).to_contain_text("auto")
    expect(row).to_contain_text(before)
    expect(row.get_by_role("button", name="Reset to auto")).to_have_count(0)

    # Rotate the salt with re-bucketing, then end.
    page.goto(f"/dashboard/#/experiments/{KEY}")
    page.get_by_role("button", name="Rotate salt").click()
    page.get_by_label("Re-bucket users").check()
    confirm(
        page,
        [KEY, "users who already have a variant keep it", "every automatic assignment is deleted"],
        "Rotate salt",
    )
    trail = page.get_by_role("table", name="Audit entries")
    expect(trail.locator("tbody tr").first).to_contain_text("rotate_salt")
    expect(trail.locator("tbody tr").first).to_contain_text("reassign: true")
    page.get_by_role("button", name="End").click()
    confirm(page, [KEY, "cannot be restarted"], "End")
    expect(page.get_by_role("heading", level=1)).to_contain_text("ended")
    expect(page.get_by_role("button", name="End")).to_have_count(0)
    expect(trail.locator("tbody tr").first).to_contain_text("end_experiment")
    assert problems.items == []


def put_person(site: E2EStack, email: str) -> str:
    with psycopg.connect(site.db_url) as conn:
        user_id, _ = auth_users.put_user(conn, email, PASSWORD)
        conn.commit()
    return user_id


# The chart's (name, last y) pairs once it has data (and, if given, exactly
# the expected values): the chart may be drawn before its data arrives.
_LAST_POINTS_ARE = """({id, expected}) => {
    const el = document.getElementById(id);
    if (!el || !Array.isArray(el.data) || el.data.length === 0) return false;
    const points = el.data.map((t) => [t.name, t.y[t.y.length - 1]]);
    if (expected === null) return points;
    const same = points.length === Object.keys(expected).length
        && points.every(([name, y]) => expected[name] === y);
    return same ? points : false;
}"""


def charts_and_results(page: Page, site: E2EStack, seen: dict[str, Counter[str]]) -> None:
    """The charts carry the day's numbers; the results show what the function computed."""
    for chart, counts in (("impressions", seen["impressions"]), ("users", seen["users"])):
        plot = page.locator(f"#chart-{chart}")
        expect(plot.locator(".main-svg").first).to_be_visible()
        expected = {"control": counts["control"], "treatment": counts["treatment"]}
        try:
            traces = wait_until(page, _LAST_POINTS_ARE, {"id": f"chart-{chart}", "expected": expected})
        except PlaywrightTimeoutError:  # say what it shows instead
            traces = wait_until(page, _LAST_POINTS_ARE, {"id": f"chart-{chart}", "expected": None})
        assert dict(traces) == expected
    expect(page.locator("#chart-engagement .main-svg").first).to_be_visible()
    rates = dict(wait_until(page, _LAST_POINTS_ARE, {"id": "chart-engagement", "expected": None}))
    for variant in ("control", "treatment"):
        assert rates[variant] == pytest.approx(seen["engaged"][variant] / seen["impressions"][variant])

    answer = service(site, "admin-experiment-results", {"key": KEY})
    table = page.get_by_role("table", name="Results")
    expect(table).to_be_visible()
    for comparison in answer["comparisons"]:
        row = table.locator(
            f"tr[data-metric='{comparison['metric']}'][data-variant='{comparison['variant']}']"
        )
        expect(row).to_contain_text(signed(comparison["lift"]))
        expect(row).to_contain_text(
            f"{signed(comparison['lift_ci_low'])}, {signed(comparison['lift_ci_high'])}"
        )
        expect(row.locator("svg.ci")).to_be_visible()
        if comparison["p_value"] is not None and comparison["p_value"] >= 0.0001:
            expect(row).to_contain_text(f"{comparison['p_value']:.4f}")
    split = page.get_by_role("table", name="Analysed users per variant")
    for variant in answer["variants"]:
        line = split.locator("tr", has_text=re.compile(rf"^{variant['variant']}"))
        expect(line).to_contain_text(str(variant["users"]))
        expect(line).to_contain_text(str(variant["impressions"]))
    assert answer["health"]["analysed_users"] == USERS
    health = page.get_by_role("region", name="Health")
    expect(health).to_contain_text(f"Analysed users{USERS}")
    for warning in answer["warnings"]:
        expect(health).to_contain_text(warning)


def signed(value: float | None) -> str:
    return "—" if value is None else f"{'+' if value > 0 else ''}{value * 100:.1f}%"


def test_function_error_shows_next_to_its_cause(
    browser: Browser, site: E2EStack, people: dict[str, Person]
) -> None:
    key = f"browser-locked-{uuid.uuid4().hex[:6]}"
    admin = people["admin"].user_id
    service(
        site,
        "admin-create-experiment",
        {"key": key, "variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}], "admin_id": admin},
    )
    page, _ = open_page(browser, site)
    sign_in(page, people["admin"])
    page.goto(f"/dashboard/#/experiments/{key}/edit")
    page.get_by_label("Variant 2 weight").fill("3")
    service(site, "admin-activate-experiment", {"key": key, "admin_id": admin})  # someone else, meanwhile
    page.get_by_role("button", name="Save changes").click()
    form = page.get_by_role("form", name="Edit experiment")
    alert = form.get_by_role("alert", name="Experiment error")
    expect(alert).to_contain_text("Saving failed")
    expect(alert).to_contain_text(f"variants of experiment '{key}' cannot change: it is active")
    expect(alert).to_contain_text("Variants are editable only while draft")
    expect(alert).to_be_in_viewport()
    shot(page, "06-function-error")


def test_viewer_sees_no_write_controls_and_is_refused(
    browser: Browser, site: E2EStack, people: dict[str, Person]
) -> None:
    with psycopg.connect(site.db_url) as conn:  # some traffic of its own, so the charts have data
        for variant in ("control", "blend"):
            tag = Jsonb({"experiments": {"swipe-blend": variant}})
            conn.execute(
                "insert into rec_impressions (user_id, item_id, request_context) values (%s, 'i', %s)",
                [str(uuid.uuid4()), tag],
            )
        conn.commit()
    page, problems = open_page(browser, site)
    sign_in(page, people["viewer"])
    expect(page.get_by_test_id("role")).to_have_text("viewer")
    expect(page.get_by_role("table", name="Experiments")).to_contain_text("swipe-blend")
    expect(page.get_by_role("link", name="New experiment")).to_have_count(0)
    page.goto("/dashboard/#/experiments/swipe-blend")
    expect(page.get_by_role("heading", level=1)).to_contain_text("swipe-blend")
    expect(page.get_by_role("table", name="Variants and assignments")).to_be_visible()
    expect(page.locator("#chart-users .main-svg").first).to_be_visible()
    expect(page.get_by_role("table", name="Results")).to_be_visible()
    for name in ("Edit", "Activate", "End", "Rotate salt"):
        expect(page.get_by_role("button", name=name, exact=True)).to_have_count(0)
    expect(page.get_by_role("link", name="Edit", exact=True)).to_have_count(0)
    shot(page, "07-viewer-experiment")
    page.goto("/dashboard/#/users/00000000-0000-4000-8000-0000000000aa")
    expect(page.get_by_role("table", name="User's experiments")).to_be_visible()
    expect(page.get_by_role("form", name="Force a variant")).to_have_count(0)

    audit_rows = site.sql("select count(*) from rec_audit_log")[0][0]
    refused = page.evaluate(
        """async () => {
            const session = JSON.parse(sessionStorage.getItem("recsys-exp.session"));
            const config = await (await fetch("/dashboard/config.json")).json();
            const response = await fetch("/functions/v1/admin-end-experiment", {
              method: "POST",
              headers: { apikey: config.publishable_key, authorization: `Bearer ${session.access_token}`,
                         "content-type": "application/json" },
              body: JSON.stringify({ key: "swipe-blend" }),
            });
            return { status: response.status, body: await response.json() };
        }"""
    )
    assert refused["status"] == 403, refused
    assert "viewer" in refused["body"]["error"]["message"]
    assert site.sql("select count(*) from rec_audit_log")[0][0] == audit_rows
    assert site.sql("select status from rec_experiments where key = 'swipe-blend'")[0][0] == "active"
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    wait_until(page, "() => sessionStorage.length === 0")
    assert problems.items == []


def test_no_secret_reaches_the_browser(browser: Browser, site: E2EStack, people: dict[str, Person]) -> None:
    secrets = [site.keys.secret, site.keys.jwt_secret, site.keys.service_role_jwt, "sb_secret_"]
    index = httpx.get(f"{site.url}/dashboard/")
    policy = index.headers["content-security-policy"]
    assert (
        "script-src 'self';" in policy and "unsafe-eval" not in policy and "frame-ancestors 'none'" in policy
    )
    files = ["", "app.css", "config.json", *re.findall(r'src="([^"]+)"', index.text)]
    files += [
        f"js/{name}"
        for name in (
            "main.js",
            "api.js",
            "ui.js",
            "experiments.js",
            "experiment.js",
            "charts.js",
            "results.js",
            "users.js",
            "audit.js",
        )
    ]
    for name in files:
        body = httpx.get(f"{site.url}/dashboard/{name}").text
        assert not any(secret in body for secret in secrets), name
    config = httpx.get(f"{site.url}/dashboard/config.json").json()
    assert config == {"supabase_url": site.url, "publishable_key": site.keys.publishable}

    page, _ = open_page(browser, site)
    sign_in(page, people["admin"])
    storage = page.evaluate(
        "() => JSON.stringify({ session: { ...sessionStorage }, local: { ...localStorage } })"
    )
    stored = json.loads(storage)
    assert stored["local"] == {}
    assert set(stored["session"]) == {"recsys-exp.session"}
    assert not any(secret in storage for secret in secrets)
    assert page.context.cookies() == []


def test_sign_in_refusals_are_shown(browser: Browser, site: E2EStack) -> None:
    page, _ = open_page(browser, site)
    outsider = put_person(site, f"outsider-{uuid.uuid4().hex[:6]}@browser.test")
    assert outsider
    form = page.get_by_role("form", name="Sign in")
    page.goto("/dashboard/")
    page.get_by_label("E-mail").fill("viewer@browser.test")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(form.get_by_role("alert")).to_contain_text("Sign in failed")
    expect(form.get_by_role("alert")).to_contain_text("Invalid login credentials")

    email = site.sql("select email from auth.users where id = %s", [outsider])[0][0]
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(form.get_by_role("alert")).to_contain_text("not an admin")
    expect(page.get_by_test_id("role")).to_have_count(0)
    wait_until(page, "() => sessionStorage.length === 0")


def test_session_refreshes_and_a_dead_session_asks_to_sign_in_again(
    browser: Browser, site: E2EStack, people: dict[str, Person]
) -> None:
    page, problems = open_page(browser, site)
    sign_in(page, people["viewer"])
    slot = "'recsys-exp.session'"
    stored = f"JSON.parse(sessionStorage.getItem({slot}))"
    change = f"(patch) => sessionStorage.setItem({slot}, JSON.stringify({{...{stored}, ...patch}}))"
    first = page.evaluate(f"() => {stored}")
    # As if the access token were about to expire: the next call refreshes it first.
    page.evaluate(change, {"expires_at": 0})
    page.get_by_role("link", name="Audit log").click()
    expect(page.get_by_role("table", name="Audit entries")).to_be_visible()
    renewed = wait_until(
        page,
        f"(old) => {{ const s = {stored}; return s && s.access_token !== old && s; }}",
        first["access_token"],
    )
    assert renewed["access_token"] != first["access_token"]
    assert renewed["refresh_token"] != first["refresh_token"]
    assert renewed["role"] == "viewer" and renewed["expires_at"] > 0

    # A token the functions no longer accept (its signature broken): back to the
    # sign-in form, with the reason.
    header, payload, _ = renewed["access_token"].split(".")
    page.evaluate(change, {"access_token": f"{header}.{payload}.{'A' * 86}"})
    page.get_by_role("link", name="Experiments", exact=True).click()
    expect(page.get_by_role("form", name="Sign in")).to_contain_text("Your session ended")
    wait_until(page, "() => sessionStorage.length === 0")
    assert problems.items == []


def test_long_experiment_lists_page_and_filter(
    browser: Browser, site: E2EStack, people: dict[str, Person]
) -> None:
    batch = uuid.uuid4().hex[:6]
    for n in range(23):
        service(
            site,
            "admin-create-experiment",
            {"key": f"paged-{batch}-{n:02d}", "variants": [{"name": "a", "weight": 1}], "admin_id": GRANTOR},
        )
    page, _ = open_page(browser, site)
    sign_in(page, people["viewer"])
    page.get_by_label("Search").fill(f"paged-{batch}")
    page.get_by_role("button", name="Filter").click()
    table = page.get_by_role("table", name="Experiments")
    expect(table.locator("tbody tr")).to_have_count(20)
    expect(page.get_by_text("1\N{EN DASH}20 of 23")).to_be_visible()
    page.get_by_role("button", name="Next").click()
    expect(table.locator("tbody tr")).to_have_count(3)
    expect(page.get_by_text("21\N{EN DASH}23 of 23")).to_be_visible()
    page.get_by_label("Status").select_option("active")
    expect(table).to_contain_text("No experiment matches this filter")


def test_sample_ratio_mismatch_is_flagged_above_the_results(
    browser: Browser, site: E2EStack, people: dict[str, Person]
) -> None:
    key = f"browser-srm-{uuid.uuid4().hex[:6]}"
    admin = people["admin"].user_id
    variants = [{"name": "on", "weight": 1}, {"name": "off", "weight": 0}]
    service(site, "admin-create-experiment", {"key": key, "variants": variants, "admin_id": admin})
    service(site, "admin-activate-experiment", {"key": key, "admin_id": admin})
    with psycopg.connect(site.db_url) as conn:  # a recommender that tags a variant nobody can get
        for n in range(6):
            tag = Jsonb({"experiments": {key: "off" if n % 2 else "on"}})
            conn.execute(
                "insert into rec_impressions (user_id, item_id, request_context) values (%s, 'i', %s)",
                [str(uuid.uuid4()), tag],
            )
        conn.commit()
    answer = service(site, "admin-experiment-results", {"key": key})
    assert answer["health"]["srm"] is True and answer["warnings"]

    page, _ = open_page(browser, site)
    sign_in(page, people["viewer"])
    page.goto(f"/dashboard/#/experiments/{key}")
    results = page.get_by_role("region", name="Results")
    banner = results.get_by_role("alert")
    expect(banner).to_contain_text("Sample ratio mismatch")
    expect(banner).to_contain_text("don't trust these numbers until it is explained")
    assert banner.bounding_box()["y"] < results.get_by_role("table", name="Results").bounding_box()["y"]
    health = page.get_by_role("region", name="Health")
    expect(health).to_contain_text("mismatch")
    for warning in answer["warnings"]:
        expect(health.get_by_role("list", name="Warnings")).to_contain_text(warning)
    shot(page, "08-srm")
