from datetime import timedelta

import pytest
from sqlmodel import select, update

from app.auth import service
from app.auth.service import SYSTEM
from app.auth.tables import SignInAttempts, UserSession
from app.core.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from app.core.roles import Role, require_role
from app.core.time import utcnow

HERE = "198.51.100.7"


def make(db_session, email: str, role: str = "viewer", password: str = "password-1"):
    return service.create_user(db_session=db_session, actor=SYSTEM, email=email, name="", role=role, password=password)


def sign_in(db_session, settings, email: str, password: str, source: str = HERE):
    return service.authenticate(db_session=db_session, settings=settings, email=email, password=password, source=source)


def test_passwords_are_stored_as_argon2_hashes(db_session):
    user = service.create_user(
        db_session=db_session, actor=SYSTEM, email="Ann@Example.com", name="Ann", role="staff", password="correct horse"
    )
    assert user.email == "ann@example.com"
    assert user.password_hash.startswith("$argon2id$")
    assert "correct horse" not in user.password_hash


def test_bad_user_input_gets_clear_errors(db_session):
    with pytest.raises(InvalidInput, match="not an email"):
        make(db_session, "nope")
    with pytest.raises(InvalidInput, match="at least 8"):
        make(db_session, "a@b.c", password="short")
    with pytest.raises(InvalidInput, match="Unknown role"):
        make(db_session, "a@b.c", role="root")
    make(db_session, "a@b.c")
    with pytest.raises(Conflict, match="already exists"):
        make(db_session, "A@b.c")


def test_sign_in_wrong_password_then_lockout(db_session, settings):
    make(db_session, "u@x.io")
    db_session.commit()
    with pytest.raises(Unauthorized, match="Wrong email or password"):
        sign_in(db_session, settings, "nobody@x.io", "password-1")
    for _ in range(settings.login_max_failures):
        with pytest.raises(Unauthorized):
            sign_in(db_session, settings, "u@x.io", "wrong-pass")
    # Locked now from this address: even the right password is refused, in the same words.
    with pytest.raises(Unauthorized, match="Wrong email or password"):
        sign_in(db_session, settings, "u@x.io", "password-1")


def test_lockout_ends_after_its_time(db_session, settings):
    user = make(db_session, "u@x.io")
    db_session.commit()
    for _ in range(settings.login_max_failures + 1):
        with pytest.raises(Unauthorized):
            sign_in(db_session, settings, "u@x.io", "wrong-pass")
    # The lockout's time passes.
    db_session.exec(update(SignInAttempts).values(window_ends=utcnow() - timedelta(seconds=1)))
    db_session.commit()
    assert sign_in(db_session, settings, "u@x.io", "password-1").id == user.id


def test_sessions_resolve_until_they_expire(db_session, settings):
    user = make(db_session, "u@x.io")
    token = service.create_session(db_session=db_session, settings=settings, user=user)
    db_session.flush()
    assert service.user_for_session(db_session=db_session, token=token).id == user.id
    assert service.user_for_session(db_session=db_session, token="forged") is None
    session = db_session.exec(select(UserSession)).one()
    session.expires_at = utcnow() - timedelta(seconds=1)
    db_session.flush()
    assert service.user_for_session(db_session=db_session, token=token) is None


def test_deactivated_user_loses_sessions_and_cannot_sign_in(db_session, settings):
    make(db_session, "boss@x.io", role="admin")
    user = make(db_session, "u@x.io", role="staff")
    token = service.create_session(db_session=db_session, settings=settings, user=user)
    service.update_user(db_session=db_session, actor=SYSTEM, user_id=user.id, active=False)
    db_session.commit()
    assert service.user_for_session(db_session=db_session, token=token) is None
    with pytest.raises(Forbidden, match="deactivated"):
        sign_in(db_session, settings, "u@x.io", "password-1")


