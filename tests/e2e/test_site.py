"""The pricing page and accounts, as a person uses them in Chromium."""

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import SHOTS, unique_email


def test_four_plans_render(live_server, page):
    page.goto(f"{live_server.url}/pricing")
    names = page.locator(".plan-name")
    expect(names).to_have_text(["Starter", "Professional", "Business", "Agency"])
    expect(page.locator("#plan-professional")).to_contain_text("$12.99")
    expect(page.locator("#plan-professional")).to_contain_text("Most popular")


@pytest.mark.parametrize("javascript", [False, True])
def test_cycle_switch_works_without_javascript(new_context, live_server, javascript):
    context = new_context(java_script_enabled=javascript)
    page = context.new_page()
    page.goto(f"{live_server.url}/pricing")
    page.get_by_role("navigation", name="Billing cycle").get_by_role(
        "link", name=re.compile("Yearly")
    ).click()
    expect(page).to_have_url(re.compile(r"cycle=yearly"))
    expect(page.locator("#plan-professional")).to_contain_text("$129.90")
    expect(page.locator("#plan-professional")).to_contain_text("save $25.98")
    page.get_by_role("link", name="Monthly").click()
    expect(page.locator("#plan-professional")).to_contain_text("$12.99")
    context.close()


def test_signup_logout_login(live_server, page):
    email = unique_email("grace")
    page.goto(f"{live_server.url}/signup")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("a long enough password")
    page.get_by_role("button", name="Sign up").click()
    expect(page).to_have_url(f"{live_server.url}/account")
    expect(page.get_by_text(f"Signed in as {email}")).to_be_visible()

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_text("You have been logged out.")).to_be_visible()

    page.get_by_role("link", name="Log in").click()
    page.get_by_label("Email").fill(email.upper())
    page.get_by_label("Password").fill("wrong password!!")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("Incorrect email or password.")).to_be_visible()
    page.get_by_label("Password").fill("a long enough password")
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{live_server.url}/account")


def test_anonymous_plan_choice_is_shown_on_signup(live_server, page):
    page.goto(f"{live_server.url}/pricing?cycle=yearly")
    page.locator("#plan-professional").get_by_role(
        "link", name=re.compile("Choose Professional")
    ).click()
    expect(page.locator(".plan-summary")).to_have_text(
        "You are subscribing to Professional, yearly."
    )


@pytest.mark.parametrize(("width", "height"), [(390, 844), (1280, 800), (360, 740)])
def test_pricing_fits_the_screen(new_context, live_server, width, height):
    context = new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.goto(f"{live_server.url}/pricing")
    # No horizontal scrolling from a 360 px phone up.
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"pricing-{width}x{height}.png"), full_page=True)
    context.close()


def test_keyboard_focus_is_visible(live_server, page):
    page.goto(f"{live_server.url}/pricing")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
