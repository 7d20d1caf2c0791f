from datetime import datetime

from pydantic import BaseModel, Field

from app.auth.tables import ApiKey, User


class UserOut(BaseModel):
    id: int
    email: str
    name: str
    role: str
    is_active: bool
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> "UserOut":
        return cls.model_validate(user, from_attributes=True)


class LoginIn(BaseModel):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)


class LoginOut(BaseModel):
    token: str
    user: UserOut


class UserCreate(BaseModel):
    email: str
    name: str = ""
    role: str = "viewer"
    password: str = Field(min_length=8)


class UserUpdate(BaseModel):
    role: str | None = None
    is_active: bool | None = None


class PasswordOut(BaseModel):
    password: str


class ApiKeyCreate(BaseModel):
    user_id: int
    name: str = "API key"


class ApiKeyOut(BaseModel):
    id: int
    name: str
    prefix: str
    user_id: int
    user_email: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey, user: User) -> "ApiKeyOut":
        return cls(**key.model_dump(exclude={"key_hash"}), user_email=user.email)


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The secret key. Shown once; store it now.")


class RateLimitRequest(BaseModel):
    requests_per_minute: int | None = Field(description="None restores the default limit")
