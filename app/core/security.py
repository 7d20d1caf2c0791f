"""Password hashing (argon2id) and opaque tokens stored only as hashes."""

import hashlib
import hmac
import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.core.settings import get_settings

_hasher = PasswordHasher()

SESSION_TOKEN_BYTES = 32
API_KEY_PREFIX = "sk-strata-"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    return secrets.token_urlsafe(SESSION_TOKEN_BYTES)


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(SESSION_TOKEN_BYTES)


def new_password() -> str:
    return secrets.token_urlsafe(15)


def token_hash(token: str) -> str:
    """Tokens carry 256 random bits, so a fast keyed hash is enough (unlike passwords).
    Keyed with the secret key: a copy of the database alone cannot match tokens."""
    return hmac.new(get_settings().secret_key.encode(), token.encode(), hashlib.sha256).hexdigest()


# user:password@ in any URL a message quotes (a database or Redis URL, say).
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s]*@")


def redact_credentials(text: str) -> str:
    return _URL_CREDENTIALS.sub(r"\g<scheme>***@", text)
