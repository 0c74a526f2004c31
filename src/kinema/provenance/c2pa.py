"""C2PA Content Credentials for generated media: sign MP4 videos and image thumbnails, verify them.

Each signed asset carries one manifest that says, verifiably, that a trained model made it:

- ``c2pa.actions``: a single ``c2pa.created`` action with the IPTC digital source type
  ``trainedAlgorithmicMedia`` and Kinema as the software agent;
- ``org.kinema.generation``: the model name, an opaque job reference and the creation time.

Nothing about who asked for the media goes in (no user, account, prompt, title, IP address): the
manifest travels with the file wherever it is shared. The only names in it are the software's and
the deployment's organisation in the signing certificate.

Everything happens in memory (the library reads and writes Python streams); nothing touches disk.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal, Protocol

import c2pa
from cryptography import x509

from kinema import __version__
from kinema.media.sniff import sniff_image, sniff_video

TRAINED_ALGORITHMIC_MEDIA: Final = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
GENERATION_LABEL: Final = "org.kinema.generation"
"""Label of Kinema's own assertion (reverse-domain, as C2PA asks of custom labels)."""

MP4_MIME: Final = "video/mp4"
IMAGE_MIMES: Final = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}
"""Image MIME types :func:`sign_image` and :func:`verify` accept, with the format each must sniff as."""

C2paState = Literal["trusted", "valid_untrusted", "tampered", "absent"]

_ALGS: Final = {
    "es256": c2pa.C2paSigningAlg.ES256,
    "es384": c2pa.C2paSigningAlg.ES384,
    "es512": c2pa.C2paSigningAlg.ES512,
    "ps256": c2pa.C2paSigningAlg.PS256,
    "ps384": c2pa.C2paSigningAlg.PS384,
    "ps512": c2pa.C2paSigningAlg.PS512,
    "ed25519": c2pa.C2paSigningAlg.ED25519,
}

# Kinema never lets the library reach the network: a remote manifest URL or OCSP responder named
# in a file is someone else's server, and fetching it would tell them who looked at the file.
_OFFLINE: Final = {"remote_manifest_fetch": False, "ocsp_fetch": False}
_SIGN_SETTINGS: Final = {
    # No manifest thumbnail: Kinema ships its own thumbnail (signed separately), the library
    # cannot render one from video, and for images it would only add a second copy.
    "builder": {"thumbnail": {"enabled": False}},
    # The library re-reads what it just signed; a broken chain or signer fails here, not at a viewer.
    "verify": {"verify_after_sign": True, **_OFFLINE},
}


class ClaimSigner(Protocol):
    """What signs a C2PA claim: a certificate chain and something holding its private key.

    :class:`kinema.provenance.certs.SigningIdentity` is one (key in memory); a KMS or HSM client
    exposing the same three members is another.
    """

    @property
    def chain_pem(self) -> bytes:
        """PEM certificates, signing certificate first, then its issuers."""
        ...

    @property
    def alg(self) -> str:
        """C2PA algorithm name: es256, es384, es512, ps256, ps384, ps512 or ed25519."""
        ...

    def sign(self, data: bytes) -> bytes:
        """Sign ``data`` (hashing it as ``alg`` says). ECDSA signatures may be DER or raw ``r||s``."""
        ...


class ProvenanceError(Exception):
    """Signing failed in the C2PA library or in the signer; ``__cause__`` holds the original error."""


@dataclass(frozen=True)
class C2paReport:
    """What :func:`verify` found. Metadata is what the manifest *claims*: rely on it only when
    ``state`` is ``"trusted"`` (or ``"valid_untrusted"`` if you accept any signer)."""

    state: C2paState
    """``trusted``: valid and chains to a given anchor; ``valid_untrusted``: valid signature and
    hashes, unknown signer; ``tampered``: a manifest is there but fails validation (or cannot be
    parsed); ``absent``: no manifest."""
    model: str | None = None
    job_ref: str | None = None
    created_at: datetime | None = None
    digital_source_type: str | None = None
    status_codes: tuple[str, ...] = ()
    """Every validation status code of the active manifest: successes, informational, failures."""
    failure_codes: tuple[str, ...] = ()
    """The failure codes alone, e.g. ``assertion.bmffHash.mismatch``, ``signingCredential.untrusted``."""
    error: str | None = None
    """The library's message when it could not read the manifest at all."""
    manifest_store_json: str | None = None
    """The manifest store as the library reports it, for audits and debugging."""


