"""Applies the moderation policy to prompts and records every refusal (without the prompt unless allowed)."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from kinema.audit.log import AuditLog
from kinema.db.models import ModerationRefusalRow
from kinema.moderation.checker import Moderator, phrase_regex
from kinema.moderation.normalize import normalize
from kinema.moderation.policy import Policy
from kinema.services.errors import InvalidRequest


class ModerationBlocked(InvalidRequest):
    """A prompt the policy refuses (400, code ``moderation_blocked``); the message names the category."""

    def __init__(self, category: str) -> None:
        super().__init__(
            f"The prompt was refused by this deployment's content policy (category: {category}). "
            "Rephrase it, or ask the operator if you believe this is a mistake.",
            param="prompt",
            code="moderation_blocked",
        )
        self.category = category


class PromptGuard:
    """Checks prompts against the policy; a refusal is recorded, then raised as :class:`ModerationBlocked`."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        policy: Policy,
        moderator: Moderator,
        audit: AuditLog,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._audit = audit
        self._sessions = sessions
        self._policy = policy
        self._moderator = moderator
        self._clock = clock
        self._log_prompt = {c.name: c.log_prompt for c in policy.categories}

    def check(self, owner_id: str, action: str, prompt: str) -> None:
        """Return if ``prompt`` is allowed; otherwise record the refusal and raise :class:`ModerationBlocked`."""
        verdict = self._moderator.check(prompt)
        if verdict.allowed:
            return
        self._refuse(owner_id, action, prompt, verdict.category or "unspecified")

    def check_restrictions(self, owner_id: str, action: str, prompt: str, restrictions: str) -> None:
        """A likeness owner's restrictions (phrases separated by commas, semicolons or lines) against a
        prompt that uses the likeness, matched as the policy matches its terms (evasions included)."""
        text = normalize(prompt)
        for phrase in re.split(r"[,;\n]+", restrictions):
            if phrase.strip() and phrase_regex(phrase.strip()).search(text):
                self._refuse(owner_id, action, prompt, "likeness_restriction")

    def _refuse(self, owner_id: str, action: str, prompt: str, category: str) -> None:
        """Record a refusal (the prompt itself only if the category's policy allows) and raise it."""
        keep = self._log_prompt.get(category, False)
        digest = hashlib.sha256(prompt.encode()).hexdigest()
        with self._sessions.begin() as s:
            self._audit.append_in(
                s,
                "moderation.refuse",
                actor=owner_id,
                details={
                    "action": action,
                    "category": category,
                    "policy_version": self._policy.version,
                    "prompt_sha256": digest,
                    **({"prompt": prompt} if keep else {}),
                },
            )
            s.add(
                ModerationRefusalRow(
                    owner_id=owner_id,
                    action=action,
                    category=category,
                    policy_version=self._policy.version,
                    prompt_sha256=digest,
                    prompt=prompt if keep else None,
                    created_at=self._clock(),
                )
            )
        raise ModerationBlocked(category)
