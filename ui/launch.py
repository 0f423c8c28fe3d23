"""``vitmon ui``: run the Streamlit app headless on ``ui.host:ui.port``.

The process *becomes* the Streamlit server (``exec``), so signals reach it directly and a
supervisor (the demo, systemd, a container runtime) stops it like any server.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import requests

from monitor.app.config import Settings
from monitor.app.ui_settings import OidcSettings
from monitor.errors import ConfigError
from monitor.store.db import check_reachable

APP = Path(__file__).with_name("app.py")


def streamlit_argv(host: str, port: int) -> list[str]:
    """The command line of the Streamlit server for the vitmon app.

    >>> argv = streamlit_argv("127.0.0.1", 8600)
    >>> argv[1:4], argv[argv.index("--server.port") + 1]
    (['-m', 'streamlit', 'run'], '8600')
    """
    return [sys.executable, "-m", "streamlit", "run", str(APP),
            "--server.headless", "true", "--server.address", host, "--server.port", str(port),
            # no file watcher: a server does not reload code, and watching costs CPU
            "--server.fileWatcherType", "none", "--server.runOnSave", "false",
            "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer",
            "--theme.base", "light", "--global.developmentMode", "false"]


def check_oidc(oidc: OidcSettings, timeout_s: float = 5.0) -> None:
    """The provider's discovery document must answer and name an authorization endpoint;
    else a :class:`ConfigError` naming ``ui.oidc.issuer`` (one line at start, no traceback)."""
    url = oidc.metadata_url()
    try:
        resp = requests.get(url, timeout=timeout_s)
        resp.raise_for_status()
        doc = resp.json()
    except (requests.RequestException, ValueError) as exc:
        reason = type(exc).__name__ if not str(exc) else str(exc).splitlines()[0][:160]
        raise ConfigError("ui.oidc.issuer", f"no OIDC discovery document at {url}: {reason}") \
            from None
    if not isinstance(doc, dict) or "authorization_endpoint" not in doc:
        raise ConfigError("ui.oidc.issuer", f"{url} is not an OIDC discovery document "
                          "(no authorization_endpoint)")


def secrets_toml(oidc: OidcSettings, base_url: str) -> str:
    """Streamlit's ``[auth]`` secrets for ``st.login`` (TOML strings are JSON strings).

    >>> from pydantic import SecretStr
    >>> o = OidcSettings(issuer="https://id.example.com", client_id="vitmon",
    ...                  client_secret=SecretStr("c"), cookie_secret=SecretStr("k" * 32))
    >>> print(secrets_toml(o, "https://ui.example.com").splitlines()[1])
    redirect_uri = "https://ui.example.com/oauth2callback"
    """
    values = {"redirect_uri": oidc.callback_url(base_url),
              "cookie_secret": oidc.cookie_secret.get_secret_value(),
              "client_id": oidc.client_id,
              "client_secret": oidc.client_secret.get_secret_value(),
              "server_metadata_url": oidc.metadata_url()}
    return "[auth]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())


def _write_secrets(text: str) -> str:
    """A private (0600) file for the server's auth secrets; never in the working directory."""
    fd, path = tempfile.mkstemp(prefix="vitmon-ui-", suffix=".toml")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return path


def run(settings: Settings, config: str | None, host: str | None, port: int | None) -> None:
    """Check the database (and the OIDC provider), then replace this process with the Streamlit
    server."""
    if settings.ui.oidc is not None:
        check_oidc(settings.ui.oidc)
    check_reachable(settings.required_database_url())  # one clear line now, not an error page later
    if config:  # the app reads settings like every vitmon command: VITMON_CONFIG + VITMON_*
        os.environ["VITMON_CONFIG"] = str(Path(config).resolve())
    argv = streamlit_argv(host or settings.ui.host, port or settings.ui.port)
    if settings.ui.oidc is not None:
        argv += ["--secrets.files", _write_secrets(secrets_toml(settings.ui.oidc,
                                                                settings.ui.base_url))]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)
