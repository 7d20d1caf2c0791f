from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from app.core.roles import Role
from app.core.time import utcnow


class User(SQLModel, table=True):
    # One Strata user per company account: the provider's subject is unique only within its issuer.
    __table_args__ = (UniqueConstraint("oidc_issuer", "oidc_subject", name="uq_user_oidc_identity"),)

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, unique=True, index=True)
    name: str = Field(max_length=200)
    role: str = Field(default=Role.viewer.value, max_length=16)
    password_hash: str = Field(max_length=255)
    is_active: bool = True
    failed_logins: int = 0
    locked_until: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    # Set for users who sign in with the company's OpenID provider (app/auth/oidc.py).
    oidc_issuer: str | None = Field(default=None, max_length=500)
    oidc_subject: str | None = Field(default=None, max_length=255)


class UserSession(SQLModel, table=True):
    __tablename__ = "user_session"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_key"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=200)
    prefix: str = Field(max_length=16)
    key_hash: str = Field(max_length=64, unique=True, index=True)
    created_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class ApiKeyRateLimit(SQLModel, table=True):
    """An admin's per-key override of STRATA_RATE_LIMIT_PER_MINUTE."""

    __tablename__ = "api_key_rate_limit"

    api_key_id: int = Field(foreign_key="api_key.id", primary_key=True, ondelete="CASCADE")
    requests_per_minute: int


class SignInAttempts(SQLModel, table=True):
    """Password sign-ins on one account from one source (a client address, an IPv6 /64), counted
    for that source's lockout: a stranger's guesses lock out the stranger, not the owner
    signing in from elsewhere. The account's own cap across all sources is on User
    (failed_logins in the window that ends at locked_until)."""

    __tablename__ = "sign_in_attempts"

    user_id: int = Field(foreign_key="user.id", primary_key=True, ondelete="CASCADE")
    source: str = Field(max_length=64, primary_key=True)
    attempts: int = 0
    # The count starts again after this; while attempts are over the limit, the source is locked until then.
    window_ends: datetime
