"""Wire models for /v1/admin: invites, users, cohorts, keys and the pause switch."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from kinema.api.strict import Strict
from kinema.api.v1.accounts.protocol import User
from kinema.db.models import InviteRow


class LimitsBody(Strict):
    requests_per_minute: int | None = Field(None, ge=1)
    concurrent_jobs: int | None = Field(None, ge=1)
    video_seconds_per_day: float | None = Field(None, gt=0)


class InviteCreateBody(Strict):
    email: str = Field(max_length=320)
    cohort: str = Field("default", max_length=64)
    expires_in: int | None = Field(None, description="Seconds the code stays valid (default: the setting).")


class Invite(BaseModel):
    id: str
    object: Literal["invite"] = "invite"
    email: str
    cohort: str
    status: Literal["pending", "used", "revoked", "expired"]
    created_at: int
    expires_at: int
    used_at: int | None
    revoked_at: int | None

    @classmethod
    def from_row(cls, row: InviteRow, now: float) -> Invite:
        status: Literal["pending", "used", "revoked", "expired"] = "pending"
        if row.used_at is not None:
            status = "used"
        elif row.revoked_at is not None:
            status = "revoked"
        elif row.expires_at <= now:
            status = "expired"
        return cls(
            id=row.id,
            email=row.email,
            cohort=row.cohort,
            status=status,
            created_at=int(row.created_at),
            expires_at=int(row.expires_at),
            used_at=int(row.used_at) if row.used_at is not None else None,
            revoked_at=int(row.revoked_at) if row.revoked_at is not None else None,
        )


class InviteCreated(Invite):
    code: str = Field(description="The invite code. Shown only now: send it to the invitee.")


class InviteList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Invite]


class UserList(BaseModel):
    object: Literal["list"] = "list"
    data: list[User]


class UserUpdateBody(Strict):
    role: Literal["admin", "member"] | None = None
    cohort: str | None = Field(None, max_length=64)
    limits: LimitsBody | None = None
    disabled: bool | None = None


class CohortBody(Strict):
    limits: LimitsBody


class Cohort(BaseModel):
    object: Literal["cohort"] = "cohort"
    name: str
    users: int
    limits: dict[str, Any]


class CohortList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Cohort]


class CohortRevoked(BaseModel):
    object: Literal["cohort.revoked"] = "cohort.revoked"
    name: str
    keys_revoked: int
    invites_revoked: int


class KeyUpdateBody(Strict):
    limits: LimitsBody


class PauseBody(Strict):
    cohort: str | None = Field(None, max_length=64, description="Pause one cohort; default: everyone.")
    hold_running: bool | None = Field(
        None, description="Hold running jobs at their next step (default: the setting; false lets them finish)."
    )
    reason: str | None = Field(None, max_length=256)


class ResumeBody(Strict):
    cohort: str | None = Field(None, max_length=64)


class PauseList(BaseModel):
    object: Literal["list"] = "list"
    data: list[dict[str, Any]]
