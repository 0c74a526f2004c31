"""Webhooks: endpoints per user, an outbox written with each video's final state, signed deliveries.

Wire-compatible with the openai SDK: endpoints are managed at ``/v1/webhook_endpoints`` and every
delivery carries Standard Webhooks headers (``webhook-id``, ``webhook-timestamp``,
``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``) that
``client.webhooks.unwrap(body, headers, secret=...)`` verifies.

Durability: :func:`record_video_events` runs inside the transaction that settles a video (completed
or failed), so an event row exists exactly when the state change does. Workers deliver due rows
(:meth:`WebhookService.deliver_due`) at least once, every try with the same ``webhook-id`` and the
same body, retrying with exponential backoff; an endpoint failing too often in a row is disabled
and its owner alerted.

Safety: a URL must be https (http only in dev mode or when allowed), and every address its host
resolves to must be public unless the operator allows private targets. The check is made when the
endpoint is saved and again at every delivery, and the connection goes to the very address that
was checked (so a DNS answer that changes in between, "DNS rebinding", cannot redirect it). Timeouts
are bounded, at most ``max_response_bytes`` of the answer is read, and redirects are not followed.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from kinema.audit.log import AuditLog
from kinema.crypto.vault import LikenessVault
from kinema.db.models import AlertRow, VideoRow, WebhookDeliveryRow, WebhookEndpointRow, WebhookOutboxRow
from kinema.netaddr import IPAddress, parse_address
from kinema.services.auth import new_id
from kinema.services.errors import InvalidRequest, NotFound

log = logging.getLogger(__name__)

EVENT_TYPES: tuple[str, ...] = ("video.completed", "video.failed")
"""Event types this server sends (the openai SDK's names)."""

SECRET_PREFIX = "whsec_"
_SECRET_PURPOSE = "webhook-signing-secret"
_OLD_SECRET_GRACE = 24 * 3600.0
_MAX_NAME = 128
_MAX_URL = 2048

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
Resolver = Callable[[str, int], list[IPAddress]]
Clock = Callable[[], float]


# -- signatures ------------------------------------------------------------------------------------


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` + base64 of 32 random bytes (the Standard Webhooks format)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_hint(secret: str) -> str:
    """A masked form safe to show again: the prefix and the last four characters."""
    return f"{SECRET_PREFIX}...{secret[-4:]}"


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature of one delivery, as Standard Webhooks (and the openai SDK) compute it."""
    key = base64.b64decode(secret[len(SECRET_PREFIX) :]) if secret.startswith(SECRET_PREFIX) else secret.encode()
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def event_payload(event_id: str, event_type: str, video_id: str, created_at: float) -> str:
    """The JSON body of an event, in the shape of the SDK's webhook event types."""
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": event_type,
            "created_at": int(created_at),
            "data": {"id": video_id},
        },
        separators=(",", ":"),
    )


# -- the outbox ------------------------------------------------------------------------------------


def record_video_events(session: Session, video_ids: Sequence[str], now: float) -> int:
    """Queue ``video.completed`` / ``video.failed`` for the settled videos among ``video_ids``.

    Call it inside the transaction that settled them: the events then commit (or roll back) with the
    state change itself. One event id per video, shared by all its owner's subscribed, enabled
    endpoints. Returns how many outbox rows were written.
    """
    if not video_ids:
        return 0
    videos = session.execute(
        select(VideoRow.id, VideoRow.owner_id, VideoRow.status).where(
            VideoRow.id.in_(list(video_ids)), VideoRow.status.in_(("completed", "failed"))
        )
    ).all()
    written = 0
    endpoints_of: dict[str, list[WebhookEndpointRow]] = {}
    for video in videos:
        if video.owner_id not in endpoints_of:
            endpoints_of[video.owner_id] = list(
                session.scalars(
                    select(WebhookEndpointRow).where(
                        WebhookEndpointRow.owner_id == video.owner_id, WebhookEndpointRow.enabled.is_(True)
                    )
                )
            )
        event_type = f"video.{video.status}"
        event_id = new_id("evt")
        body = event_payload(event_id, event_type, video.id, now)
        for endpoint in endpoints_of[video.owner_id]:
            if event_type in (endpoint.event_types or []):
                session.add(
                    WebhookOutboxRow(
                        event_id=event_id,
                        endpoint_id=endpoint.id,
                        event_type=event_type,
                        payload=body,
                        attempts=0,
                        next_attempt_at=now,
                        created_at=now,
                    )
                )
                written += 1
    return written


# -- where a delivery may go -----------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A checked webhook URL: where to connect (``address``, one that passed the check) and what to ask."""

    scheme: str
    host: str
    port: int
    path: str
    address: IPAddress


class UnsafeTarget(Exception):
    """The URL may not be delivered to; the message says why and is safe to show its owner."""


def is_public(addr: IPAddress) -> bool:
    """Whether ``addr`` is a public unicast address (not private, loopback, link-local, multicast,
    reserved, unspecified, shared CGNAT space, documentation ranges, ...)."""
    if addr.is_multicast or addr.is_loopback or addr.is_link_local or addr.is_unspecified or addr.is_reserved:
        return False
    if addr.is_private:
        return False
    embeds_ipv4 = isinstance(addr, ipaddress.IPv6Address) and (
        addr.sixtofour is not None or addr.teredo is not None or addr in _NAT64
    )
    if embeds_ipv4:
        return False  # translations that embed an IPv4 address, which may be a private one
    return addr.is_global


def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (an IP literal resolves to itself)."""
    literal = parse_address(host)
    if literal is not None:
        return [literal]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeTarget(f"the host '{host}' does not resolve ({exc})") from None
    out: list[IPAddress] = []
    for info in infos:
        addr = parse_address(str(info[4][0]))
        if addr is not None and addr not in out:
            out.append(addr)
    return out


def split_url(url: str, *, allow_http: bool) -> tuple[str, str, int, str]:
    """(scheme, host, port, path with query) of a webhook URL; UnsafeTarget when it is not acceptable."""
    if len(url) > _MAX_URL:
        raise UnsafeTarget(f"the URL is longer than {_MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeTarget(f"the URL does not parse ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme != "https" and not (scheme == "http" and allow_http):
        raise UnsafeTarget(
            "the URL must start with https://" + ("" if allow_http else " (http is allowed in dev mode only)")
        )
    if parts.username is not None or parts.password is not None:
        raise UnsafeTarget("the URL must not contain a user name or password")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeTarget("the URL has no host")
    if any(c.isspace() for c in url):
        raise UnsafeTarget("the URL contains white space")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return scheme, host, port or (443 if scheme == "https" else 80), path


def check_target(url: str, *, allow_http: bool, allow_private: bool, resolver: Resolver) -> Target:
    """Parse ``url``, resolve its host, and refuse it unless every address is allowed.

    Every address must pass (not just the one we would connect to), so a name that mixes a public
    and a private address is refused rather than depending on which one the resolver lists first.
    """
    scheme, host, port, path = split_url(url, allow_http=allow_http)
    addresses = resolver(host, port)
    if not addresses:
        raise UnsafeTarget(f"the host '{host}' resolves to no address")
    if not allow_private:
        for addr in addresses:
            if not is_public(addr):
                raise UnsafeTarget(
                    f"the host '{host}' resolves to {addr}, which is not a public address "
                    "(private, loopback, link-local, multicast and reserved targets are refused)"
                )
    return Target(scheme, host, port, path, addresses[0])


# -- one HTTP POST to a checked address ------------------------------------------------------------


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to the checked address, whatever the host name resolves to now."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = str(target.address)

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """TLS to the checked address, with the certificate verified against the URL's host name."""

    def __init__(self, target: Target, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=context)
        self._address = str(target.address)
        self._tls = context

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


@dataclass(frozen=True)
class PostResult:
    """What one delivery try got: the HTTP status (None when none came) or an error."""

    status: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def post(
    target: Target,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout: float,
    max_response_bytes: int,
    tls: ssl.SSLContext | None = None,
) -> PostResult:
    """POST ``body`` to ``target`` (its checked address). Redirects are not followed (a 3xx is a failure);
    the whole exchange is cut off after twice ``timeout`` even if the receiver trickles bytes."""
    conn: http.client.HTTPConnection
    if target.scheme == "https":
        conn = _PinnedHTTPS(target, timeout, tls or ssl.create_default_context())
    else:
        conn = _PinnedHTTP(target, timeout)
    watchdog = threading.Timer(2 * timeout, _abort, args=(conn,))
    watchdog.daemon = True
    watchdog.start()
    try:
        conn.request("POST", target.path, body=body, headers=headers)
        response = conn.getresponse()
        response.read(max_response_bytes)  # drained up to the cap so the receiver sees a clean read
        return PostResult(response.status, None if 200 <= response.status < 300 else f"HTTP {response.status}")
    except (OSError, http.client.HTTPException) as exc:
        return PostResult(None, f"{type(exc).__name__}: {exc}"[:500])
    finally:
        watchdog.cancel()
        conn.close()


def _abort(conn: http.client.HTTPConnection) -> None:
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed: nothing left to stop
            sock.shutdown(socket.SHUT_RDWR)


# -- the service -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryPolicy:
    """Safety and retry settings of deliveries."""

    allow_http: bool = False
    allow_private: bool = False
    max_attempts: int = 16
    backoff_seconds: float = 5.0
    backoff_max_seconds: float = 3600.0
    disable_after_failures: int = 20
    timeout_seconds: float = 10.0
    max_response_bytes: int = 64 * 1024

    def backoff(self, attempt: int) -> float:
        """Wait after failed try number ``attempt`` (1-based): base, 2 x base, 4 x base, ... up to the cap."""
        return float(min(self.backoff_max_seconds, self.backoff_seconds * 2 ** max(0, attempt - 1)))


@dataclass(frozen=True)
class Created:
    """An endpoint and its signing secret, which is shown this once."""

    row: WebhookEndpointRow
    secret: str


class WebhookService:
    """Manages a user's endpoints and delivers their events."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        vault: LikenessVault,
        policy: DeliveryPolicy,
        *,
        audit: AuditLog | None = None,
        resolver: Resolver = system_resolver,
        clock: Clock = time.time,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._sessions = sessions
        self._vault = vault  # each endpoint's secret is sealed under its own data key
        self.policy = policy
        self._audit = audit  # endpoint changes are security events: a webhook sends video links elsewhere
        self._resolve = resolver
        self._clock = clock
        self._tls = tls

    # -- endpoints -------------------------------------------------------------------------------

    def _checked_url(self, url: str) -> str:
        try:
            check_target(
                url, allow_http=self.policy.allow_http, allow_private=self.policy.allow_private, resolver=self._resolve
            )
        except UnsafeTarget as exc:
            raise InvalidRequest(f"Invalid 'url': {exc}.", param="url", code="invalid_url") from None
        return url

    @staticmethod
    def _checked_types(event_types: Sequence[str]) -> list[str]:
        unknown = [t for t in event_types if t not in EVENT_TYPES]
        if unknown:
            raise InvalidRequest(
                f"Invalid 'event_types': this server does not send {', '.join(unknown)}; "
                f"it sends {', '.join(EVENT_TYPES)}.",
                param="event_types",
                code="invalid_value",
            )
        if not event_types:
            raise InvalidRequest("Invalid 'event_types': name at least one.", param="event_types", code="invalid_value")
        return sorted(set(event_types))

    def _record(self, action: str, owner_id: str, row: WebhookEndpointRow, **details: Any) -> None:
        """An audit entry for a change to an endpoint: its host only, since a URL may carry a token."""
        if self._audit is not None:
            host = urlsplit(row.url).hostname or ""
            self._audit.append(action, actor=owner_id, target=row.id, details={"host": host, **details})

    def _seal(self, endpoint_id: str, secret: str) -> bytes:
        return self._vault.encrypt(endpoint_id, secret.encode(), _SECRET_PURPOSE)

    def _open(self, endpoint_id: str, sealed: bytes) -> str:
        return self._vault.decrypt(endpoint_id, sealed, _SECRET_PURPOSE).decode()

    def create(self, owner_id: str, *, name: str, url: str, event_types: Sequence[str]) -> Created:
        """A new endpoint for ``owner_id``; the URL is checked (scheme, and every resolved address)."""
        types = self._checked_types(event_types)
        self._checked_url(url)
        now = self._clock()
        # Milliseconds first, then randomness: ids sort by creation time, for the list's cursor.
        endpoint_id = f"we_{int(now * 1000):012x}{secrets.token_hex(8)}"
        secret = new_secret()
        self._vault.create(endpoint_id)
        row = WebhookEndpointRow(
            id=endpoint_id,
            owner_id=owner_id,
            name=name,
            url=url,
            event_types=types,
            secret=self._seal(endpoint_id, secret),
            secret_hint=secret_hint(secret),
            enabled=True,
            consecutive_failures=0,
            created_at=now,
            updated_at=now,
        )
        with self._sessions.begin() as s:
            s.add(row)
        self._record("webhook.create", owner_id, row, event_types=types)
        return Created(row, secret)

    def get(self, owner_id: str, endpoint_id: str) -> WebhookEndpointRow:
        """One of the owner's endpoints; 404 for anyone else's."""
        with self._sessions() as s:
            return self._mine(s, owner_id, endpoint_id)

    @staticmethod
    def _mine(s: Session, owner_id: str, endpoint_id: str) -> WebhookEndpointRow:
        row = s.scalar(
            select(WebhookEndpointRow).where(
                WebhookEndpointRow.id == endpoint_id, WebhookEndpointRow.owner_id == owner_id
            )
        )
        if row is None:
            raise NotFound("webhook endpoint", endpoint_id)
        return row

    def page(
        self, owner_id: str, *, after: str | None = None, limit: int = 20
    ) -> tuple[list[WebhookEndpointRow], bool]:
        """The owner's endpoints, oldest first, after the one with id ``after``; and whether more follow."""
        q = select(WebhookEndpointRow).where(WebhookEndpointRow.owner_id == owner_id)
        if after:  # ids sort by creation time, so the cursor needs no lookup (and survives its deletion)
            q = q.where(WebhookEndpointRow.id > after)
        with self._sessions() as s:
            rows = list(s.scalars(q.order_by(WebhookEndpointRow.id).limit(limit + 1)))
        return rows[:limit], len(rows) > limit

    def update(
        self,
        owner_id: str,
        endpoint_id: str,
        *,
        name: str | None = None,
        url: str | None = None,
        event_types: Sequence[str] | None = None,
        enabled: bool | None = None,
    ) -> WebhookEndpointRow:
        """Change what is given; ``enabled=True`` re-enables an endpoint that was disabled for failures."""
        types = self._checked_types(event_types) if event_types is not None else None
        if url is not None:
            self._checked_url(url)
        with self._sessions.begin() as s:
            row = self._mine(s, owner_id, endpoint_id)
            before = (row.name, row.url, list(row.event_types), row.enabled)
            if name is not None:
                row.name = name
            if url is not None:
                row.url = url
            if types is not None:
                row.event_types = types
            if enabled is not None:
                row.enabled = enabled
                row.disabled_reason = None if enabled else "disabled by its owner"
                if enabled:
                    row.consecutive_failures = 0
            changed = (row.name, row.url, list(row.event_types), row.enabled) != before
            if changed:
                row.updated_at = self._clock()
        if changed:
            self._record("webhook.update", owner_id, row, event_types=list(row.event_types), enabled=row.enabled)
        return row

    def delete(self, owner_id: str, endpoint_id: str) -> None:
        """Delete the endpoint, its pending events and its delivery log; its secret's key is shredded."""
        with self._sessions.begin() as s:
            row = self._mine(s, owner_id, endpoint_id)
            s.execute(delete(WebhookOutboxRow).where(WebhookOutboxRow.endpoint_id == row.id))
            s.execute(delete(WebhookDeliveryRow).where(WebhookDeliveryRow.endpoint_id == row.id))
            s.delete(row)
        self._vault.shred(endpoint_id)
        self._record("webhook.delete", owner_id, row)

    def rotate_secret(self, owner_id: str, endpoint_id: str, *, keep_old_for_24_hours: bool = False) -> Created:
        """A new signing secret; the old one stops at once, or after 24 h (deliveries carry both meanwhile)."""
        secret = new_secret()
        now = self._clock()
        with self._sessions.begin() as s:
            row = self._mine(s, owner_id, endpoint_id)
            if keep_old_for_24_hours:
                row.old_secret, row.old_secret_expires_at = row.secret, now + _OLD_SECRET_GRACE
            else:
                row.old_secret, row.old_secret_expires_at = None, None
            row.secret = self._seal(row.id, secret)
            row.secret_hint = secret_hint(secret)
            row.updated_at = now
        self._record("webhook.rotate_secret", owner_id, row, keep_old_for_24_hours=keep_old_for_24_hours)
        return Created(row, secret)

    def test(self, owner_id: str, endpoint_id: str, event_type: str) -> PostResult:
        """Send a sample event now (not through the outbox, not retried); the receiver's status comes back."""
        self._checked_types([event_type])
        row = self.get(owner_id, endpoint_id)
        now = self._clock()
        event_id = new_id("evt")
        body = event_payload(event_id, event_type, "video_test", now)
        result = self._send(row, event_id, body, now)
        self._log(row.id, event_id, event_type, 0, result, 0)
        return result

    def deliveries(self, owner_id: str, endpoint_id: str, *, limit: int = 50) -> list[WebhookDeliveryRow]:
        """The endpoint's most recent delivery tries, newest first."""
        with self._sessions() as s:
            self._mine(s, owner_id, endpoint_id)
            return list(
                s.scalars(
                    select(WebhookDeliveryRow)
                    .where(WebhookDeliveryRow.endpoint_id == endpoint_id)
                    .order_by(WebhookDeliveryRow.id.desc())
                    .limit(limit)
                )
            )

    def delete_all(self, owner_id: str) -> int:
        """Delete every endpoint of ``owner_id`` (account deletion); returns how many."""
        with self._sessions() as s:
            ids = list(s.scalars(select(WebhookEndpointRow.id).where(WebhookEndpointRow.owner_id == owner_id)))
        for endpoint_id in ids:
            self.delete(owner_id, endpoint_id)
        return len(ids)

    # -- delivery --------------------------------------------------------------------------------

    def deliver_due(self, limit: int = 20) -> int:
        """Deliver events that are due (one try each); returns how many tries were made.

        A row is claimed by raising its ``attempts`` with a compare-and-set and pushing its next try
        beyond the time a try can take, so concurrent workers do not send it twice at once; a worker
        that dies mid-try leaves it to be retried then (at least once, same ``webhook-id``).
        """
        now = self._clock()
        with self._sessions() as s:
            due = s.execute(
                select(WebhookOutboxRow.id, WebhookOutboxRow.attempts)
                .join(WebhookEndpointRow, WebhookEndpointRow.id == WebhookOutboxRow.endpoint_id)
                .where(
                    WebhookOutboxRow.delivered_at.is_(None),
                    WebhookOutboxRow.given_up_at.is_(None),
                    WebhookOutboxRow.next_attempt_at <= now,
                    WebhookEndpointRow.enabled.is_(True),
                )
                .order_by(WebhookOutboxRow.next_attempt_at, WebhookOutboxRow.id)
                .limit(limit)
            ).all()
        tries = 0
        for outbox_id, attempts in due:
            claimed = self._claim(outbox_id, attempts)
            if claimed is not None:
                self._try(claimed)
                tries += 1
        return tries

    def _claim(self, outbox_id: int, attempts: int) -> WebhookOutboxRow | None:
        hold = 3 * self.policy.timeout_seconds + 5
        with self._sessions.begin() as s:
            won = s.execute(
                update(WebhookOutboxRow)
                .where(WebhookOutboxRow.id == outbox_id, WebhookOutboxRow.attempts == attempts)
                .values(attempts=attempts + 1, next_attempt_at=self._clock() + hold)
            ).rowcount  # type: ignore[attr-defined]
            if not won:
                return None
            row = s.get(WebhookOutboxRow, outbox_id)
            if row is not None:
                s.expunge(row)
            return row

    def _try(self, item: WebhookOutboxRow) -> None:
        with self._sessions() as s:
            endpoint = s.get(WebhookEndpointRow, item.endpoint_id)
        if endpoint is None or not endpoint.enabled:
            return
        started = time.monotonic()
        result = self._send(endpoint, item.event_id, item.payload, self._clock())
        duration_ms = int((time.monotonic() - started) * 1000)
        self._settle(item, endpoint, result, duration_ms)

    def _send(self, endpoint: WebhookEndpointRow, event_id: str, body: str, now: float) -> PostResult:
        """Check the URL again (resolving it now), sign, and POST to the address that was checked."""
        p = self.policy
        try:
            target = check_target(
                endpoint.url, allow_http=p.allow_http, allow_private=p.allow_private, resolver=self._resolve
            )
        except UnsafeTarget as exc:
            return PostResult(None, f"refused: {exc}")
        timestamp = int(now)
        data = body.encode()
        signatures = [sign(self._open(endpoint.id, endpoint.secret), event_id, timestamp, data)]
        if endpoint.old_secret is not None and (endpoint.old_secret_expires_at or 0) > now:
            signatures.append(sign(self._open(endpoint.id, endpoint.old_secret), event_id, timestamp, data))
        headers = {
            "content-type": "application/json",
            "user-agent": "Kinema-Webhooks/1",
            "webhook-id": event_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": " ".join(signatures),
        }
        return post(
            target, data, headers, timeout=p.timeout_seconds, max_response_bytes=p.max_response_bytes, tls=self._tls
        )

    def _settle(self, item: WebhookOutboxRow, endpoint: WebhookEndpointRow, result: PostResult, ms: int) -> None:
        now = self._clock()
        attempt = item.attempts  # already counts this try
        mine = (WebhookOutboxRow.id == item.id) & (WebhookOutboxRow.attempts == attempt)
        with self._sessions.begin() as s:
            if result.ok:
                s.execute(update(WebhookOutboxRow).where(mine).values(delivered_at=now, last_status=result.status))
                s.execute(
                    update(WebhookEndpointRow)
                    .where(WebhookEndpointRow.id == endpoint.id)
                    .values(consecutive_failures=0)
                )
            else:
                values: dict[str, Any] = {
                    "last_status": result.status,
                    "last_error": result.error,
                    "next_attempt_at": now + self.policy.backoff(attempt),
                }
                if attempt >= self.policy.max_attempts:
                    values["given_up_at"] = now
                s.execute(update(WebhookOutboxRow).where(mine).values(**values))
                self._count_failure(s, endpoint.id, now)
            s.add(_delivery(endpoint.id, item.event_id, item.event_type, attempt, result, ms, now))

    def _count_failure(self, s: Session, endpoint_id: str, now: float) -> None:
        s.execute(
            update(WebhookEndpointRow)
            .where(WebhookEndpointRow.id == endpoint_id)
            .values(consecutive_failures=WebhookEndpointRow.consecutive_failures + 1)
        )
        limit = self.policy.disable_after_failures
        disabled = s.execute(
            update(WebhookEndpointRow)
            .where(
                WebhookEndpointRow.id == endpoint_id,
                WebhookEndpointRow.enabled.is_(True),
                WebhookEndpointRow.consecutive_failures >= limit,
            )
            .values(enabled=False, disabled_reason=f"{limit} deliveries in a row failed", updated_at=now)
            .returning(WebhookEndpointRow.owner_id, WebhookEndpointRow.name, WebhookEndpointRow.url)
        ).first()
        if disabled is not None:  # exactly one failing try crosses the line: one alert
            s.add(
                AlertRow(
                    id=new_id("alert"),
                    user_id=disabled.owner_id,
                    kind="webhook_endpoint_disabled",
                    subject=endpoint_id,
                    message=(
                        f"Your webhook endpoint '{disabled.name}' ({disabled.url}) was disabled after {limit} failed "
                        "deliveries in a row. Fix the receiver, then re-enable it "
                        f"(POST /v1/webhook_endpoints/{endpoint_id} with enabled=true); events are kept meanwhile."
                    ),
                    created_at=now,
                )
            )
            log.warning("webhook endpoint %s disabled after %d failures in a row", endpoint_id, limit)

    def _log(self, endpoint_id: str, event_id: str, event_type: str, attempt: int, result: PostResult, ms: int) -> None:
        with self._sessions.begin() as s:
            s.add(_delivery(endpoint_id, event_id, event_type, attempt, result, ms, self._clock()))

    def run(self, stop: threading.Event, poll_seconds: float) -> None:
        """Deliver due events until ``stop`` is set; database errors are logged and retried."""
        while not stop.is_set():
            try:
                if self.deliver_due():
                    continue
            except Exception:
                log.exception("webhook delivery round failed")
            stop.wait(poll_seconds)


def _delivery(
    endpoint_id: str, event_id: str, event_type: str, attempt: int, result: PostResult, ms: int, now: float
) -> WebhookDeliveryRow:
    return WebhookDeliveryRow(
        endpoint_id=endpoint_id,
        event_id=event_id,
        event_type=event_type,
        attempt=attempt,
        status_code=result.status,
        error=result.error,
        duration_ms=ms,
        created_at=now,
    )