def sign_mp4(
    data: bytes,
    identity: ClaimSigner,
    *,
    model: str,
    job_ref: str,
    created_at: datetime,
    software_agent: str = "Kinema",
) -> bytes:
    """Return ``data`` (an MP4) with an embedded, signed C2PA manifest describing its generation.

    The video and audio samples are untouched: the manifest goes into a ``uuid`` box before
    ``moov`` (so ``moov`` still precedes ``mdat``: playback still starts early) and chunk offsets
    are rewritten accordingly. With the generated ES256 identity that adds about 13 KB.

    ``created_at`` must be timezone-aware; it is stored in UTC. ``job_ref`` is stored as given:
    pass an opaque identifier, nothing that names or can be traced back to a user.

    Raises ``ValueError`` if ``data`` is not MP4, for a naive ``created_at`` or an unknown
    ``identity.alg``; :class:`ProvenanceError` if the library or the signer fails.
    """
    return _sign(data, MP4_MIME, identity, model, job_ref, created_at, software_agent)


def sign_image(
    data: bytes,
    mime: str,
    identity: ClaimSigner,
    *,
    model: str,
    job_ref: str,
    created_at: datetime,
    software_agent: str = "Kinema",
) -> bytes:
    """Return ``data`` (a WebP, JPEG or PNG image of type ``mime``) with an embedded, signed manifest.

    Same manifest and promises as :func:`sign_mp4`. Pixels are untouched; the manifest goes into
    the format's metadata container (WebP ``C2PA`` chunk, JPEG APP11 segments, PNG ``caBX`` chunk).

    Raises ``ValueError`` for a ``mime`` outside :data:`IMAGE_MIMES` or ``data`` that is not that
    format, plus what :func:`sign_mp4` raises.
    """
    if mime not in IMAGE_MIMES:
        raise ValueError(f"cannot sign {mime!r} images; supported: {sorted(IMAGE_MIMES)}")
    return _sign(data, mime, identity, model, job_ref, created_at, software_agent)


def verify(data: bytes, mime: str, *, trust_anchors_pem: bytes | None) -> C2paReport:
    """Validate the C2PA manifest embedded in ``data`` (of type ``mime``) and report what it says.

    ``trust_anchors_pem`` holds the PEM root certificates to trust, e.g. a deployment's
    ``SigningIdentity.anchor_pem``; they replace any anchors built into the library, so
    ``"trusted"`` means "chains to one of these". ``None`` trusts no one: a good signature is
    then at best ``"valid_untrusted"``. Validation never touches the network.

    Raises ``ValueError`` for an unsupported ``mime``, ``data`` that is not of that type, or
    anchors that are not PEM certificates.
    """
    _check_format(data, mime)
    settings: dict[str, Any] = {"verify": {"verify_trust": True, **_OFFLINE}}
    if trust_anchors_pem is not None:
        try:
            x509.load_pem_x509_certificates(trust_anchors_pem)
        except ValueError as exc:
            raise ValueError("trust_anchors_pem holds no readable PEM certificate") from exc
        settings["trust"] = {"trust_anchors": trust_anchors_pem.decode("utf-8")}

    try:
        with c2pa.Context.from_dict(settings) as context:
            reader = c2pa.Reader.try_create(mime, io.BytesIO(data), context=context)
            if reader is None:
                return C2paReport(state="absent")
            with reader:
                store_json: str = reader.json()
    except c2pa.C2paError as exc:
        # C2PA data is there (else try_create says None) but too damaged to parse, e.g. a
        # manifest box with bytes flipped in its assertion store.
        return C2paReport(state="tampered", error=str(exc))
    return _report(store_json, trusting=trust_anchors_pem is not None)


