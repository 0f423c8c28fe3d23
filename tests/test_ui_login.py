"""Sign-in to the UI without a database behind it (the gate comes before any query): wrong
passwords are rate limited, OIDC shows its sign-in button and nothing else, and bad OIDC settings
stop `vitmon ui` with one line."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from monitor.devstack.processes import free_port
from tests.support import VITMON

APP = str(Path(__file__).parents[1] / "ui" / "app.py")
NOWHERE = "postgresql://nobody@127.0.0.1:1/none"  # never connected to: the gate stops first
OIDC = {"VITMON_UI__OIDC__ISSUER": "https://id.example.com/realms/ml",
        "VITMON_UI__OIDC__CLIENT_ID": "vitmon", "VITMON_UI__OIDC__CLIENT_SECRET": "s",
        "VITMON_UI__OIDC__COOKIE_SECRET": "k" * 32}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key in [k for k in os.environ if k.startswith("VITMON_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("VITMON_DATABASE_URL", NOWHERE)
    st.cache_data.clear()
    st.cache_resource.clear()
    return monkeypatch


def _app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["page"] = "overview"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _submit(at: AppTest, password: str) -> str:
    at.text_input[0].input(password)
    at.button[0].click().run()
    return at.error[0].value if at.error else ""


def test_wrong_passwords_are_rate_limited(env):
    env.setenv("VITMON_UI__PASSWORD", "s3cret")
    env.setenv("VITMON_UI__LOGIN__MAX_FAILURES", "3")
    at = _app()
    assert [_submit(at, "guess") for _ in range(2)] == ["Wrong password."] * 2
    assert "try again in 60 s" in _submit(at, "guess")
    # locked out: even the right password is not checked, and nothing is shown
    assert _submit(at, "s3cret").startswith("Too many wrong passwords. Try again in")
    assert not at.metric and not at.dataframe and [t.value for t in at.title] == ["vitmon"]
    # another browser session from the same address is locked out too (the limit is per
    # client, not per session, so reloading the page does not reset it)
    again = _app()
    assert _submit(again, "s3cret").startswith("Too many wrong passwords")


def test_oidc_shows_only_the_sign_in_button(env):
    for k, v in OIDC.items():
        env.setenv(k, v)
    at = _app()
    assert [b.label for b in at.button] == ["Sign in with single sign-on"]
    assert not at.text_input and not at.metric and not at.dataframe
    env.setenv("VITMON_UI__PASSWORD", "s3cret")  # both: the button and the password form
    st.cache_resource.clear()
    at = _app()
    assert [b.label for b in at.button][0] == "Sign in with single sign-on"
    assert len(at.text_input) == 1


@pytest.mark.parametrize("issuer,needle", [
    ("login.example.com", "ui.oidc.issuer (from VITMON_UI__OIDC__ISSUER): value error, must be "
                          "an https:// url"),
    ("https://127.0.0.1:1/realms/ml", "ui.oidc.issuer: no OIDC discovery document at "
                                      "https://127.0.0.1:1/realms/ml/.well-known/"),
])
def test_bad_oidc_issuer_stops_vitmon_ui_with_one_line(issuer: str, needle: str):
    env = {k: v for k, v in os.environ.items() if not k.startswith("VITMON_")}
    env.update(OIDC, VITMON_UI__OIDC__ISSUER=issuer, VITMON_DATABASE_URL=NOWHERE)
    out = subprocess.run([VITMON, "ui", "--port", str(free_port())], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().count("\n") == 0 and "Traceback" not in out.stderr
    assert needle in out.stderr, out.stderr
