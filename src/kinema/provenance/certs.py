"""Signing identities for C2PA: a private CA made on first use, or a configured chain and key.

C2PA validators accept a claim signature only from a signing ("leaf") certificate with the profile
the specification requires (digitalSignature key usage, Authority and Subject Key Identifiers, an
allowed extended key usage, not a CA), and call it *trusted* only when its chain leads to a trust
anchor they were given. A self-hosted deployment has no publicly trusted CA, so
:func:`ensure_signing_identity` makes a private one; its certificate (``ca.pem``, also
``SigningIdentity.anchor_pem``) is what verifiers import to trust this deployment's media.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SUPPORTED_ALGS: Final = frozenset({"es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519"})
"""C2PA signature algorithm names (lower case) a :class:`SigningIdentity` can sign with."""

CA_KEY_FILE: Final = "ca.key"
CA_CERT_FILE: Final = "ca.pem"
SIGNING_KEY_FILE: Final = "signing.key"
SIGNING_CHAIN_FILE: Final = "signing-chain.pem"
_LOCK_FILE: Final = ".lock"

# Kinema signs offline, without a time-stamp authority. Validators then check the signing
# certificate's validity at the time of *validation*: once the leaf expires, every asset it ever
# signed reads as invalid (signingCredential.expired). Hence lifetimes that outlast the media.
_CA_LIFETIME: Final = timedelta(days=365 * 30)
_LEAF_LIFETIME: Final = timedelta(days=365 * 20)
# Certificates start a little in the past so a verifier whose clock lags ours still accepts them.
_BACKDATE: Final = timedelta(hours=1)

_ALG_HASHES: Final[dict[str, type[hashes.HashAlgorithm]]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}
_ES_CURVES: Final[dict[str, type[ec.EllipticCurve]]] = {
    "es256": ec.SECP256R1,
    "es384": ec.SECP384R1,
    "es512": ec.SECP521R1,
}


@dataclass(frozen=True)
class SigningIdentity:
    """A certificate chain and the private key of its first certificate, ready to sign C2PA claims."""

    chain_pem: bytes
    """PEM certificates: the signing (leaf) certificate first, then its issuers."""
    private_key_pem: bytes = field(repr=False)  # kept out of reprs, hence out of logs and tracebacks
    """Unencrypted PEM private key of the leaf certificate."""
    alg: str
    """C2PA signature algorithm, one of :data:`SUPPORTED_ALGS`."""
    anchor_pem: bytes | None
    """PEM certificate of the root CA (the trust anchor verifiers import), ``None`` when unknown."""

    def sign(self, data: bytes) -> bytes:
        """Return the signature of ``data`` with the private key, as ``alg`` prescribes.

        ECDSA signatures are DER-encoded; the C2PA library converts them to the raw ``r||s``
        form COSE requires.
        """
        key = serialization.load_pem_private_key(self.private_key_pem, password=None)
        return _sign(key, self.alg, data)


def ensure_signing_identity(dir: Path, *, org: str = "Kinema deployment") -> SigningIdentity:
    """Return the deployment's ES256 signing identity kept in ``dir``, creating it on first call.

    Promises:

    - First call: a self-signed root CA (``ca.key``, ``ca.pem``) and a leaf signing certificate
      issued by it (``signing.key``, ``signing-chain.pem`` = leaf then CA), both ECDSA P-256,
      named after ``org``. Private keys are written with mode 0600, ``dir`` is created 0700.
    - Later calls load those files and return the same certificates and keys (``org`` is then
      ignored). If only the leaf files are missing, a new leaf is issued by the existing CA, so
      the anchor others imported keeps working.
    - Safe to call from several processes at once: they serialise on a lock file in ``dir``
      and all end up with the same identity.

    Raises ``ValueError`` when ``dir`` holds an inconsistent set (a CA key without its
    certificate, a leaf not issued by the CA, a key not matching its certificate): replacing
    a CA silently would orphan every anchor already distributed.
    """
    dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    ca_key_path, ca_cert_path = dir / CA_KEY_FILE, dir / CA_CERT_FILE
    leaf_key_path, chain_path = dir / SIGNING_KEY_FILE, dir / SIGNING_CHAIN_FILE
    ca_key: PrivateKeyTypes
    with _exclusive_lock(dir / _LOCK_FILE):
        present = {path.name for path in (ca_key_path, ca_cert_path, leaf_key_path, chain_path) if path.exists()}
        if not present:
            ca_key, ca_cert = _create_ca(org)
            _write(ca_key_path, _private_pem(ca_key), mode=0o600)
            _write(ca_cert_path, ca_cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
        elif {CA_KEY_FILE, CA_CERT_FILE} <= present:
            ca_key, ca_cert = _load_key_and_cert(
                ca_key_path, ca_key_path.read_bytes(), ca_cert_path, ca_cert_path.read_bytes()
            )
        else:
            raise ValueError(
                f"{dir} holds an incomplete signing identity ({', '.join(sorted(present))}) without a CA key and "
                f"certificate pair; restore {CA_KEY_FILE} and {CA_CERT_FILE}, or empty the directory to start over"
            )

        if {SIGNING_KEY_FILE, SIGNING_CHAIN_FILE} <= present:
            leaf_key_pem, chain_pem = leaf_key_path.read_bytes(), chain_path.read_bytes()
            _, leaf_cert = _load_key_and_cert(leaf_key_path, leaf_key_pem, chain_path, chain_pem)
            try:
                leaf_cert.verify_directly_issued_by(ca_cert)
            except (ValueError, TypeError, InvalidSignature) as exc:
                raise ValueError(f"{chain_path} was not issued by the CA in {ca_cert_path}") from exc
        else:
            leaf_key, leaf_cert = _issue_leaf(ca_key, ca_cert, org)
            leaf_key_pem = _private_pem(leaf_key)
            chain_pem = leaf_cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(
                serialization.Encoding.PEM
            )
            _write(leaf_key_path, leaf_key_pem, mode=0o600)
            _write(chain_path, chain_pem, mode=0o644)

    return SigningIdentity(
        chain_pem=chain_pem,
        private_key_pem=leaf_key_pem,
        alg="es256",
        anchor_pem=ca_cert.public_bytes(serialization.Encoding.PEM),
    )


def load_signing_identity(
    chain_path: Path, key_path: Path, alg: str, *, anchor_path: Path | None = None
) -> SigningIdentity:
    """Return a signing identity from a configured PEM chain (leaf first) and unencrypted PEM key.

    ``anchor_pem`` comes from ``anchor_path`` when given, else from the chain's last certificate
    if that one is self-signed (a root), else is ``None``.

    Raises ``ValueError`` for an unknown ``alg``, unreadable PEM, a key that does not match the
    leaf certificate or does not fit ``alg`` (e.g. an RSA key for ``es256``).
    """
    alg = alg.lower()
    if alg not in SUPPORTED_ALGS:
        raise ValueError(f"unsupported C2PA signing algorithm {alg!r}; expected one of {sorted(SUPPORTED_ALGS)}")
    chain_pem, key_pem = chain_path.read_bytes(), key_path.read_bytes()
    key, _ = _load_key_and_cert(key_path, key_pem, chain_path, chain_pem)
    _check_key_fits_alg(key, alg, str(key_path))

    anchor_pem: bytes | None
    if anchor_path is not None:
        anchor_pem = anchor_path.read_bytes()
        _load_certificates(anchor_pem, anchor_path)
    else:
        root = _load_certificates(chain_pem, chain_path)[-1]
        anchor_pem = root.public_bytes(serialization.Encoding.PEM) if root.issuer == root.subject else None
    return SigningIdentity(chain_pem=chain_pem, private_key_pem=key_pem, alg=alg, anchor_pem=anchor_pem)


def _create_ca(org: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(org, f"{org} C2PA root CA")
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _CA_LIFETIME)
        # path_length=0: this CA issues signing certificates only, never other CAs.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _issue_leaf(
    ca_key: PrivateKeyTypes, ca_cert: x509.Certificate, org: str
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the local CA key must be an ECDSA key")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(org, f"{org} content signing"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(min(now + _LEAF_LIFETIME, ca_cert.not_valid_after_utc))
        # The C2PA certificate profile for claim signers: not a CA, digitalSignature, an allowed
        # EKU (emailProtection is on the default list), and both key identifiers.
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def _name(org: str, common_name: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org), x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    )


def _key_usage(
    *, digital_signature: bool = False, key_cert_sign: bool = False, crl_sign: bool = False
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _private_pem(key: PrivateKeyTypes) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _load_certificates(pem: bytes, source: Path) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise ValueError(f"{source} holds no readable PEM certificate") from exc


def _load_key_and_cert(
    key_source: Path, key_pem: bytes, chain_source: Path, chain_pem: bytes
) -> tuple[PrivateKeyTypes, x509.Certificate]:
    """Load a private key and the first certificate of a chain; check they belong together."""
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:  # TypeError: the key is encrypted
        raise ValueError(f"{key_source} holds no readable unencrypted PEM private key") from exc
    cert = _load_certificates(chain_pem, chain_source)[0]
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        raise ValueError(f"{key_source} does not match the public key of the first certificate in {chain_source}")
    return key, cert


def _check_key_fits_alg(key: PrivateKeyTypes, alg: str, source: str) -> None:
    if alg == "ed25519":
        fits = isinstance(key, ed25519.Ed25519PrivateKey)
    elif alg in _ES_CURVES:
        fits = isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, _ES_CURVES[alg])
    else:  # ps256/384/512
        fits = isinstance(key, rsa.RSAPrivateKey)
    if not fits:
        raise ValueError(f"{source} is not a key for {alg}")


def _sign(key: PrivateKeyTypes, alg: str, data: bytes) -> bytes:
    _check_key_fits_alg(key, alg, "the private key")
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    digest = _ALG_HASHES[alg[-3:]]()
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(digest))
    if isinstance(key, rsa.RSAPrivateKey):
        # COSE PS256/384/512 (RFC 8230): MGF1 with the same hash, salt as long as the digest.
        return key.sign(data, padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size), digest)
    raise ValueError(f"cannot sign {alg} with a {type(key).__name__}")


def _write(path: Path, data: bytes, *, mode: int) -> None:
    """Replace ``path`` atomically; the file has ``mode`` from its creation, never wider."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)  # a leftover from a crash; we hold the lock
    with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


@contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
