"""The sign-in form once an account has failed too often (the service answers 429 for a while): the user is told
to wait, not that the password is wrong or that "loading failed" in English. A module of its own: its failures
count against the server's client address."""

from __future__ import annotations

import httpx

from tests.dashboard.browser import PHONE, Browser
from tests.dashboard.live import PASSWORD, LiveServer


def test_a_throttled_sign_in_says_to_wait(browser: Browser, live: LiveServer) -> None:
    limit = live.app.state.settings.login_max_failures
    for _ in range(limit):
        wrong = httpx.post(f"{live.url}/api/v1/auth/token", data={"username": "sup", "password": "not-" + PASSWORD})
        assert wrong.status_code == 401, wrong.text
    browser.use(PHONE)
    browser.go("#/")
    browser.driver.execute_script("sessionStorage.clear()")
    browser.driver.refresh()
    browser.type("#username", "sup")
    browser.type("#password", PASSWORD)  # even the right password waits: the account is paused
    browser.click("#login-submit")
    message = browser.find("#login-error")
    browser.wait(lambda _: message.is_displayed() and message.text, "the refusal shown")
    assert message.text == "登录失败次数过多，暂时不能登录，请稍后再试。"
