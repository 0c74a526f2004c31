"""Provenance on every output: an invisible watermark in the frames and a signed C2PA manifest on the files.

Neither carries a user's identity. Both carry an opaque job reference: an HMAC of the video id under a
secret that never leaves the deployment, so only this deployment can map a file back to its job.
The C2PA manifest holds the reference in full, and the watermark holds 32 bits of it plus the
deployment id. The verifier maps either back to a job through indexed columns on the videos table.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from kinema import __version__
from kinema.provenance import c2pa
from kinema.provenance import watermark as wm
from kinema.provenance.certs import SigningIdentity, ensure_signing_identity, load_signing_identity

_SECRET_FILE = "job-ref.key"


@dataclass(frozen=True)
class Marks:
    """What a finished job's provenance is filed under, so a file can be traced back to it."""

    job_ref: str
    watermark_tag: int


@dataclass(frozen=True)
class Verification:
    """What a file says about itself: its C2PA state and watermark, and the job both point to."""

    c2pa: c2pa.C2paReport
    watermark: wm.Detection
    deployment_match: bool
    job_ref: str | None
    watermark_tag: int | None


def _load_or_create_secret(folder: Path) -> bytes:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / _SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(fd, "wb") as fh:
        fh.write(secrets.token_bytes(32))
    return path.read_bytes()


class ProvenanceService:
    """Watermarks frames, signs files and verifies uploads for one deployment."""

    def __init__(self, identity: SigningIdentity, secret: bytes, deployment_id: int) -> None:
        if not 0 <= deployment_id < 2**16:
            raise ValueError("deployment_id must fit in 16 bits")
        self.identity = identity
        self._secret = secret
        self.deployment_id = deployment_id

    @classmethod
    def from_folder(
        cls,
        folder: Path,
        *,
        chain: Path | None = None,
        key: Path | None = None,
        anchor: Path | None = None,
        alg: str = "es256",
        deployment_id: int | None = None,
    ) -> ProvenanceService:
        """The deployment's identity: a configured chain and key, else a local CA created at first start."""
        if chain is not None and key is not None:
            identity = load_signing_identity(chain, key, alg, anchor_path=anchor)
        else:
            identity = ensure_signing_identity(folder / "signing")
        secret = _load_or_create_secret(folder)
        if deployment_id is None:
            # Stable per deployment without configuration: derived from the trust anchor (or chain).
            basis = identity.anchor_pem or identity.chain_pem
            deployment_id = int.from_bytes(hashlib.sha256(basis).digest()[:2], "big")
        return cls(identity, secret, deployment_id)

    def marks(self, video_id: str) -> Marks:
        """The opaque reference and watermark tag of a job (deterministic for the deployment)."""
        ref = hmac.new(self._secret, video_id.encode(), hashlib.sha256).hexdigest()[:32]
        return Marks(job_ref=ref, watermark_tag=wm.job_tag(ref))

    def payload(self, marks: Marks) -> wm.WatermarkPayload:
        """What a job's watermark says: this deployment's id and the job's tag."""
        return wm.WatermarkPayload(deployment_id=self.deployment_id, job_tag=marks.watermark_tag)

    def watermark(self, frames: np.ndarray, marks: Marks) -> np.ndarray:
        """Frames with the deployment id and the job's tag embedded invisibly."""
        return wm.embed(frames, self.payload(marks))

    def sign(self, data: bytes, mime: str, *, model: str, marks: Marks, created_at: float) -> bytes:
        """The file with a signed C2PA manifest (created by a trained algorithm; model; job reference)."""
        when = datetime.fromtimestamp(created_at, UTC)
        agent = f"Kinema {__version__}"
        if mime == "video/mp4":
            return c2pa.sign_mp4(
                data, self.identity, model=model, job_ref=marks.job_ref, created_at=when, software_agent=agent
            )
        return c2pa.sign_image(
            data, mime, self.identity, model=model, job_ref=marks.job_ref, created_at=when, software_agent=agent
        )

    def anchor_pem(self) -> bytes | None:
        """The trust anchor to give to anyone who wants to verify this deployment's files."""
        return self.identity.anchor_pem

    def verify(self, data: bytes, mime: str) -> Verification:
        """Check a file's C2PA manifest against this deployment's anchor, and look for the watermark."""
        report = c2pa.verify(data, mime, trust_anchors_pem=self.identity.anchor_pem)
        detection = wm.detect_video(data) if mime.startswith("video/") else wm.detect_image(data)
        payload = detection.payload if detection.found else None
        ours = payload is not None and payload.deployment_id == self.deployment_id
        return Verification(
            c2pa=report,
            watermark=detection,
            deployment_match=ours,
            job_ref=report.job_ref if report.state in ("trusted", "valid_untrusted") else None,
            watermark_tag=payload.job_tag if ours and payload is not None else None,
        )
