"""Company sign-in with OpenID Connect: the authorization code flow with PKCE, state and nonce.

The provider is found by discovery (<issuer>/.well-known/openid-configuration); its ID token is
verified against its published keys (JWKS) and its iss, aud, exp and nonce are checked before
anyone is signed in. Users are created on their first sign-in and their role is mapped from a
claim on every sign-in, so a change at the provider applies at the next one.

Between the redirect to the provider and its redirect back, state, nonce, PKCE verifier and the
page to return to live in a short-lived cookie signed with the secret key: no server-side store
(Redis being down does not stop sign-in), and a callback that did not start in this browser
has no matching cookie."""

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import httpx
import structlog
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from fastapi import Response
from joserfc import jwt
from joserfc.errors import ExpiredTokenError, InvalidClaimError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry
from sqlmodel import Session, select

from app.audit.service import record
from app.auth import service as auth_service
from app.auth.cookies import safe_next_path, start_browser_session
from app.auth.tables import User
from app.core.errors import Conflict
from app.core.roles import Role
from app.core.settings import Settings

# Long enough to sign in at the provider (with a second factor), short enough that a stolen
# cookie is soon worthless.
TRANSACTION_SECONDS = 600
ROUTES_PREFIX = "/api/v1/auth/oidc"
# The login page's "Sign in with ..." button (app/auth/oidc_api.py).
COMPANY_SIGN_IN_PATH = f"{ROUTES_PREFIX}/login"
# OpenID Connect Core 2: a subject is at most 255 ASCII characters (User.oidc_subject).
MAX_SUBJECT_LENGTH = 255
# Asymmetric only: "none" and HMAC (keyed with the client secret) are not accepted for ID tokens.
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")

log = structlog.get_logger(__name__)

# What the login page says for each way company sign-in can fail (LoginState.error reads the code
# from its URL; a code, not the text, so that nobody can put words of their own on Strata's page).
PROBLEMS = {
    "not_configured": "Company sign-in is not set up on this server.",
    "unreachable": "The sign-in provider could not be reached. Try again in a moment, or tell your admin.",
    "denied": "Sign-in was cancelled at the provider.",
    "provider_refused": "The sign-in provider refused the request. Try again, or tell your admin.",
    "stale": "This sign-in had expired or was started in another browser. Please sign in again.",
    "expired": "The provider's sign-in token had already expired. Try again; if it repeats, "
    "the server's and the provider's clocks disagree: tell your admin.",
    "audience": "The provider's sign-in was issued for another application, not this Strata. Tell your admin.",
    "invalid_token": "The provider's answer could not be verified. Tell your admin.",
    "misconfigured": "The sign-in provider's settings do not fit this Strata. Tell your admin.",
    "no_email": "The provider did not share a valid email address for your account.",
    "no_role": "Your company account has no Strata role. Ask your admin for access.",
    "email_taken": "A Strata account with your email exists and could not be linked to your company account. "
    "Ask your admin.",
    "deactivated": "This account is deactivated. Ask an admin to reactivate it.",
}


class SignInFailed(Exception):
    """Company sign-in ended without a session; `code` is a key of PROBLEMS."""

    def __init__(self, code: str, next_path: str = "/") -> None:
        super().__init__(PROBLEMS[code])
        self.code = code
        self.next_path = next_path


@dataclass(frozen=True)
class Transaction:
    state: str
    nonce: str
    code_verifier: str
    next_path: str
    expires: float


@dataclass(frozen=True)
class CompanyIdentity:
    """A verified ID token's claims."""

    issuer: str
    subject: str
    claims: dict


def _transaction_key(settings: Settings) -> bytes:
    # Its own key, derived from the secret key, so this signature is never valid anywhere else.
    return hmac.new(settings.secret_key.encode(), b"strata oidc transaction", hashlib.sha256).digest()


