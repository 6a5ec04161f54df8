"""Request and response models of the users endpoints; never a password hash."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

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
