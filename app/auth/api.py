from fastapi import APIRouter, Request, Response, status

from app.auth import rate_limits, service
from app.auth.deps import SESSION_COOKIE, AdminUser, CurrentUser, SessionDep, SettingsDep, bearer_credential
from app.auth.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    LoginIn,
    LoginOut,
    PasswordOut,
    RateLimitRequest,
    UserCreate,
    UserOut,
    UserUpdate,
)

router = APIRouter(prefix="/api/v1", tags=["auth"])


@router.post("/auth/login")
def login(body: LoginIn, response: Response, db_session: SessionDep, settings: SettingsDep) -> LoginOut:
    user = service.authenticate(db_session=db_session, settings=settings, email=body.email, password=body.password)
    token = service.create_session(db_session=db_session, settings=settings, user=user)
    response.set_cookie(
        SESSION_COOKIE, token, max_age=int(settings.session_hours * 3600), httponly=True, samesite="strict"
    )
    return LoginOut(token=token, user=UserOut.of(user))


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(_: CurrentUser, request: Request, response: Response, db_session: SessionDep) -> None:
    """Ends the calling session. API keys are revoked, not logged out."""
    token = bearer_credential(request) or request.cookies.get(SESSION_COOKIE, "")
    service.end_session(db_session=db_session, token=token)
    response.delete_cookie(SESSION_COOKIE)


@router.get("/me")
def me(user: CurrentUser) -> UserOut:
    return UserOut.of(user)


@router.get("/users")
def list_users(_: AdminUser, db_session: SessionDep) -> list[UserOut]:
    return [UserOut.of(user) for user in service.list_users(db_session=db_session)]


@router.post("/users", status_code=status.HTTP_201_CREATED)
def create_user(body: UserCreate, _: AdminUser, db_session: SessionDep) -> UserOut:
    user = service.create_user(
        db_session=db_session, email=body.email, name=body.name, role=body.role, password=body.password
    )
    return UserOut.of(user)


@router.patch("/users/{user_id}")
def update_user(user_id: int, body: UserUpdate, _: AdminUser, db_session: SessionDep) -> UserOut:
    user = service.get_user(db_session=db_session, user_id=user_id)
    if body.role is not None:
        user = service.set_role(db_session=db_session, user_id=user_id, role=body.role)
    if body.is_active is not None:
        user = service.set_active(db_session=db_session, user_id=user_id, active=body.is_active)
    return UserOut.of(user)


@router.post("/users/{user_id}/reset-password")
def reset_password(user_id: int, _: AdminUser, db_session: SessionDep) -> PasswordOut:
    return PasswordOut(password=service.reset_password(db_session=db_session, user_id=user_id))


@router.get("/keys")
def list_keys(_: AdminUser, db_session: SessionDep, user_id: int | None = None) -> list[ApiKeyOut]:
    return [ApiKeyOut.of(key, owner) for key, owner in service.list_api_keys(db_session=db_session, user_id=user_id)]


@router.post("/keys", status_code=status.HTTP_201_CREATED)
def create_key(body: ApiKeyCreate, _: AdminUser, db_session: SessionDep) -> ApiKeyCreated:
    key, plaintext = service.create_api_key(db_session=db_session, user_id=body.user_id, name=body.name)
    owner = service.get_user(db_session=db_session, user_id=key.user_id)
    return ApiKeyCreated(**ApiKeyOut.of(key, owner).model_dump(), key=plaintext)


@router.delete("/keys/{key_id}")
def revoke_key(key_id: int, _: AdminUser, db_session: SessionDep) -> ApiKeyOut:
    key = service.revoke_api_key(db_session=db_session, key_id=key_id)
    return ApiKeyOut.of(key, service.get_user(db_session=db_session, user_id=key.user_id))


@router.put("/api-keys/{key_id}/rate-limit", status_code=status.HTTP_204_NO_CONTENT)
def set_api_key_rate_limit(key_id: int, body: RateLimitRequest, user: AdminUser, db_session: SessionDep) -> None:
    """An API key's own requests a minute; null returns it to STRATA_RATE_LIMIT_PER_MINUTE."""
    rate_limits.set_api_key_limit(
        db_session=db_session, actor=user, key_id=key_id, requests_per_minute=body.requests_per_minute
    )
