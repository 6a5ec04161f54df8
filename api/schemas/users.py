"""Request and response models of the users endpoints; never a password hash."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from queries.users import UserRow


class UserOut(BaseModel):
    user_id: int
    email: str
    name: str
    is_active: bool
    scopes: list[str]
    created_at: datetime

    @classmethod
    def from_row(cls, row: UserRow) -> UserOut:
        return cls(
            user_id=row.user_id,
            email=row.email,
            name=row.name,
            is_active=row.is_active,
            scopes=row.scopes,
            created_at=row.created_at,
        )


class UsersPage(BaseModel):
    """One page of users in id order; pass `next_after` back as `after` for the next."""

    items: list[UserOut]
    next_after: int | None = Field(description="Null on the last page")


# Request bodies take JSON as it is: "false" or 0 is not a boolean (it would disable a
# user), a string is not a list of scopes.
_STRICT = ConfigDict(extra="forbid", strict=True)


class UserCreate(BaseModel):
    model_config = _STRICT

    email: str = Field(description="The login name; stored in lower case.")
    name: str
    password: str = Field(
        description="8 characters at least, 72 bytes in UTF-8 at most.",
        json_schema_extra={"format": "password"},
    )
    # At least one, as `api-admin users create` grants: disabling is how to lock a user out.
    scopes: list[str] = Field(["movies:read"], min_length=1, description="What the user may do.")


class UserChange(BaseModel):
    """The fields to change; those left out stay as they are."""

    model_config = _STRICT

    is_active: bool | None = Field(
        None, description="false disables the user and ends every token issued so far."
    )
    scopes: list[str] | None = Field(
        None,
        min_length=1,
        description="Replaces the scopes, one at least; taking one away ends every earlier token.",
    )


class PasswordChange(BaseModel):
    model_config = _STRICT

    current_password: str = Field(json_schema_extra={"format": "password"})
    new_password: str = Field(
        description="8 characters at least, 72 bytes in UTF-8 at most.",
        json_schema_extra={"format": "password"},
    )
