"""The published data policy: what Kinema stores about people, why, and for how long.

``GET /v1/policy/retention`` (JSON) and ``GET /policy/retention`` (a page) are generated from this
deployment's live settings, so the published policy is the enforced one. Public: no credentials.
"""

from __future__ import annotations

import html
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from kinema.api.deps import SettingsDep
from kinema.config import Settings

router = APIRouter(tags=["policy"])


def retention_policy(settings: Settings) -> dict[str, Any]:
    """The policy as data, from the settings that the sweeper and the services enforce."""
    return {
        "object": "retention_policy",
        "items": [
            {
                "data": "Likeness face data: a face descriptor and up to 3 face crops",
                "why": "To generate videos of the person with their consent, and to recognise their face in uploads "
                "(the face guard), as the person chose in their consent",
                "how": "Encrypted (AES-256-GCM) under a key for that likeness only; decrypted only in memory for the "
                "job that needs it; deleting the likeness destroys the key",
                "kept": f"Until the person deletes it; at most {settings.likeness_retention_days} days after its last "
                f"use (or the shorter period in their consent); {settings.likeness_revoked_retention_days} days after "
                "they withdraw consent",
            },
            {
                "data": "The enrolment clip",
                "why": "To check the person's movement and extract the face data",
                "how": "Decoded in memory only",
                "kept": "Not stored",
            },
            {
                "data": "Consent records and the likeness's usage log",
                "why": "To show the person what they agreed to and every video made with their likeness",
                "how": "In the database, visible to the person",
                "kept": "As long as the likeness exists",
            },
            {
                "data": "Generated videos, their prompts and uploaded inputs",
                "why": "To deliver the videos the user asked for",
                "how": "In the blob store, under the owner's account; the person depicted can also delete them",
                "kept": "Until the owner (or the person depicted) deletes them, or the account is deleted",
            },
            {
                "data": "Account, API key metadata (never the keys), sessions, alerts",
                "why": "To run the account and protect it",
                "how": "Passwords as argon2id hashes; keys and session ids as SHA-256 only",
                "kept": f"Until the account is deleted; sessions at most {int(settings.session_absolute_seconds)} s",
            },
            {
                "data": "Security audit log",
                "why": "Tamper-evident record of security events (required to detect abuse)",
                "how": "Ids and event names only: no passwords, keys, media or face data",
                "kept": "For the life of the deployment (an append-only log cannot forget single entries)",
            },
        ],
        "limits": {
            "likeness_retention_days": settings.likeness_retention_days,
            "likeness_revoked_retention_days": settings.likeness_revoked_retention_days,
            "unknown_faces_in_uploads": settings.unknown_faces,
        },
        "your_rights": [
            "GET /v1/me/export: everything about you, as JSON plus files",
            "DELETE /v1/me: delete your account, shredding your likeness",
            "POST /v1/videos/characters/{id}/revoke and DELETE /v1/videos/characters/{id}: withdraw consent, delete",
        ],
    }


@router.get("/v1/policy/retention")
def retention_json(settings: SettingsDep) -> dict[str, Any]:
    """What is stored, why, and for how long (from the live settings)."""
    return retention_policy(settings)


@router.get("/policy/retention", response_class=HTMLResponse)
def retention_page(settings: SettingsDep) -> HTMLResponse:
    """The same policy as a page."""
    policy = retention_policy(settings)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(item[k])}</td>" for k in ("data", "why", "how", "kept")) + "</tr>"
        for item in policy["items"]
    )
    rights = "".join(f"<li><code>{html.escape(r)}</code></li>" for r in policy["your_rights"])
    page = (
        "<!doctype html><html lang=en><meta charset=utf-8><title>Kinema: what we keep and for how long</title>"
        "<h1>What this Kinema keeps, why, and for how long</h1>"
        "<table border=1 cellpadding=4><tr><th>Data</th><th>Why</th><th>How</th><th>Kept</th></tr>"
        f"{rows}</table><h2>Your rights</h2><ul>{rights}</ul></html>"
    )
    return HTMLResponse(page)
