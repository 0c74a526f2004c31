"""GET /v1/admin/transparency: the transparency report (counts only), for administrators.

Declared like every admin router, with ``require_admin`` on the router itself, so it is admin-only
by default. See :mod:`kinema.services.transparency` and docs/transparency.md.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from kinema.api.deps import AdminPrincipal, SessionsDep, require_admin
from kinema.services import transparency

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)])


class GenerationCounts(BaseModel):
    requested: int = Field(description="Generation requests accepted (audit log video.<kind>).")
    by_kind: dict[str, int] = Field(description="Requests by kind: create, remix, edit, extend.")
    completed: int = Field(description="Of the jobs requested in the period and still stored, those completed.")
    failed: int = Field(description="... those that failed (not counting cancellations).")
    cancelled: int = Field(description="... those cancelled.")


class RefusalCounts(BaseModel):
    total: int
    by_category: dict[str, int] = Field(description="Moderation refusals by policy category.")


class LikenessCounts(BaseModel):
    enrolled: int
    revoked: int
    deleted: int


class KeyCounts(BaseModel):
    suspended: int = Field(description="Keys suspended automatically by the shared-key defense.")
    revoked: int = Field(description="Keys revoked, one at a time or by revoking a cohort.")


class DataRequestCounts(BaseModel):
    exports: int
    account_deletions: int


class Counts(BaseModel):
    generations: GenerationCounts
    refusals: RefusalCounts
    likenesses: LikenessCounts
    keys: KeyCounts
    data_requests: DataRequestCounts
    video_deletions: int


class PeriodCounts(Counts):
    start: float = Field(description="Unix seconds, inclusive.")
    end: float = Field(description="Unix seconds, exclusive.")
    label: str = Field(description="The UTC period: 2026-05-01, 2026-W18 or 2026-05.")


class TransparencyReport(BaseModel):
    object: Literal["transparency_report"] = "transparency_report"
    since: float
    until: float
    period: Literal["day", "week", "month"]
    generated_at: float
    periods: list[PeriodCounts]
    totals: Counts


@router.get("/transparency", response_model=TransparencyReport)
def get_transparency_report(
    admin: AdminPrincipal,
    sessions: SessionsDep,
    since: str | None = Query(
        None, description="Start (inclusive): Unix seconds, YYYY-MM-DD or ISO 8601, UTC. Default: 30 days back."
    ),
    until: str | None = Query(
        None,
        description="End (exclusive): Unix seconds or ISO 8601; a YYYY-MM-DD date includes that day. Default: now.",
    ),
    period: str | None = Query(None, description="day (default), week (ISO, from Monday) or month; UTC."),
) -> TransparencyReport:
    """Counts per period: generations, refusals by category, likeness enrolments, revocations and
    deletions, key suspensions and revocations, video deletions, data export and deletion requests.
    No identities, ids or prompts."""
    start, end, p = transparency.resolve_range(since, until, period)
    return TransparencyReport.model_validate(transparency.report(sessions, since=start, until=end, period=p))
