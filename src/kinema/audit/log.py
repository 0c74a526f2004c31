"""The append-only audit log: security events in ``audit_log``, signed checkpoints in
``audit_checkpoints``, and a one-row ``audit_head`` whose row lock serializes appends.

Appends take the head row's lock (``UPDATE audit_head SET next_seq = next_seq + 1``), which holds
until the appending transaction ends, on SQLite (the database write lock) and PostgreSQL (a row
lock) alike; so seqs are contiguous, never duplicated, and commit in seq order, which means any
reader sees a contiguous prefix of the log. A rolled-back append rolls its seq back with it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Any, cast

from sqlalchemy import CursorResult, Table, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from kinema.audit import merkle
from kinema.audit.checkpoint import Checkpoint, CheckpointSigner, verify_signature
from kinema.db.models import AuditCheckpointRow, AuditEntryRow, AuditHeadRow

ACTIONS = (
    # Not enforced (any short dotted name is accepted); the events the service is meant to record.
    "auth.login", "auth.login_failed", "key.create", "key.revoke", "key.suspend", "invite.create",
    "invite.accept", "role.change", "service.pause", "service.resume", "video.create",
    "video.delete", "moderation.refusal", "admin.action",
)  # fmt: skip


class AuditTamperError(RuntimeError):
    """Raised by :meth:`AuditLog.checkpoint` rather than sign over a log that fails verification."""


@dataclass
class VerifyReport:
    ok: bool
    size: int
    problems: list[str] = field(default_factory=list)
    checkpoint_size: int | None = None  # size of the newest checkpoint checked against, if any


# --- secrets -------------------------------------------------------------------------------------

_SECRET_WORDS = frozenset(
    {"password", "passwd", "pwd", "passphrase", "token", "secret", "key", "apikey", "authorization",
     "credential", "cookie", "descriptor", "embedding", "face", "biometric"}
)  # fmt: skip
_SECRET_SUBSTRINGS = ("password", "passwd", "secret", "apikey", "token", "authorization", "embedding",
                      "descriptor", "privatekey", "credential")  # fmt: skip
_HARMLESS_LAST_WORDS = frozenset({"id", "ids", "count"})  # "key_id", "face_count": names, not secrets
_SECRET_VALUE = re.compile(r"^\s*(bearer|basic)\s+\S", re.IGNORECASE)


def secret_reason(name: str) -> str | None:
    """Why a details key looks like it would hold a secret, token or biometric data (or None)."""
    snake = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()
    words = [w for w in re.split(r"[^a-z0-9]+", snake) if w]
    if words and words[-1] in _HARMLESS_LAST_WORDS:
        return None
    for w in words:
        if w in _SECRET_WORDS or (w.endswith("s") and w[:-1] in _SECRET_WORDS):
            return f"key {name!r} looks like a secret or biometric field"
    compact = "".join(words)
    for s in _SECRET_SUBSTRINGS:
        if s in compact:
            return f"key {name!r} looks like a secret or biometric field"
    return None


def check_no_secrets(details: Any, path: str = "details") -> None:
    """Raise ValueError if ``details`` (recursively) has a secret-looking key or credential value."""
    if isinstance(details, dict):
        for k, v in details.items():
            if not isinstance(k, str):
                raise ValueError(f"{path}: keys must be strings")
            reason = secret_reason(k)
            if reason:
                raise ValueError(f"{path}: {reason}; audit entries must not hold secrets")
            check_no_secrets(v, f"{path}.{k}")
    elif isinstance(details, (list, tuple)):
        for i, v in enumerate(details):
            check_no_secrets(v, f"{path}[{i}]")
    elif isinstance(details, str) and _SECRET_VALUE.match(details):
        raise ValueError(f"{path}: value looks like a credential; audit entries must not hold secrets")


# --- hashing -------------------------------------------------------------------------------------


def canonical_entry_bytes(
    seq: int, at: float, actor: str | None, action: str, target: str | None, details: dict[str, Any]
) -> bytes:
    """JSON with sorted keys and no whitespace of {seq, at, actor, action, target, details}."""
    body = {"seq": seq, "at": at, "actor": actor, "action": action, "target": target, "details": details}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def entry_leaf_hash(
    seq: int, at: float, actor: str | None, action: str, target: str | None, details: dict[str, Any]
) -> str:
    """Hex RFC 6962 leaf hash of an entry."""
    return merkle.leaf_hash(canonical_entry_bytes(seq, at, actor, action, target, details)).hex()


def _row_leaf(r: Any) -> str:
    return entry_leaf_hash(int(r.seq), float(r.at), r.actor, r.action, r.target, r.details or {})


def _check_rows(rows: list[Any], problems: list[str]) -> list[bytes]:
    """Recompute leaves from row contents (edits) and check seq contiguity (deletes); returns the
    recomputed leaf hashes of the rows in seq order."""
    leaves: list[bytes] = []
    expected = 0
    for r in rows:
        if r.seq > expected:
            gap = f"{expected}" if r.seq == expected + 1 else f"{expected}..{r.seq - 1}"
            problems.append(f"gap at seq {gap} (deleted)")
        elif r.seq < expected:  # cannot happen with a primary key, but a copied table may lack one
            problems.append(f"entry {r.seq} duplicated or out of order")
        expected = r.seq + 1
        leaf = _row_leaf(r)
        if leaf != r.leaf_hash:
            problems.append(f"entry {r.seq} edited (hash mismatch)")
        leaves.append(bytes.fromhex(leaf))
    return leaves


def _check_against(
    cp: Checkpoint, label: str, rows: list[Any], leaves: list[bytes], public_key_pem: str, problems: list[str]
) -> None:
    if not verify_signature(cp, public_key_pem):
        problems.append(f"{label} checkpoint size {cp.size} signature invalid (key {cp.key_id})")
    last = rows[-1].seq if rows else -1
    if last + 1 < cp.size:
        problems.append(f"entries missing: {last + 1}..{cp.size - 1} (truncated below checkpoint size {cp.size})")
    prefix = [leaf for r, leaf in zip(rows, leaves, strict=True) if r.seq < cp.size]
    if len(prefix) != cp.size or merkle.root(prefix).hex() != cp.root_hex:
        problems.append(f"root mismatch vs checkpoint size {cp.size}")


# --- the log -------------------------------------------------------------------------------------


def _as_checkpoint(row: AuditCheckpointRow) -> Checkpoint:
    """The stored checkpoint ``row`` as a :class:`Checkpoint`."""
    return Checkpoint(row.size, row.root_hex, row.at, row.key_id, row.signature_hex)


class AuditLog:
    """Append-only, tamper-evident log of security events."""

    def __init__(
        self, sessions: sessionmaker[Session], signer: CheckpointSigner, clock: Callable[[], float] = time.time
    ) -> None:
        self._sessions = sessions
        self.signer = signer
        self._clock = clock

    # appending

    def append(
        self, action: str, *, actor: str | None = None, target: str | None = None, details: dict | None = None
    ) -> int:
        """Append one event in its own transaction; returns its seq."""
        for attempt in range(5):
            try:
                with self._sessions() as session, session.begin():
                    return self.append_in(session, action, actor=actor, target=target, details=details)
            except IntegrityError:  # only when two first-ever appends both create a missing head row
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def append_in(
        self,
        session: Session,
        action: str,
        *,
        actor: str | None = None,
        target: str | None = None,
        details: dict | None = None,
    ) -> int:
        """Append inside the caller's transaction (the event commits or rolls back with it).

        Holds the audit head lock until that transaction ends: keep such transactions short.
        Returns the seq the entry will have.
        """
        if not isinstance(action, str) or not action or len(action) > 64:
            raise ValueError("action must be a non-empty string of at most 64 characters")
        if actor is not None and len(actor) > 128:
            raise ValueError("actor must be at most 128 characters")
        if target is not None and len(target) > 256:
            raise ValueError("target must be at most 256 characters")
        details = {} if details is None else details
        if not isinstance(details, dict):
            raise ValueError("details must be a dict")
        check_no_secrets(details)
        # Normalize to what the JSON column gives back (tuples -> lists, ...) so the hash survives.
        details = json.loads(json.dumps(details, allow_nan=False))
        at = float(self._clock())

        seq = self._take_seq(session)
        leaf = entry_leaf_hash(seq, at, actor, action, target, details)
        session.execute(
            insert(AuditEntryRow).values(
                seq=seq, at=at, actor=actor, action=action, target=target, details=details, leaf_hash=leaf
            )
        )
        return seq

    @staticmethod
    def _take_seq(session: Session) -> int:
        head = cast(Table, AuditHeadRow.__table__)
        res = cast(
            CursorResult[Any],
            session.execute(update(head).where(head.c.id == 1).values(next_seq=head.c.next_seq + 1)),
        )
        if res.rowcount == 0:  # tables made without migration 0004: create the head row now
            nxt = session.execute(select(func.coalesce(func.max(AuditEntryRow.seq) + 1, 0))).scalar_one()
            session.execute(insert(head).values(id=1, next_seq=int(nxt) + 1))
            return int(nxt)
        return int(session.execute(select(head.c.next_seq).where(head.c.id == 1)).scalar_one()) - 1

    # checkpoints

    def latest_checkpoint(self) -> Checkpoint | None:
        with self._sessions() as session:
            row = session.scalars(select(AuditCheckpointRow).order_by(AuditCheckpointRow.id.desc()).limit(1)).first()
            return _as_checkpoint(row) if row else None

    def checkpoint(self) -> Checkpoint:
        """Sign and store a checkpoint over all entries. Refuses (AuditTamperError) if the entries
        fail verification or are inconsistent with the latest stored checkpoint."""
        with self._sessions() as session, session.begin():
            rows = self._rows(session)
            latest = session.scalars(select(AuditCheckpointRow).order_by(AuditCheckpointRow.id.desc()).limit(1)).first()
            problems: list[str] = []
            leaves = _check_rows(rows, problems)
            if latest is not None:
                _check_against(_as_checkpoint(latest), "stored", rows, leaves, self.signer.public_key_pem, problems)
            if problems:
                raise AuditTamperError("; ".join(problems))
            cp = self.signer.sign(len(leaves), merkle.root(leaves).hex(), float(self._clock()))
            session.add(
                AuditCheckpointRow(
                    size=cp.size, root_hex=cp.root_hex, at=cp.at, key_id=cp.key_id, signature_hex=cp.signature_hex
                )
            )
            return cp

    # export and verification

    def export(self, out: IO[str], *, fresh_checkpoint: bool = True) -> int:
        """Write JSON lines, every entry (``"type": "entry"``) then a checkpoint (``"type":
        "checkpoint"``) covering exactly those entries; returns the number of entries written.

        With ``fresh_checkpoint`` (default) a new checkpoint is taken first (refused if the log is
        tampered); otherwise the latest stored one is used and every entry is written (forensics).
        """
        cp = self.checkpoint() if fresh_checkpoint else self.latest_checkpoint()
        with self._sessions() as session:
            rows = self._rows(session, below=cp.size if fresh_checkpoint and cp else None)
        for r in rows:
            entry = {"type": "entry", "seq": r.seq, "at": r.at, "actor": r.actor, "action": r.action,
                     "target": r.target, "details": r.details or {}, "leaf_hash": r.leaf_hash}  # fmt: skip
            out.write(json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n")
        if cp is not None:
            out.write(cp.to_json() + "\n")
        return len(rows)

    def verify(self, *, checkpoint: Checkpoint | None = None) -> VerifyReport:
        """Check every entry against its stored leaf hash, seq contiguity, the head counter, and the
        latest stored signed checkpoint, plus ``checkpoint`` (e.g. one exported earlier) if given."""
        with self._sessions() as session:
            rows = self._rows(session)
            head = session.scalar(select(AuditHeadRow.next_seq).where(AuditHeadRow.id == 1))
            stored = session.scalars(select(AuditCheckpointRow).order_by(AuditCheckpointRow.id.desc()).limit(1)).first()
        problems: list[str] = []
        leaves = _check_rows(rows, problems)
        last = rows[-1].seq if rows else -1
        if head is not None and head > last + 1:
            problems.append(f"entries missing: {last + 1}..{head - 1} (truncated below head counter {head})")
        checked: list[Checkpoint] = []
        if stored is not None:
            checked.append(_as_checkpoint(stored))
            _check_against(checked[-1], "stored", rows, leaves, self.signer.public_key_pem, problems)
        if checkpoint is not None:
            checked.append(checkpoint)
            _check_against(checkpoint, "given", rows, leaves, self.signer.public_key_pem, problems)
        return VerifyReport(
            ok=not problems,
            size=len(rows),
            problems=problems,
            checkpoint_size=max((c.size for c in checked), default=None),
        )

    @staticmethod
    def _rows(session: Session, below: int | None = None) -> list[Any]:
        t = AuditEntryRow.__table__
        q = select(t.c.seq, t.c.at, t.c.actor, t.c.action, t.c.target, t.c.details, t.c.leaf_hash).order_by(t.c.seq)
        if below is not None:
            q = q.where(t.c.seq < below)
        return list(session.execute(q).all())


def verify_export(lines: Iterable[str], public_key_pem: str) -> VerifyReport:
    """Verify an exported JSON-lines file on its own: leaf hashes, contiguity, and the final
    checkpoint's signature and root. Use this offline, without the database."""
    rows: list[Any] = []
    cp: Checkpoint | None = None
    problems: list[str] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        d = json.loads(line)
        if d.get("type") == "checkpoint":
            cp = Checkpoint.from_json(d)
        elif d.get("type") == "entry":
            rows.append(_ExportRow(**{k: d[k] for k in _ExportRow.__dataclass_fields__}))
        else:
            problems.append(f"line {n}: unknown record type {d.get('type')!r}")
    leaves = _check_rows(rows, problems)
    if cp is None:
        problems.append("no checkpoint in export")
    else:
        _check_against(cp, "exported", rows, leaves, public_key_pem, problems)
    return VerifyReport(ok=not problems, size=len(rows), problems=problems, checkpoint_size=cp.size if cp else None)


@dataclass
class _ExportRow:
    seq: int
    at: float
    actor: str | None
    action: str
    target: str | None
    details: dict[str, Any]
    leaf_hash: str
