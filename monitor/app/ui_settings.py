"""The ``ui`` settings section: where the UI listens, how users sign in (shared password and/or
OIDC through Streamlit's ``st.login``) and which example-input URIs it may fetch for thumbnails.

>>> s = UISettings.model_validate({"oidc": {"issuer": "https://login.example.com/realms/ml",
...     "client_id": "vitmon", "client_secret": "x", "cookie_secret": "y" * 32}})
>>> s.oidc.metadata_url()
'https://login.example.com/realms/ml/.well-known/openid-configuration'
>>> s.oidc.callback_url(s.base_url)
'http://localhost:8501/oauth2callback'
>>> UISettings.model_validate({"oidc": {"issuer": "login.example.com", "client_id": "v",
...     "client_secret": "x", "cookie_secret": "y" * 32}})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for UISettings
oidc.issuer
  Value error, must be an https:// URL (http:// only for localhost) ...
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from monitor.core.settings import Section

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def _check_url(v: str, what: str) -> str:
    parts = urlsplit(v.strip())
    local = parts.hostname in LOCAL_HOSTS
    if not parts.hostname or not (parts.scheme == "https" or (parts.scheme == "http" and local)):
        raise ValueError(f"must be an https:// URL (http:// only for localhost) of the {what}")
    return v.strip().rstrip("/")


class OidcSettings(Section):
    """Sign-in with an OpenID Connect provider (Keycloak, Okta, Entra ID, Google, ...)."""

    #: The provider's issuer URL; its discovery document is ``<issuer>/.well-known/
    #: openid-configuration`` unless ``metadata_url`` says otherwise.
    issuer: str
    metadata_url_override: str | None = Field(None, alias="metadata_url")
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    #: Signs Streamlit's identity cookie: a long random string (``openssl rand -hex 32``).
    cookie_secret: SecretStr
    #: The callback registered with the provider; default ``<ui.base_url>/oauth2callback``.
    redirect_uri: str | None = None
    #: The sign-in button's text.
    label: str = "Sign in with single sign-on"
    model_config = Section.model_config | {"populate_by_name": True}

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, v: str) -> str:
        return _check_url(v, "OIDC provider (its issuer)")

    @field_validator("metadata_url_override")
    @classmethod
    def _metadata(cls, v: str | None) -> str | None:
        return None if v is None else _check_url(v, "OIDC discovery document")

    @field_validator("redirect_uri")
    @classmethod
    def _redirect(cls, v: str | None) -> str | None:
        if v is not None and not v.rstrip("/").endswith("/oauth2callback"):
            raise ValueError("must end with /oauth2callback (Streamlit's callback path)")
        return v

    @field_validator("cookie_secret")
    @classmethod
    def _cookie(cls, v: SecretStr) -> SecretStr:
        if len(v.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (openssl rand -hex 32)")
        return v

    def metadata_url(self) -> str:
        return self.metadata_url_override or f"{self.issuer}/.well-known/openid-configuration"

    def callback_url(self, base_url: str) -> str:
        return self.redirect_uri or f"{base_url.rstrip('/')}/oauth2callback"


class SampleSettings(Section):
    """Thumbnails of example inputs: which ``sample_uri`` prefixes the UI server may fetch."""

    #: URI prefixes the UI server may read (``file:///data/samples/``,
    #: ``https://cdn.example.com/``); any other URI is shown as text. Empty (the default): no
    #: thumbnails -- a ``sample_uri`` comes from the model servers, so say which places to trust.
    allow: tuple[str, ...] = ()
    max_bytes: int = Field(2_000_000, ge=1_000)  # larger inputs are not shown
    timeout_s: float = Field(2.0, gt=0, le=30)  # per fetch
    cache_s: int = Field(300, ge=0)  # how long a fetched thumbnail is kept in the UI's memory
    size_px: int = Field(96, ge=16, le=512)  # thumbnail side

    @field_validator("allow")
    @classmethod
    def _schemes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for prefix in v:
            if not prefix.startswith(("file:///", "http://", "https://")):
                raise ValueError(f"{prefix!r}: prefixes start with file:///, http:// or https://")
        return v


class LoginSettings(Section):
    """Wrong shared passwords are rate limited per client address."""

    max_failures: int = Field(5, ge=1)  # wrong passwords allowed per window ...
    window_s: float = Field(300.0, gt=0)  # ... in this many seconds; then
    lockout_s: float = Field(60.0, gt=0)  # no attempt is checked for this long (doubling)


class UISettings(Section):
    #: Where users reach the UI; alerts' ``dashboard_url`` links start with it.
    base_url: str = "http://localhost:8501"
    host: str = "0.0.0.0"
    port: int = Field(8501, ge=1, le=65535)
    #: When set, the UI asks for this password before showing anything (``VITMON_UI__PASSWORD``).
    password: SecretStr | None = None
    #: When set, users can sign in with an OIDC provider (besides the password, if set).
    oidc: OidcSettings | None = None
    login: LoginSettings = LoginSettings()
    samples: SampleSettings = SampleSettings()
    #: Serving cost of the model fleet per hour (any currency), for the Overview's cost per
    #: 1,000 inferences; None hides that figure.
    cost_per_hour: float | None = Field(None, ge=0)
