"""Sign-in to the console with OpenID Connect (see docs/console.md#single-sign-on).

Authlib's Flask client runs the authorization-code flow with PKCE (S256), ``state`` and ``nonce`` (kept in the
signed cookie session until the provider answers), reads the provider's discovery document, and verifies the ID
token: its signature against the provider's JWKS, the issuer, the audience (our client id), expiry and the
nonce. The person's groups (``KB_OIDC_ROLE_CLAIM``) map to a role and games (``KB_OIDC_ROLES``); a person with
no mapped group is refused and nothing is recorded. A session kept on the server (``console.sessions``) names
the person in every audit row they cause: ``sso:<email>`` (or ``sso:<subject>`` without a verified email).
"""
from __future__ import annotations

import logging

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.flask_client import OAuth
from flask import Flask, current_app, redirect, render_template, request, session, url_for
from joserfc.errors import JoseError

from config.oidc import grant_for, parse_role_map
from middleware.console.blueprint import ConsoleError, bp, start_session
from middleware.console.pages import safe_next
from middleware.services import services

log = logging.getLogger(__name__)
CLIENT = "sso"
TIMEOUT = 10.0         # seconds for each call to the provider (discovery, JWKS, token)
MAX_ACTOR = 128        # audit_log.actor
GOOGLE = "https://accounts.google.com"


def configure(app: Flask) -> None:
    """Register the provider with Authlib when ``KB_OIDC_ISSUER`` is set (nothing is fetched yet)."""
    settings = app.extensions["kraty_bridge"].settings
    if not settings.oidc_issuer:
        return
    oauth = OAuth(app)
    oauth.register(CLIENT, client_id=settings.oidc_client_id, client_secret=settings.oidc_client_secret,
                   server_metadata_url=f"{settings.oidc_issuer}/.well-known/openid-configuration",
                   client_kwargs={"scope": settings.oidc_scopes, "code_challenge_method": "S256",
                                  "default_timeout": TIMEOUT})


def enabled() -> bool:
    return "authlib.integrations.flask_client" in current_app.extensions


def _client():
    if not enabled():
        raise ConsoleError(404, "Single sign-on is not configured (KB_OIDC_ISSUER): sign in with an API key.",
                           code="sso_off")
    client = current_app.extensions["authlib.integrations.flask_client"].create_client(CLIENT)
    try:
        metadata = client.load_server_metadata()
    except (requests.RequestException, ValueError) as exc:
        log.warning("OpenID provider discovery failed: %s", exc)
        raise ConsoleError(502, "The sign-in provider could not be reached; try again in a moment.",
                           code="sso_unreachable") from None
    issuer = services().settings.oidc_issuer
    if str(metadata.get("issuer", "")).rstrip("/") != issuer:
        raise ConsoleError(502, f"The sign-in provider's discovery document names the issuer "
                                f"{metadata.get('issuer')!r}, not {issuer!r} (KB_OIDC_ISSUER).",
                           code="sso_misconfigured")
    supported = metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]  # the spec's default
    method = next((m for m in ("client_secret_basic", "client_secret_post") if m in supported), None)
    if method is None:
        raise ConsoleError(502, "The sign-in provider accepts neither client_secret_basic nor client_secret_post "
                                f"at its token endpoint (it offers {', '.join(map(str, supported))}).",
                           code="sso_misconfigured")
    client.client_kwargs["token_endpoint_auth_method"] = method
    return client


def _issuers(issuer: str) -> list[str]:
    """The ``iss`` values an ID token may carry: the issuer; Google also still sends its legacy bare host name."""
    return [issuer, "accounts.google.com"] if issuer == GOOGLE else [issuer]


@bp.context_processor
def _sso():
    return {"sso": enabled()}


def _refuse(status: int, message: str):
    return render_template("console/sign_in.html", error=message), status


@bp.route("/sign-in/sso", methods=["GET"])
def sso_start():
    """Off to the provider (a 302 carrying state, nonce and the PKCE challenge)."""
    client = _client()
    session["sso_next"] = safe_next(request.args.get("next"))
    redirect_uri = services().settings.oidc_redirect_url or url_for("console.sso_callback", _external=True)
    return client.authorize_redirect(redirect_uri)


def _identity(claims) -> str | None:
    """What audit rows name: the verified email, else the subject."""
    email = claims.get("email") if claims.get("email_verified", True) is not False else None
    for value in (email, claims.get("sub")):
        if isinstance(value, str) and value and len(value) <= MAX_ACTOR - 4 and value.isprintable():
            return value
    return None


@bp.route("/sign-in/callback", methods=["GET"])
def sso_callback():
    """The provider's answer: exchange the code (with the PKCE verifier), verify the ID token, map the role."""
    client = _client()
    try:
        token = client.authorize_access_token(
            claims_options={"iss": {"essential": True, "values": _issuers(services().settings.oidc_issuer)}})
    except (AuthlibBaseError, JoseError, requests.RequestException, ValueError, KeyError) as exc:
        log.warning("console single sign-on refused: %s: %s", type(exc).__name__, exc)
        said = request.args.get("error")
        if said:
            return _refuse(401, f"Single sign-on failed: the provider answered {said[:100]!r}. Nothing was changed.")
        return _refuse(401, "Single sign-on failed: the provider's answer could not be verified "
                            f"({type(exc).__name__}). Nothing was changed; try again.")
    claims = token.get("userinfo")
    if not claims:
        return _refuse(401, "Single sign-on failed: the provider sent no ID token. Nothing was changed.")
    settings = services().settings
    grant = grant_for(claims.get(settings.oidc_role_claim), parse_role_map(settings.oidc_roles))
    who = _identity(claims)
    if who is None:
        return _refuse(403, "Your account has no usable identity (no email and no printable subject of at most "
                            f"{MAX_ACTOR - 4} characters). Nothing was recorded.")
    if grant is None:
        log.warning("console single sign-on refused: %s has no mapped %s", who, settings.oidc_role_claim)
        return _refuse(403, f"You ({who}) signed in, but none of your {settings.oidc_role_claim} gives a role in "
                            "this console. Ask an administrator to add you to a group listed in KB_OIDC_ROLES. "
                            "Nothing was recorded.")
    next_ = session.pop("sso_next", None)
    start_session(kind="sso", actor=f"sso:{who}", role=grant.role, namespaces=grant.namespaces,
                  subject=str(claims["sub"])[:255], email=claims.get("email") if who == claims.get("email") else None)
    log.info("console single sign-on: %s (%s)", who, grant.role)
    return redirect(next_ or url_for("console.search"), 303)