def _sign(
    data: bytes,
    mime: str,
    identity: ClaimSigner,
    model: str,
    job_ref: str,
    created_at: datetime,
    software_agent: str,
) -> bytes:
    _check_format(data, mime)
    if created_at.utcoffset() is None:
        raise ValueError("created_at must be timezone-aware")
    alg = _ALGS.get(identity.alg.lower())
    if alg is None:
        raise ValueError(f"unsupported C2PA signing algorithm {identity.alg!r}; expected one of {sorted(_ALGS)}")
    manifest = _manifest_definition(model, job_ref, created_at, software_agent)

    # The library calls back for the one signature a claim needs. It swallows (and logs) any
    # exception raised there and only reports "signing failed", so keep the exception to chain
    # it: a KMS outage should read as one.
    callback_errors: list[Exception] = []

    def sign_claim(to_be_signed: bytes) -> bytes:
        try:
            return identity.sign(to_be_signed)
        except Exception as exc:
            callback_errors.append(exc)
            raise

    signed = io.BytesIO()
    try:
        with (
            c2pa.Context.from_dict(_SIGN_SETTINGS) as context,
            c2pa.Signer.from_callback(sign_claim, alg, identity.chain_pem.decode("utf-8")) as signer,
            c2pa.Builder(manifest, context=context) as builder,
        ):
            builder.sign(signer, mime, io.BytesIO(data), signed)
    except c2pa.C2paError as exc:
        cause: Exception = callback_errors[0] if callback_errors else exc
        raise ProvenanceError(f"C2PA signing failed: {cause!r}") from cause
    return signed.getvalue()


def _manifest_definition(model: str, job_ref: str, created_at: datetime, software_agent: str) -> dict[str, Any]:
    agent = {"name": software_agent, "version": __version__}
    when = created_at.astimezone(UTC).isoformat()
    return {
        "claim_generator_info": [agent],
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                            "softwareAgent": agent,
                            "when": when,
                        }
                    ]
                },
            },
            {"label": GENERATION_LABEL, "data": {"model": model, "job_ref": job_ref, "created_at": when}},
        ],
    }


def _check_format(data: bytes, mime: str) -> None:
    """Refuse data that is not what ``mime`` says before the C2PA library parses it."""
    if mime == MP4_MIME:
        # An ISO-BMFF file starting with 'ftyp' (the library needs it to place the manifest box).
        matches = sniff_video(data) == "mov" and data[4:8] == b"ftyp"
    elif mime in IMAGE_MIMES:
        matches = sniff_image(data) == IMAGE_MIMES[mime]
    else:
        raise ValueError(f"unsupported media type {mime!r}; supported: {[MP4_MIME, *sorted(IMAGE_MIMES)]}")
    if not matches:
        raise ValueError(f"data is not {mime}")


def _report(store_json: str, *, trusting: bool) -> C2paReport:
    store = json.loads(store_json)
    manifests = store.get("manifests") or {}
    active = manifests.get(store.get("active_manifest")) or {}
    results = (store.get("validation_results") or {}).get("activeManifest") or {}
    failures = tuple(_codes(results.get("failure")))
    codes = tuple(_codes(results.get("success"))) + tuple(_codes(results.get("informational"))) + failures

    # The library's verdict follows the C2PA validation states: Trusted (valid and chained to an
    # anchor), Valid (only signingCredential.untrusted failed), Invalid (anything else).
    validation_state = store.get("validation_state")
    state: C2paState
    if validation_state == "Trusted" and trusting:
        state = "trusted"
    elif validation_state in ("Trusted", "Valid"):
        state = "valid_untrusted"
    else:
        state = "tampered"

    assertions: dict[str, Any] = {
        a["label"]: a.get("data") for a in active.get("assertions") or [] if isinstance(a, dict) and "label" in a
    }
    generation = assertions.get(GENERATION_LABEL)
    generation = generation if isinstance(generation, Mapping) else {}
    return C2paReport(
        state=state,
        model=_str(generation.get("model")),
        job_ref=_str(generation.get("job_ref")),
        created_at=_datetime(generation.get("created_at")),
        digital_source_type=_created_source_type(assertions),
        status_codes=codes,
        failure_codes=failures,
        manifest_store_json=store_json,
    )


def _created_source_type(assertions: Mapping[str, Any]) -> str | None:
    # Claim v2 manifests label the assertion c2pa.actions.v2; older ones c2pa.actions.
    for label in ("c2pa.actions.v2", "c2pa.actions"):
        data = assertions.get(label)
        actions = data.get("actions") if isinstance(data, Mapping) else None
        for action in actions if isinstance(actions, list) else []:
            if isinstance(action, Mapping) and action.get("action") == "c2pa.created":
                return _str(action.get("digitalSourceType"))
    return None


def _codes(statuses: object) -> list[str]:
    if not isinstance(statuses, list):
        return []
    return [s["code"] for s in statuses if isinstance(s, Mapping) and isinstance(s.get("code"), str)]


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _datetime(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.utcoffset() is not None else None
