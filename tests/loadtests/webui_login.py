"""A minimal --web-login setup for the web UI tests (add with `-f locustfile.py,tests/loadtests/webui_login.py`):
Flask-Login with one account, logged in by visiting LOGIN_PATH, as Locust's authentication docs describe."""

from __future__ import annotations

from typing import Any

from flask_login import UserMixin, login_user
from locust import events

LOGIN_PATH = "/test-login"


class Account(UserMixin):
    """The one account; Flask-Login only needs its id."""

    def __init__(self, account_id: str) -> None:
        self.id = account_id


@events.init.add_listener
def set_up_login(environment: Any, web_ui: Any = None, **_kwargs: Any) -> None:
    if web_ui is None or not web_ui.web_login:
        return
    web_ui.app.secret_key = "web-ui-test-only"
    web_ui.login_manager.user_loader(Account)

    @web_ui.app.route(LOGIN_PATH)
    def test_login() -> str:
        login_user(Account("tester"))
        return "logged in"
