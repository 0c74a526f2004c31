"""C2PA signing and verification on real files: sign, read back with c2pa-python, decode with PyAV."""

from __future__ import annotations

import io
import json
import multiprocessing
import stat
import struct
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import av
import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID
from PIL import Image

from kinema.media.encode import encode_mp4
from kinema.provenance.c2pa import (
    GENERATION_LABEL,
    TRAINED_ALGORITHMIC_MEDIA,
    ProvenanceError,
    sign_image,
    sign_mp4,
    verify,
)
from kinema.provenance.certs import (
    CA_CERT_FILE,
    CA_KEY_FILE,
    SIGNING_CHAIN_FILE,
    SIGNING_KEY_FILE,
    SigningIdentity,
    ensure_signing_identity,
    load_signing_identity,
)
from testkit.media import gradient_clip, image_bytes

MODEL = "wan2.1-t2v-1.3b"
JOB_REF = "job_7f3c9a12e4b84d0c"
CREATED_AT = datetime(2026, 3, 14, 15, 9, 26, tzinfo=UTC)
FRAMES = 12


@pytest.fixture(scope="module")
def identity_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("c2pa-identity")


@pytest.fixture(scope="module")
def identity(identity_dir: Path) -> SigningIdentity:
    return ensure_signing_identity(identity_dir)


@pytest.fixture(scope="module")
def mp4() -> bytes:
    return encode_mp4(gradient_clip(frames=FRAMES, height=96, width=128), 16)


@pytest.fixture(scope="module")
def signed_mp4(mp4: bytes, identity: SigningIdentity) -> bytes:
    return sign_mp4(mp4, identity, model=MODEL, job_ref=JOB_REF, created_at=CREATED_AT)


def test_signed_mp4_is_trusted_against_the_exported_anchor(signed_mp4: bytes, identity: SigningIdentity) -> None:
    assert identity.anchor_pem is not None
    report = verify(signed_mp4, "video/mp4", trust_anchors_pem=identity.anchor_pem)

    assert report.state == "trusted", report.failure_codes
    assert report.model == MODEL
    assert report.job_ref == JOB_REF
    assert report.created_at == CREATED_AT
    assert report.digital_source_type == TRAINED_ALGORITHMIC_MEDIA
    assert {"signingCredential.trusted", "claimSignature.validated", "assertion.bmffHash.match"} <= set(
        report.status_codes
    )
    assert report.failure_codes == ()


def test_unknown_signer_is_valid_but_untrusted(signed_mp4: bytes, tmp_path: Path) -> None:
    other_ca = ensure_signing_identity(tmp_path / "other-deployment").anchor_pem

    for anchors in (None, other_ca):
        report = verify(signed_mp4, "video/mp4", trust_anchors_pem=anchors)
        assert report.state == "valid_untrusted"
        assert report.failure_codes == ("signingCredential.untrusted",)
        assert report.model == MODEL  # still readable, just not vouched for