def test_last_admin_cannot_be_demoted_or_deactivated(db_session):
    admin = make(db_session, "a@x.io", role="admin")
    with pytest.raises(Conflict, match="last active admin"):
        service.update_user(db_session=db_session, actor=admin, user_id=admin.id, role="viewer")
    with pytest.raises(Conflict, match="last active admin"):
        service.update_user(db_session=db_session, actor=admin, user_id=admin.id, active=False)
    make(db_session, "b@x.io", role="admin")
    assert service.update_user(db_session=db_session, actor=admin, user_id=admin.id, role="viewer").role == "viewer"


def test_reset_password_generates_a_new_one_that_works(db_session, settings):
    user = make(db_session, "u@x.io")
    db_session.commit()
    _, new_password = service.reset_password(db_session=db_session, actor=SYSTEM, user_id=user.id)
    db_session.commit()
    assert len(new_password) >= 16
    with pytest.raises(Unauthorized):
        sign_in(db_session, settings, "u@x.io", "password-1")
    assert sign_in(db_session, settings, "u@x.io", new_password)


def test_api_keys_are_hashed_shown_once_and_revocable(db_session):
    user = make(db_session, "u@x.io", role="staff")
    key, plaintext = service.create_api_key(db_session=db_session, actor=SYSTEM, user_id=user.id, name="ci")
    assert plaintext.startswith("sk-strata-") and plaintext not in key.key_hash
    assert service.user_for_api_key(db_session=db_session, plaintext=plaintext).id == user.id
    assert key.last_used_at is not None
    service.revoke_api_key(db_session=db_session, actor=SYSTEM, key_id=key.id)
    assert service.user_for_api_key(db_session=db_session, plaintext=plaintext) is None


def test_roles_are_ordered(db_session):
    viewer = make(db_session, "v@x.io")
    with pytest.raises(Forbidden, match="needs the staff role"):
        require_role(viewer, Role.staff)
    require_role(viewer, Role.viewer)


def test_first_admin_gets_a_generated_password_only_when_none_is_configured(db_session, settings):
    generated = service.ensure_admin(db_session=db_session, settings=settings.model_copy(update={"admin_password": ""}))
    assert generated and len(generated) >= 16
    assert service.ensure_admin(db_session=db_session, settings=settings) is None  # once only


def test_every_service_that_acts_for_someone_checks_their_role(db_session):
    """Routes, states and the CLI stay thin: the service itself refuses a caller without the role."""
    admin = make(db_session, "a@x.io", role="admin")
    staff = make(db_session, "s@x.io", role="staff")
    target = make(db_session, "t@x.io")
    key, _ = service.create_api_key(db_session=db_session, actor=admin, user_id=target.id, name="k")
    attempts = [
        lambda: service.list_users(db_session=db_session, actor=staff),
        lambda: make_as(db_session, staff),
        lambda: service.update_user(db_session=db_session, actor=staff, user_id=target.id, role="admin"),
        lambda: service.update_user(db_session=db_session, actor=staff, user_id=target.id, active=False),
        lambda: service.reset_password(db_session=db_session, actor=staff, user_id=target.id),
        lambda: service.find_user(db_session=db_session, actor=staff, email="t@x.io"),
        lambda: service.get_user(db_session=db_session, actor=staff, user_id=target.id),
        lambda: service.create_api_key(db_session=db_session, actor=staff, user_id=staff.id, name="mine"),
        lambda: service.list_api_keys(db_session=db_session, actor=staff),
        lambda: service.revoke_api_key(db_session=db_session, actor=staff, key_id=key.id),
    ]
    for attempt in attempts:
        with pytest.raises(Forbidden, match="needs the admin role"):
            attempt()
    assert target.role == "viewer" and target.is_active and key.revoked_at is None
    # Anyone may read their own record; an admin anyone's; unknown ones are a clear 404.
    assert service.get_user(db_session=db_session, actor=staff, user_id=staff.id).email == "s@x.io"
    assert service.get_user(db_session=db_session, actor=admin, user_id=target.id).email == "t@x.io"
    with pytest.raises(NotFound, match="No user with email"):
        service.find_user(db_session=db_session, actor=admin, email="ghost@x.io")


def make_as(db_session, actor):
    return service.create_user(
        db_session=db_session, actor=actor, email="new@x.io", name="", role="viewer", password="password-1"
    )