def _seal(transaction: Transaction, settings: Settings) -> str:
    body = base64.urlsafe_b64encode(json.dumps(asdict(transaction)).encode()).decode()
    signature = hmac.new(_transaction_key(settings), body.encode(), hashlib.sha256).hexdigest()
    return f"{body}.{signature}"


def _unseal(sealed: str, settings: Settings) -> Transaction:
    body, _, signature = sealed.partition(".")
    expected = hmac.new(_transaction_key(settings), body.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        raise SignInFailed("stale")
    try:
        transaction = Transaction(**json.loads(base64.urlsafe_b64decode(body)))
    except (ValueError, TypeError):
        raise SignInFailed("stale") from None
    if transaction.expires < time.time():
        raise SignInFailed("stale", transaction.next_path)
    return transaction


async def _provider_json(client: httpx.AsyncClient, url: str, next_path: str) -> dict:
    try:
        response = await client.get(url)
        response.raise_for_status()
        document = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        # The address stays in the log for the admin; the user's message names no host.
        log.warning("oidc.provider_unreachable", url=url, error=repr(exc))
        raise SignInFailed("unreachable", next_path) from None
    if not isinstance(document, dict):
        raise SignInFailed("unreachable", next_path)
    return document


async def _metadata(client: httpx.AsyncClient, settings: Settings, next_path: str) -> dict:
    issuer = settings.oidc_issuer.rstrip("/")
    metadata = await _provider_json(client, f"{issuer}/.well-known/openid-configuration", next_path)
    endpoints = ("authorization_endpoint", "token_endpoint", "jwks_uri")
    if not all(isinstance(metadata.get(name), str) for name in ("issuer", *endpoints)):
        log.warning("oidc.incomplete_discovery", present=sorted(metadata)[:50])
        raise SignInFailed("misconfigured", next_path)
    # OpenID Connect Discovery 4.3: the document must name the issuer it was fetched from.
    if metadata["issuer"].rstrip("/") != issuer:
        log.warning("oidc.issuer_mismatch", configured=issuer, published=metadata["issuer"])
        raise SignInFailed("misconfigured", next_path)
    return metadata


def _client(settings: Settings) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=settings.oidc_timeout_seconds, follow_redirects=False)


async def start_sign_in(*, settings: Settings, redirect_uri: str, next_path: str) -> tuple[str, str]:
    """The provider's authorization URL to send the browser to, and the sealed transaction to
    keep in its cookie until the provider sends the browser back."""
    next_path = safe_next_path(next_path)
    if not settings.oidc_enabled:
        raise SignInFailed("not_configured", next_path)
    async with _client(settings) as client:
        metadata = await _metadata(client, settings, next_path)
    transaction = Transaction(
        state=generate_token(32),
        nonce=generate_token(32),
        code_verifier=generate_token(64),
        next_path=next_path,
        expires=time.time() + TRANSACTION_SECONDS,
    )
    url = prepare_grant_uri(
        metadata["authorization_endpoint"],
        client_id=settings.oidc_client_id,
        response_type="code",
        redirect_uri=redirect_uri,
        scope=settings.oidc_scopes,
        state=transaction.state,
        nonce=transaction.nonce,
        code_challenge=create_s256_code_challenge(transaction.code_verifier),
        code_challenge_method="S256",
    )
    return url, _seal(transaction, settings)


async def _exchange_code(client: httpx.AsyncClient, metadata: dict, settings: Settings, **form: str) -> dict:
    try:
        response = await client.post(
            metadata["token_endpoint"],
            data={"grant_type": "authorization_code", **form},
            auth=(settings.oidc_client_id, settings.oidc_client_secret),
            headers={"Accept": "application/json"},
        )
    except httpx.HTTPError as exc:
        log.warning("oidc.provider_unreachable", url=metadata["token_endpoint"], error=repr(exc))
        raise SignInFailed("unreachable") from None
    if response.status_code >= 500:
        log.warning("oidc.token_endpoint_failed", status=response.status_code)
        raise SignInFailed("unreachable")
    try:
        token = response.json()
    except ValueError:
        token = None
    if response.status_code != 200 or not isinstance(token, dict) or not isinstance(token.get("id_token"), str):
        error = token.get("error") if isinstance(token, dict) else None
        log.warning("oidc.token_refused", status=response.status_code, error=str(error)[:100])
        raise SignInFailed("provider_refused")
    return token


