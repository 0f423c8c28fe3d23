"""Optional login: when ``ui.password`` is set, nothing is shown until it is entered.

One shared password fits the deployments that need *some* gate in front of the UI (a team
dashboard behind a VPN); anything finer belongs to an authenticating proxy or Streamlit's OIDC
login in front of ``vitmon ui``. The password is compared in constant time and never echoed.
"""

from __future__ import annotations

import hmac

import streamlit as st
from pydantic import SecretStr

_KEY = "vitmon_authenticated"


def password_ok(given: str, expected: SecretStr) -> bool:
    """Constant-time comparison (no timing hint of how much of the password matched).

    >>> password_ok("s3cret", SecretStr("s3cret")), password_ok("s3cre", SecretStr("s3cret"))
    (True, False)
    """
    return hmac.compare_digest(given.encode(), expected.get_secret_value().encode())


def require(expected: SecretStr | None) -> None:
    """Stop the script with a login form unless no password is configured or it was given.

    Query parameters stay in the URL, so an alert's deep link still opens its view after login.
    """
    # an empty password (an unset ${VAR} in docker-compose) means no login, not "log in with ''"
    if expected is None or not expected.get_secret_value() or st.session_state.get(_KEY):
        return
    st.title("vitmon")
    with st.form("login"):
        given = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in")
    if submitted and password_ok(given, expected):
        st.session_state[_KEY] = True
        st.rerun()
    if submitted:
        st.error("Wrong password.")
    st.stop()
