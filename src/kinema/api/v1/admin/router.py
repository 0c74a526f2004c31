"""/v1/admin: users, invites, cohorts, every key, alerts and the pause switch.

Deny by default: the router itself depends on ``require_admin``, so a route added here is admin-only
without anyone remembering to say so (and the route-table tests check every one).
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends

from kinema.api.deps import (
    AdminPrincipal,
    AlertsDep,
    CohortsDep,
    InvitesDep,
    KeyServiceDep,
    PauseServiceDep,
    SettingsDep,
    UsersDep,
    require_admin,
)
from kinema.api.v1.accounts.protocol import Alert, AlertList, ApiKey, ApiKeyList, User
from kinema.api.v1.admin.protocol import (
    Cohort,
    CohortBody,
    CohortList,
    CohortRevoked,
    Invite,
    InviteCreateBody,
    InviteCreated,
    InviteList,
    KeyUpdateBody,
    PauseBody,
    PauseList,
    ResumeBody,
    UserList,
    UserUpdateBody,
)
from kinema.services.accounts import check_cohort

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)])


@router.get("/users", response_model=UserList)
def list_users(admin: AdminPrincipal, users: UsersDep, cohort: str | None = None) -> UserList:
    """Every account, oldest first (optionally one cohort's)."""
    return UserList(data=[User.from_row(r) for r in users.list_users(cohort=cohort)])


@router.get("/users/{user_id}", response_model=User)
def get_user(user_id: str, admin: AdminPrincipal, users: UsersDep) -> User:
    """One account."""
    return User.from_row(users.get_user(user_id))


@router.patch("/users/{user_id}", response_model=User)
def update_user(user_id: str, body: UserUpdateBody, admin: AdminPrincipal, users: UsersDep) -> User:
    """Change an account's role, cohort, limit overrides, or disable it (which ends its sessions)."""
    row = users.update_user(
        admin.id,
        user_id,
        role=body.role,
        cohort=body.cohort,
        limits=body.limits.model_dump(exclude_none=True) if body.limits is not None else None,
        disabled=body.disabled,
    )
    return User.from_row(row)


@router.post("/invites", response_model=InviteCreated, status_code=201)
def create_invite(body: InviteCreateBody, admin: AdminPrincipal, invites: InvitesDep) -> InviteCreated:
    """A single-use invite for one email into a cohort; the code is in this response only."""
    new = invites.create_invite(admin.id, body.email, cohort=body.cohort, ttl_seconds=body.expires_in)
    return InviteCreated(**Invite.from_row(new.row, time.time()).model_dump(), code=new.code)


@router.get("/invites", response_model=InviteList)
def list_invites(admin: AdminPrincipal, invites: InvitesDep, cohort: str | None = None) -> InviteList:
    """Every invite (never its code)."""
    now = time.time()
    return InviteList(data=[Invite.from_row(r, now) for r in invites.list_invites(cohort=cohort)])


@router.delete("/invites/{invite_id}", response_model=Invite)
def revoke_invite(invite_id: str, admin: AdminPrincipal, invites: InvitesDep) -> Invite:
    """Revoke an unused invite."""
    return Invite.from_row(invites.revoke_invite(admin.id, invite_id), time.time())


@router.get("/cohorts", response_model=CohortList)
def list_cohorts(admin: AdminPrincipal, cohorts: CohortsDep) -> CohortList:
    """Cohorts with their effective default limits and member counts."""
    return CohortList(data=[Cohort(**c) for c in cohorts.list_cohorts()])


@router.put("/cohorts/{name}", response_model=Cohort)
def set_cohort(name: str, body: CohortBody, admin: AdminPrincipal, cohorts: CohortsDep) -> Cohort:
    """Set a cohort's default limits (users' own overrides still win)."""
    cohorts.set_cohort_limits(admin.id, name, body.limits.model_dump(exclude_none=True))
    return next(Cohort(**c) for c in cohorts.list_cohorts() if c["name"] == name)


@router.post("/cohorts/{name}/revoke", response_model=CohortRevoked)
def revoke_cohort(name: str, admin: AdminPrincipal, cohorts: CohortsDep) -> CohortRevoked:
    """Revoke every API key of the cohort's users and every unused invite of the cohort, in one call."""
    done = cohorts.revoke_cohort(admin.id, name)
    return CohortRevoked(name=name, keys_revoked=done["keys_revoked"], invites_revoked=done["invites_revoked"])


@router.get("/keys", response_model=ApiKeyList)
def list_all_keys(admin: AdminPrincipal, keys: KeyServiceDep, user_id: str | None = None) -> ApiKeyList:
    """Every API key (optionally one user's), newest first."""
    now = time.time()
    return ApiKeyList(data=[ApiKey.from_row(r, now) for r in keys.list(user_id)])


@router.patch("/keys/{key_id}", response_model=ApiKey)
def update_key(key_id: str, body: KeyUpdateBody, admin: AdminPrincipal, keys: KeyServiceDep) -> ApiKey:
    """Set a key's own limits (on top of its owner's)."""
    row = keys.set_limits(admin.id, key_id, body.limits.model_dump(exclude_none=True))
    return ApiKey.from_row(row, time.time())


@router.post("/keys/{key_id}/revoke", response_model=ApiKey)
def revoke_any_key(key_id: str, admin: AdminPrincipal, keys: KeyServiceDep) -> ApiKey:
    """Revoke any user's key."""
    return ApiKey.from_row(keys.revoke(admin.id, None, key_id), time.time())


@router.post("/keys/{key_id}/reinstate", response_model=ApiKey)
def reinstate_key(key_id: str, admin: AdminPrincipal, keys: KeyServiceDep) -> ApiKey:
    """Lift a key's automatic suspension."""
    return ApiKey.from_row(keys.reinstate(admin.id, key_id), time.time())


@router.get("/alerts", response_model=AlertList)
def list_all_alerts(admin: AdminPrincipal, alerts: AlertsDep, unread: bool = False) -> AlertList:
    """Every user's security alerts, newest first."""
    return AlertList(data=[Alert.from_row(r) for r in alerts.list_alerts(None, unread_only=unread)])


@router.get("/pause", response_model=PauseList)
def pause_state(admin: AdminPrincipal, pause: PauseServiceDep) -> PauseList:
    """Current pauses (empty: generation runs for everyone)."""
    return PauseList(data=[p.to_dict() for p in pause.states()])


@router.post("/pause", response_model=PauseList)
def pause(body: PauseBody, admin: AdminPrincipal, pause: PauseServiceDep, settings: SettingsDep) -> PauseList:
    """Pause generation for everyone or one cohort: new requests get 503, queued jobs wait, reads work."""
    if body.cohort is not None:
        check_cohort(body.cohort)
    hold = settings.pause_hold_running if body.hold_running is None else body.hold_running
    pause.pause(admin.id, body.cohort, hold_running=hold, reason=body.reason)
    return PauseList(data=[p.to_dict() for p in pause.states()])


@router.post("/resume", response_model=PauseList)
def resume(body: ResumeBody, admin: AdminPrincipal, pause: PauseServiceDep) -> PauseList:
    """Resume generation: queued and held jobs continue where they stopped."""
    pause.resume(admin.id, body.cohort)
    return PauseList(data=[p.to_dict() for p in pause.states()])
