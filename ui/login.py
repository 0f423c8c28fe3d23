"""Sign-in: nothing is shown until the user is signed in, when ``ui.password`` and/or ``ui.oidc``
are set.

* **OIDC** (``ui.oidc``): Streamlit's built-in ``st.login`` against the company's provider;
  ``vitmon ui`` hands it the provider settings (:mod:`ui.launch`), the sidebar shows who is signed
  in and a sign-out button.
* **Shared password** (``ui.password``): compared in constant time, never echoed or logged;
  wrong passwords are rate limited per client address (:mod:`ui.ratelimit`, ``ui.login``).

Query parameters stay in the URL, so an alert's deep link still opens its view after sign-in.
"""

from __future__ import annotations

import hmac
import time

import streamlit as st
from pydantic import SecretStr

from monitor.app.ui_settings import UISettings
from ui.ratelimit import LoginLimiter

_KEY = "vitmon_authenticated"


def password_ok(given: str, expected: SecretStr) -> bool:
    """Constant-time comparison (no timing hint of how much of the password matched).

    >>> password_ok("s3cret", SecretStr("s3cret")), password_ok("s3cre", SecretStr("s3cret"))
    (True, False)
    """
    return hmac.compare_digest(given.encode(), expected.get_secret_value().encode())


@st.cache_resource(show_spinner=False)
def _limiter(max_failures: int, window_s: float, lockout_s: float) -> LoginLimiter:
    """One limiter per server process (shared by every session)."""
    return LoginLimiter(max_failures, window_s, lockout_s)


def _client() -> str:
    try:
        ip = st.context.ip_address
    except Exception:  # noqa: BLE001 -- no client address (bare script run)
        return "unknown"
    return ip if isinstance(ip, str) and ip else "unknown"  # AppTest gives a mock


def _oidc_user() -> str | None:
    """Who is signed in through OIDC (name or e-mail), None when nobody is."""
    try:
        user = st.user
        if not user.get("is_logged_in"):
            return None
        return str(user.get("email") or user.get("name") or user.get("sub") or "signed in")
    except Exception:  # noqa: BLE001 -- no auth configured in this server
        return None


def require(ui: UISettings) -> None:
    """Stop the script with the sign-in page unless no sign-in is configured or it happened."""
    password = ui.password if ui.password and ui.password.get_secret_value() else None
    # an empty password (an unset ${VAR} in docker-compose) means no login, not "log in with ''"
    if password is None and ui.oidc is None:
        return
    who = _oidc_user() if ui.oidc is not None else None
    if who is not None:
        st.sidebar.caption(f"Signed in as **{who}**")
        if st.sidebar.button("Sign out"):
            st.logout()
        return
    if st.session_state.get(_KEY):
        st.sidebar.caption("Signed in with the shared password")
        if st.sidebar.button("Sign out"):
            del st.session_state[_KEY]
            st.rerun()
        return
    st.title("vitmon")
    if ui.oidc is not None and st.button(ui.oidc.label, type="primary"):
        st.login()
    if password is not None:
        _password_form(password, ui)
    st.stop()


def _password_form(expected: SecretStr, ui: UISettings) -> None:
    limits = ui.login
    limiter = _limiter(limits.max_failures, limits.window_s, limits.lockout_s)
    client = _client()
    with st.form("login"):
        given = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in")
    if not submitted:
        return
    now = time.monotonic()
    wait = limiter.wait(client, now)
    if wait > 0:  # not even checked: a right guess during a lockout teaches nothing
        st.error(f"Too many wrong passwords. Try again in {wait:.0f} s.")
        return
    if password_ok(given, expected):
        limiter.succeed(client)
        st.session_state[_KEY] = True
        st.rerun()
    lockout = limiter.fail(client, now)
    st.error("Wrong password." if not lockout else
             f"Wrong password. Too many wrong passwords: try again in {lockout:.0f} s.")