def _verify_id_token(id_token: str, access_token: str, jwks: dict, settings: Settings, nonce: str) -> dict:
    try:
        keys = KeySet.import_key_set(jwks)
        decoded = jwt.decode(id_token, keys, registry=JWSRegistry(algorithms=list(SIGNING_ALGORITHMS)))
        claims = CodeIDToken(
            decoded.claims,
            decoded.header,
            {
                "iss": {"essential": True, "value": settings.oidc_issuer.rstrip("/")},
                "aud": {"essential": True, "value": settings.oidc_client_id},
                "sub": {"essential": True},
                "exp": {"essential": True},
            },
            {"nonce": nonce, "client_id": settings.oidc_client_id, "access_token": access_token},
        )
        claims.validate(leeway=settings.oidc_clock_skew_seconds)
    except ExpiredTokenError:
        raise SignInFailed("expired") from None
    except InvalidClaimError as exc:
        log.warning("oidc.invalid_claim", claim=exc.claim)
        raise SignInFailed("audience" if exc.claim in ("aud", "azp") else "invalid_token") from None
    except (JoseError, ValueError, TypeError) as exc:
        log.warning("oidc.unverifiable_token", error=repr(exc))
        raise SignInFailed("invalid_token") from None
    return dict(claims)


async def finish_sign_in(
    *, settings: Settings, redirect_uri: str, sealed_transaction: str, params: Mapping[str, str]
) -> tuple[CompanyIdentity, str]:
    """Checks the provider's redirect back against the transaction this browser started, exchanges
    the code and verifies the ID token. Returns the identity and the local path to go to."""
    if not settings.oidc_enabled:
        raise SignInFailed("not_configured")
    transaction = _unseal(sealed_transaction, settings)
    next_path = transaction.next_path
    if params.get("error"):
        # Checked before state: an error grants nothing, and some providers leave state out of it.
        log.info("oidc.provider_error", error=params["error"][:100])
        raise SignInFailed("denied" if params["error"] == "access_denied" else "provider_refused", next_path)
    if not hmac.compare_digest(params.get("state", "").encode(), transaction.state.encode()):
        raise SignInFailed("stale", next_path)
    if not params.get("code"):
        raise SignInFailed("provider_refused", next_path)
    try:
        async with _client(settings) as client:
            metadata = await _metadata(client, settings, next_path)
            token = await _exchange_code(
                client,
                metadata,
                settings,
                code=params["code"],
                redirect_uri=redirect_uri,
                code_verifier=transaction.code_verifier,
            )
            jwks = await _provider_json(client, metadata["jwks_uri"], next_path)
        claims = _verify_id_token(token["id_token"], token.get("access_token", ""), jwks, settings, transaction.nonce)
    except SignInFailed as failure:
        raise SignInFailed(failure.code, next_path) from None
    if len(claims["sub"]) > MAX_SUBJECT_LENGTH:
        raise SignInFailed("invalid_token", next_path)
    identity = CompanyIdentity(issuer=claims["iss"], subject=claims["sub"], claims=claims)
    return identity, next_path


def _configured_values(setting: str) -> set[str]:
    return {value.strip() for value in setting.split(",") if value.strip()}


def mapped_role(claims: Mapping, settings: Settings) -> Role | None:
    """The highest role whose configured values the role claim holds; else the default (None: refuse)."""
    raw = claims.get(settings.oidc_role_claim)
    if isinstance(raw, str):
        held = {raw}
    elif isinstance(raw, list):
        held = {value for value in raw if isinstance(value, str)}
    else:
        held = set()
    for role, setting in (
        (Role.admin, settings.oidc_admin_values),
        (Role.staff, settings.oidc_staff_values),
        (Role.viewer, settings.oidc_viewer_values),
    ):
        if held & _configured_values(setting):
            return role
    return None if settings.oidc_default_role == "none" else Role(settings.oidc_default_role)


