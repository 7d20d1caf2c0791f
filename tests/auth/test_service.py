from datetime import timedelta

import pytest
from sqlmodel import select

from app.auth import service
from app.auth.tables import UserSession
from app.core.errors import Conflict, Forbidden, InvalidInput, TooManyAttempts, Unauthorized
from app.core.roles import Role, require_role
from app.core.time import utcnow


def test_passwords_are_stored_as_argon2_hashes(db_session):
    user = service.create_user(
        db_session=db_session, email="Ann@Example.com", name="Ann", role="staff", password="correct horse"
    )
    assert user.email == "ann@example.com"
    assert user.password_hash.startswith("$argon2id$")
    assert "correct horse" not in user.password_hash


def test_bad_user_input_gets_clear_errors(db_session):
    with pytest.raises(InvalidInput, match="not an email"):
        service.create_user(db_session=db_session, email="nope", name="", role="viewer", password="password-1")
    with pytest.raises(InvalidInput, match="at least 8"):
        service.create_user(db_session=db_session, email="a@b.c", name="", role="viewer", password="short")
    with pytest.raises(InvalidInput, match="Unknown role"):
        service.create_user(db_session=db_session, email="a@b.c", name="", role="root", password="password-1")
    service.create_user(db_session=db_session, email="a@b.c", name="", role="viewer", password="password-1")
    with pytest.raises(Conflict, match="already exists"):
        service.create_user(db_session=db_session, email="A@b.c", name="", role="viewer", password="password-1")


def test_sign_in_wrong_password_then_lockout(db_session, settings):
    service.create_user(db_session=db_session, email="u@x.io", name="", role="viewer", password="password-1")
    db_session.commit()
    with pytest.raises(Unauthorized, match="Wrong email or password"):
        service.authenticate(db_session=db_session, settings=settings, email="nobody@x.io", password="password-1")
    for _ in range(settings.login_max_failures):
        with pytest.raises(Unauthorized):
            service.authenticate(db_session=db_session, settings=settings, email="u@x.io", password="wrong-pass")
    # Locked now: even the right password is refused, with a wait time.
    with pytest.raises(TooManyAttempts, match="Try again in") as locked:
        service.authenticate(db_session=db_session, settings=settings, email="u@x.io", password="password-1")
    assert locked.value.retry_after_seconds > 60


def test_lockout_ends_after_its_time(db_session, settings):
    user = service.create_user(db_session=db_session, email="u@x.io", name="", role="viewer", password="password-1")
    user.locked_until = utcnow() - timedelta(seconds=1)
    assert (
        service.authenticate(db_session=db_session, settings=settings, email="u@x.io", password="password-1").id
        == user.id
    )


def test_sessions_resolve_until_they_expire(db_session, settings):
    user = service.create_user(db_session=db_session, email="u@x.io", name="", role="viewer", password="password-1")
    token = service.create_session(db_session=db_session, settings=settings, user=user)
    db_session.flush()
    assert service.user_for_session(db_session=db_session, token=token).id == user.id
    assert service.user_for_session(db_session=db_session, token="forged") is None
    session = db_session.exec(select(UserSession)).one()
    session.expires_at = utcnow() - timedelta(seconds=1)
    db_session.flush()
    assert service.user_for_session(db_session=db_session, token=token) is None


def test_deactivated_user_loses_sessions_and_cannot_sign_in(db_session, settings):
    service.create_user(db_session=db_session, email="boss@x.io", name="", role="admin", password="password-1")
    user = service.create_user(db_session=db_session, email="u@x.io", name="", role="staff", password="password-1")
    token = service.create_session(db_session=db_session, settings=settings, user=user)
    service.set_active(db_session=db_session, user_id=user.id, active=False)
    db_session.flush()
    assert service.user_for_session(db_session=db_session, token=token) is None
    with pytest.raises(Forbidden, match="deactivated"):
        service.authenticate(db_session=db_session, settings=settings, email="u@x.io", password="password-1")


def test_last_admin_cannot_be_demoted_or_deactivated(db_session):
    admin = service.create_user(db_session=db_session, email="a@x.io", name="", role="admin", password="password-1")
    with pytest.raises(Conflict, match="last active admin"):
        service.set_role(db_session=db_session, user_id=admin.id, role="viewer")
    with pytest.raises(Conflict, match="last active admin"):
        service.set_active(db_session=db_session, user_id=admin.id, active=False)
    service.create_user(db_session=db_session, email="b@x.io", name="", role="admin", password="password-1")
    assert service.set_role(db_session=db_session, user_id=admin.id, role="viewer").role == "viewer"


def test_reset_password_generates_a_new_one_that_works(db_session, settings):
    user = service.create_user(db_session=db_session, email="u@x.io", name="", role="viewer", password="password-1")
    new_password = service.reset_password(db_session=db_session, user_id=user.id)
    assert len(new_password) >= 16
    with pytest.raises(Unauthorized):
        service.authenticate(db_session=db_session, settings=settings, email="u@x.io", password="password-1")
    assert service.authenticate(db_session=db_session, settings=settings, email="u@x.io", password=new_password)


def test_api_keys_are_hashed_shown_once_and_revocable(db_session):
    user = service.create_user(db_session=db_session, email="u@x.io", name="", role="staff", password="password-1")
    key, plaintext = service.create_api_key(db_session=db_session, user_id=user.id, name="ci")
    assert plaintext.startswith("sk-strata-") and plaintext not in key.key_hash
    assert service.user_for_api_key(db_session=db_session, plaintext=plaintext).id == user.id
    assert key.last_used_at is not None
    service.revoke_api_key(db_session=db_session, key_id=key.id)
    assert service.user_for_api_key(db_session=db_session, plaintext=plaintext) is None


def test_roles_are_ordered(db_session):
    viewer = service.create_user(db_session=db_session, email="v@x.io", name="", role="viewer", password="password-1")
    with pytest.raises(Forbidden, match="needs the staff role"):
        require_role(viewer, Role.staff)
    require_role(viewer, Role.viewer)


def test_first_admin_gets_a_generated_password_only_when_none_is_configured(db_session, settings):
    generated = service.ensure_admin(db_session=db_session, settings=settings.model_copy(update={"admin_password": ""}))
    assert generated and len(generated) >= 16
    assert service.ensure_admin(db_session=db_session, settings=settings) is None  # once only