def test_one_flipped_byte_in_the_video_data_is_tampered(signed_mp4: bytes, identity: SigningIdentity) -> None:
    offset, size = _top_level_box(signed_mp4, b"mdat")
    damaged = bytearray(signed_mp4)
    damaged[offset + size // 2] ^= 0x01

    report = verify(bytes(damaged), "video/mp4", trust_anchors_pem=identity.anchor_pem)

    assert report.state == "tampered"
    assert "assertion.bmffHash.mismatch" in report.failure_codes


def test_edited_generation_metadata_is_tampered(signed_mp4: bytes, identity: SigningIdentity) -> None:
    assert signed_mp4.count(JOB_REF.encode()) == 1
    edited = signed_mp4.replace(JOB_REF.encode(), b"job_0000000000000000")

    report = verify(edited, "video/mp4", trust_anchors_pem=identity.anchor_pem)

    assert report.state == "tampered"
    assert "assertion.hashedURI.mismatch" in report.failure_codes


def test_unsigned_mp4_has_no_manifest(mp4: bytes, identity: SigningIdentity) -> None:
    report = verify(mp4, "video/mp4", trust_anchors_pem=identity.anchor_pem)

    assert report.state == "absent"
    assert report.model is None and report.status_codes == ()


def test_signed_mp4_still_plays_the_same_frames(mp4: bytes, signed_mp4: bytes) -> None:
    original, signed = _decode(mp4), _decode(signed_mp4)

    assert len(signed) == FRAMES
    np.testing.assert_array_equal(signed, original)
    # The manifest box goes before moov, so moov still precedes mdat (fast start).
    assert _top_level_box(signed_mp4, b"moov")[0] < _top_level_box(signed_mp4, b"mdat")[0]


def test_manifest_names_no_one(signed_mp4: bytes, identity: SigningIdentity) -> None:
    store_json = verify(signed_mp4, "video/mp4", trust_anchors_pem=identity.anchor_pem).manifest_store_json
    assert store_json is not None
    store = json.loads(store_json)
    keys = set(_all_keys(store))
    personal = {"owner", "user", "user_id", "username", "author", "creator", "email", "account", "prompt", "title"}
    assert not keys & personal
    assert "identity" not in store_json.lower()  # no CAWG identity assertion

    (manifest,) = store["manifests"].values()
    assertions = {assertion["label"]: assertion["data"] for assertion in manifest["assertions"]}
    assert set(assertions) == {"c2pa.hash.bmff.v3", "c2pa.actions.v2", GENERATION_LABEL}
    assert assertions[GENERATION_LABEL] == {
        "model": MODEL,
        "job_ref": JOB_REF,
        "created_at": "2026-03-14T15:09:26+00:00",
    }
    (action,) = assertions["c2pa.actions.v2"]["actions"]
    assert action["action"] == "c2pa.created"
    assert action["softwareAgent"]["name"] == "Kinema" and action["softwareAgent"]["version"]


@pytest.mark.parametrize(
    ("mime", "pillow_format"), [("image/webp", "WEBP"), ("image/jpeg", "JPEG"), ("image/png", "PNG")]
)
def test_signed_thumbnail_is_trusted_and_still_decodes(
    identity: SigningIdentity, mime: str, pillow_format: str
) -> None:
    thumbnail = image_bytes(Image.fromarray(gradient_clip(frames=1)[0]), pillow_format)

    signed = sign_image(thumbnail, mime, identity, model=MODEL, job_ref=JOB_REF, created_at=CREATED_AT)

    report = verify(signed, mime, trust_anchors_pem=identity.anchor_pem)
    assert report.state == "trusted", report.failure_codes
    assert (report.model, report.job_ref, report.created_at) == (MODEL, JOB_REF, CREATED_AT)
    with Image.open(io.BytesIO(signed)) as reopened, Image.open(io.BytesIO(thumbnail)) as original:
        assert reopened.format == pillow_format
        np.testing.assert_array_equal(np.asarray(reopened), np.asarray(original))
    assert verify(thumbnail, mime, trust_anchors_pem=identity.anchor_pem).state == "absent"


class _RemoteKey:
    """A stand-in for a KMS/HSM client: holds its own key, returns raw r||s like some HSMs do."""

    def __init__(self, identity: SigningIdentity) -> None:
        self.chain_pem = identity.chain_pem
        self.alg = "es256"
        self._key = serialization.load_pem_private_key(identity.private_key_pem, password=None)
        self.calls = 0

    def sign(self, data: bytes) -> bytes:
        self.calls += 1
        assert isinstance(self._key, ec.EllipticCurvePrivateKey)
        r, s = decode_dss_signature(self._key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def test_external_signer_signs_through_the_callback(mp4: bytes, identity: SigningIdentity) -> None:
    remote = _RemoteKey(identity)

    signed = sign_mp4(mp4, remote, model=MODEL, job_ref=JOB_REF, created_at=CREATED_AT)

    assert remote.calls == 1
    assert verify(signed, "video/mp4", trust_anchors_pem=identity.anchor_pem).state == "trusted"


class _UnreachableKms:
    chain_pem: bytes
    alg = "es256"

    def __init__(self, chain_pem: bytes) -> None:
        self.chain_pem = chain_pem

    def sign(self, data: bytes) -> bytes:
        raise ConnectionError("KMS unreachable")


def test_signer_failure_is_reported_with_its_cause(mp4: bytes, identity: SigningIdentity) -> None:
    with pytest.raises(ProvenanceError) as raised:
        sign_mp4(mp4, _UnreachableKms(identity.chain_pem), model=MODEL, job_ref=JOB_REF, created_at=CREATED_AT)

    assert isinstance(raised.value.__cause__, ConnectionError)


def test_bad_arguments_are_refused(mp4: bytes, identity: SigningIdentity) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        sign_mp4(mp4, identity, model=MODEL, job_ref=JOB_REF, created_at=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="not image/png"):
        sign_image(mp4, "image/png", identity, model=MODEL, job_ref=JOB_REF, created_at=CREATED_AT)
    with pytest.raises(ValueError, match="unsupported media type"):
        verify(mp4, "video/webm", trust_anchors_pem=None)
    with pytest.raises(ValueError, match="PEM"):
        verify(mp4, "video/mp4", trust_anchors_pem=b"not a certificate")


def test_key_files_are_private(identity: SigningIdentity, identity_dir: Path) -> None:
    for name in (CA_KEY_FILE, SIGNING_KEY_FILE):
        assert stat.S_IMODE((identity_dir / name).stat().st_mode) == 0o600
    assert stat.S_IMODE(identity_dir.stat().st_mode) == 0o700
    assert "PRIVATE KEY" not in repr(identity)


def test_second_call_reuses_the_same_identity(identity: SigningIdentity, identity_dir: Path) -> None:
    again = ensure_signing_identity(identity_dir, org="Some other name")

    assert again == identity
    assert (identity_dir / CA_CERT_FILE).read_bytes() == identity.anchor_pem


def test_processes_starting_together_share_one_identity(tmp_path: Path) -> None:
    # Workers of a fresh deployment all call ensure_signing_identity at start-up.
    with ProcessPoolExecutor(4, mp_context=multiprocessing.get_context("spawn")) as pool:
        identities = list(pool.map(ensure_signing_identity, [tmp_path] * 4))

    assert all(identity == identities[0] for identity in identities)
    assert ensure_signing_identity(tmp_path) == identities[0]


def test_certificates_have_the_c2pa_profile(identity: SigningIdentity) -> None:
    leaf, ca = x509.load_pem_x509_certificates(identity.chain_pem)
    assert identity.anchor_pem is not None
    assert ca == x509.load_pem_x509_certificate(identity.anchor_pem)
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey) and identity.alg == "es256"

    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert leaf.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in eku
    leaf_aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert leaf_aki.key_identifier == ca_ski.digest
    assert leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    leaf.verify_directly_issued_by(ca)


def test_configured_chain_and_key_sign_like_the_generated_ones(
    mp4: bytes, identity: SigningIdentity, identity_dir: Path
) -> None:
    loaded = load_signing_identity(identity_dir / SIGNING_CHAIN_FILE, identity_dir / SIGNING_KEY_FILE, "ES256")

    assert loaded.anchor_pem == identity.anchor_pem  # the chain's last certificate is the self-signed root
    signed = sign_mp4(mp4, loaded, model=MODEL, job_ref=JOB_REF, created_at=CREATED_AT)
    assert verify(signed, "video/mp4", trust_anchors_pem=loaded.anchor_pem).state == "trusted"

    with pytest.raises(ValueError, match="does not match"):
        load_signing_identity(identity_dir / SIGNING_CHAIN_FILE, identity_dir / CA_KEY_FILE, "es256")
    with pytest.raises(ValueError, match="not a key for es384"):
        load_signing_identity(identity_dir / SIGNING_CHAIN_FILE, identity_dir / SIGNING_KEY_FILE, "es384")


def test_missing_leaf_is_reissued_but_a_missing_ca_is_refused(tmp_path: Path) -> None:
    first = ensure_signing_identity(tmp_path)
    (tmp_path / SIGNING_KEY_FILE).unlink()

    renewed = ensure_signing_identity(tmp_path)
    assert renewed.anchor_pem == first.anchor_pem
    assert renewed.chain_pem != first.chain_pem

    (tmp_path / CA_CERT_FILE).unlink()
    with pytest.raises(ValueError, match="incomplete signing identity"):
        ensure_signing_identity(tmp_path)


def _decode(data: bytes) -> np.ndarray:
    with av.open(io.BytesIO(data), mode="r") as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def _top_level_box(mp4: bytes, kind: bytes) -> tuple[int, int]:
    """Offset and size of the first top-level ISO-BMFF box of type ``kind``."""
    offset = 0
    while offset + 8 <= len(mp4):
        size, box = struct.unpack(">I4s", mp4[offset : offset + 8])
        if size == 1:
            size = struct.unpack(">Q", mp4[offset + 8 : offset + 16])[0]
        elif size == 0:
            size = len(mp4) - offset
        if box == kind:
            return offset, size
        offset += size
    raise AssertionError(f"no {kind!r} box")


def _all_keys(value: object) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key.lower()
            yield from _all_keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from _all_keys(item)