def _link_or_create(db_session: Session, settings: Settings, identity: CompanyIdentity, role: Role) -> User:
    raw_email = identity.claims.get("email")
    email = raw_email.strip().lower() if isinstance(raw_email, str) else ""
    if not auth_service.EMAIL_PATTERN.match(email) or len(email) > 320:
        raise SignInFailed("no_email")
    existing = db_session.exec(select(User).where(User.email == email)).first()
    if existing is not None:
        # Linking hands the account to whoever the provider says owns the address: only for an
        # address the provider verified, never an account already linked, never the break-glass admin.
        if (
            identity.claims.get("email_verified") is not True
            or existing.oidc_subject is not None
            or email == settings.admin_email.strip().lower()
        ):
            raise SignInFailed("email_taken")
        existing.oidc_issuer, existing.oidc_subject = identity.issuer, identity.subject
        db_session.add(existing)
        record(
            db_session=db_session,
            actor=existing,
            action="user.linked_to_company_account",
            target=existing.email,
            target_id=existing.id,
            new={"issuer": identity.issuer, "subject": identity.subject},
        )
        return existing
    name = identity.claims.get("name") or identity.claims.get("preferred_username") or email.split("@")[0]
    user = User(
        email=email,
        name=str(name).strip()[:200],
        role=role.value,
        # No password: argon2 refuses to verify against an empty hash.
        password_hash="",
        oidc_issuer=identity.issuer,
        oidc_subject=identity.subject,
    )
    db_session.add(user)
    db_session.flush()
    record(
        db_session=db_session,
        actor=user,
        action="user.created",
        target=user.email,
        target_id=user.id,
        new={"email": user.email, "name": user.name, "role": user.role, "active": user.is_active},
        detail="on first company sign-in",
    )
    return user


def sign_in_user(*, db_session: Session, settings: Settings, identity: CompanyIdentity) -> User:
    """The Strata user of a verified company identity, created on first sign-in, its role set
    from the provider's claim."""
    role = mapped_role(identity.claims, settings)
    if role is None:
        raise SignInFailed("no_role")
    user = db_session.exec(
        select(User).where(User.oidc_issuer == identity.issuer, User.oidc_subject == identity.subject)
    ).first()
    if user is None:
        user = _link_or_create(db_session, settings, identity, role)
    if not user.is_active:
        raise SignInFailed("deactivated")
    if user.role != role.value:
        try:
            auth_service.update_user(db_session=db_session, actor=auth_service.SYSTEM, user_id=user.id, role=role.value)
        except Conflict:
            # The provider would demote the last active admin: keep them, so Strata stays administrable.
            log.warning("oidc.kept_last_admin", target_user_id=user.id, mapped_role=role.value)
    return user


def start_company_session(
    *, db_session: Session, settings: Settings, identity: CompanyIdentity, response: Response
) -> User:
    """Signs the company identity in on this browser: its user, a new session, the session cookie on `response`."""
    user = sign_in_user(db_session=db_session, settings=settings, identity=identity)
    start_browser_session(db_session=db_session, settings=settings, user=user, response=response)
    record(
        db_session=db_session,
        actor=user,
        action="session.signed_in",
        target=user.email,
        target_id=user.id,
        detail="company",
    )
    return user


def record_failed_sign_in(*, db_session: Session, identity: CompanyIdentity | None, code: str) -> None:
    """Audits a company sign-in that came back from the provider and ended without a session:
    the e-mail the provider named, if it got that far, and the reason (a key of PROBLEMS)."""
    email = identity.claims.get("email") if identity else None
    record(
        db_session=db_session,
        actor=None,
        action="session.sign_in_failed",
        target=email.strip().lower() if isinstance(email, str) else "",
        detail=f"company: {code}",
    )
