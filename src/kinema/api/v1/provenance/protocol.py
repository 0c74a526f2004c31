"""Wire models for /v1/provenance."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from kinema.services.verification import VerifyResult


class C2paState(BaseModel):
    state: Literal["trusted", "valid_untrusted", "tampered", "absent"]
    model: str | None = None
    created_at: int | None = None
    digital_source_type: str | None = None
    failure_codes: list[str] = []


class WatermarkState(BaseModel):
    state: Literal["found", "not_found", "too_small"] = Field(
        description="`too_small`: not found, in frames under 160 px on their short side, too small to carry a "
        "mark that can be relied on; such a miss says nothing about where the file came from."
    )
    found: bool
    confidence: float
    this_deployment: bool
    frames_used: int


class Verification(BaseModel):
    """What a file says about where it came from. ``video_id`` is shown only to the video's owner."""

    object: Literal["provenance.verification"] = "provenance.verification"
    c2pa: C2paState
    watermark: WatermarkState
    generated_here: bool
    video_id: str | None = None

    @classmethod
    def from_result(cls, result: VerifyResult) -> Verification:
        v = result.verification
        return cls(
            c2pa=C2paState(
                state=v.c2pa.state,
                model=v.c2pa.model,
                created_at=int(v.c2pa.created_at.timestamp()) if v.c2pa.created_at else None,
                digital_source_type=v.c2pa.digital_source_type,
                failure_codes=list(v.c2pa.failure_codes),
            ),
            watermark=WatermarkState(
                state="found" if v.watermark.found else "too_small" if v.watermark.too_small else "not_found",
                found=v.watermark.found,
                confidence=round(float(v.watermark.confidence), 4),
                this_deployment=v.deployment_match,
                frames_used=v.watermark.frames_used,
            ),
            generated_here=result.traced,
            video_id=result.video_id,
        )
