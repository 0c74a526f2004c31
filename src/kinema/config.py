"""Typed settings: ``KINEMA_*`` environment variables, then an optional ``kinema.toml``, then defaults.

Every setting is documented in ``docs/configuration.md``; a test fails when one is not.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class Settings(BaseSettings):
    """Kinema's configuration. Construct with keyword arguments in tests, from the environment otherwise."""

    model_config = SettingsConfigDict(
        env_prefix="KINEMA_",
        extra="forbid",
    )

    mode: Literal["dev", "production"] = Field(
        "production",
        description="`dev` creates an admin `dev@localhost` and an API key (saved to `<data_dir>/dev-api-key`, "
        "0600) on first start, for trying Kinema on your own machine; `production` creates no account.",
    )
    data_dir: Path = Field(Path("kinema-data"), description="Root folder for the database, blobs and models.")
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL. Default: SQLite file `<data_dir>/kinema.db` (WAL). "
        "PostgreSQL: `postgresql+psycopg://user@host/db`.",
    )
    blob_dir: Path | None = Field(None, description="Folder for outputs and uploads. Default `<data_dir>/blobs`.")
    blob_url: str | None = Field(
        None,
        description="`s3://bucket/prefix`: keep outputs and uploads in an S3-compatible bucket instead of "
        "`blob_dir` (needs the `s3` extra; see operations.md). Default: the local folder.",
    )
    s3_endpoint_url: str | None = Field(
        None, description="S3 API endpoint of a self-hosted store (MinIO, Ceph...): path-style. Default: AWS."
    )
    s3_region: str | None = Field(None, description="S3 region. Default: boto3's (`AWS_REGION`, ~/.aws/config).")
    s3_sse: Literal["AES256", "aws:kms"] | None = Field(
        None, description="Server-side encryption asked for every object written. Default: the bucket's own."
    )
    s3_kms_key_id: str | None = Field(
        None, description="KMS key for `s3_sse = aws:kms`. Default: the account's AWS-managed key."
    )
    s3_presign_seconds: int = Field(
        0,
        ge=0,
        le=3600,
        description="Above 0: downloads answer 307 to a presigned URL valid this many seconds, and the client "
        "fetches the bytes from the bucket. 0: Kinema streams them.",
    )
    s3_timeout_seconds: float = Field(
        30.0, gt=0, description="Connect and read timeout of each S3 request (boto3 retries 3 times in all)."
    )
    models_dir: Path | None = Field(None, description="Folder for model weights. Default `<data_dir>/models`.")

    host: str = Field("127.0.0.1", description="Address `kinema serve` listens on.")
    port: int = Field(8000, description="Port `kinema serve` listens on.")

    default_model: str = Field("wan2.1-t2v-1.3b", description="Model used when a request names none.")
    model_aliases: dict[str, str] = Field(
        default_factory=lambda: {"sora-2": "default", "sora-2-pro": "default"},
        description="Extra model names mapped to real ones; the value `default` means `default_model`.",
    )
    enabled_models: list[str] | None = Field(
        None, description="Model names this deployment offers. Default: every catalogue model."
    )
    device: str | None = Field(None, description="Torch device (`cuda`, `cuda:1`, `cpu`). Default: CUDA if present.")
    model_memory_budget_gb: float = Field(
        40.0, description="Loaded pipelines are evicted least-recently-used beyond this many GiB."
    )
    model_offload: Literal["auto", "none", "model", "sequential"] = Field(
        "auto",
        description="CPU offload for GPUs too small for a model: `auto` picks per model from its weights and the "
        "GPU's memory; `model` keeps one component on the GPU at a time, `sequential` one layer (slowest).",
    )

    workers: int = Field(1, ge=0, description="Worker threads inside `kinema serve` (0: API only).")
    shutdown_grace_seconds: float = Field(
        20.0,
        ge=0,
        description="On SIGTERM, how long `kinema serve`'s worker threads may finish their running jobs before "
        "giving them back to the queue (keep it below the pod's terminationGracePeriodSeconds).",
    )
    lease_seconds: float = Field(
        30.0, gt=0, description="A claimed job is reclaimable after this long without a heartbeat."
    )
    heartbeat_seconds: float = Field(5.0, gt=0, description="How often a running job renews its lease.")
    finish_overlap: bool = Field(
        True,
        description="A worker encodes, signs and uploads a finished job on a finisher thread while it denoises "
        "the next one (at most one job waiting to finish per worker thread); false runs each job to the end first.",
    )
    poll_seconds: float = Field(0.5, gt=0, description="How often an idle worker looks for queued jobs.")
    max_attempts: int = Field(3, ge=1, description="Claims per job before it fails for good.")
    affinity_max_wait_seconds: float = Field(
        60.0,
        ge=0,
        description="Workers take jobs for the models they have loaded first, but never past a job older than "
        "this; 0 claims strictly oldest first.",
    )
    progress_interval_seconds: float = Field(
        0.25, ge=0, description="Progress is written to the database at most this often."
    )
    poll_after_ms: int = Field(1000, ge=100, description="`openai-poll-after-ms` header sent on retrieve.")
    max_upload_bytes: int = Field(50 * 1024 * 1024, description="Largest accepted upload (image or video).")
    max_image_pixels: int = Field(
        4096 * 4096,
        ge=1,
        description="Largest accepted image, width x height (16.8 M: a 12 MP phone photo fits, a 24 MP one must "
        "be scaled down first). Decoded images are reduced at once to 2048 px on their longest side.",
    )
    max_video_pixels: int = Field(4096 * 2160, description="Largest accepted video frame, width x height.")
    max_video_frames: int = Field(1000, description="Most frames accepted in an uploaded video.")
    max_video_seconds: float = Field(60.0, description="Longest accepted uploaded video.")
    max_video_total_pixels: int = Field(
        100_000_000,
        ge=1,
        description="Most decoded pixels (frames x width x height, counted on every frame's real size after "
        "scaling: 1280 px for edits, 640 px for enrolment clips) decoded from one uploaded video; bounds the "
        "memory an enrolment clip takes (100 M pixels is 300 MB of RGB) and the work of an edit (whose frames "
        "are re-encoded as they are decoded, not kept).",
    )
    media_slots: int = Field(
        2, ge=1, description="Uploads decoded and searched for faces at the same time (per API process)."
    )
    media_queue: int = Field(
        8, ge=0, description="Uploads that may wait for a slot; beyond them a 503 `server_busy` with Retry-After."
    )
    media_queue_seconds: float = Field(
        60.0, ge=0, description="Longest an upload waits for a slot before a 503 `server_busy`."
    )
    max_prompt_chars: int = Field(4000, description="Longest accepted prompt.")
    provenance_dir: Path | None = Field(
        None,
        description="Signing CA, certificate and key (created at first start, keys 0600) and the secret "
        "behind opaque job references. Default `<data_dir>/provenance`.",
    )
    signing_chain: Path | None = Field(
        None, description="PEM chain (leaf first) to sign C2PA manifests with, instead of the local CA."
    )
    signing_key: Path | None = Field(None, description="PEM private key of `signing_chain`'s leaf.")
    signing_anchor: Path | None = Field(
        None, description="PEM trust anchor of `signing_chain` (default: its last certificate if self-signed)."
    )
    signing_alg: str = Field("es256", description="C2PA signing algorithm of `signing_key` (es256, ps256, ed25519...).")
    deployment_id: int | None = Field(
        None, ge=0, lt=65536, description="16-bit id in every watermark. Default: derived from the trust anchor."
    )
    visible_label: str | None = Field(
        None, description='Text drawn in the corner of every output frame, e.g. "AI-generated". Default: none.'
    )
    moderation_policy: Path | None = Field(
        None,
        description="Moderation policy file (TOML: categories of terms, patterns, exceptions). "
        "Default: the packaged starter policy `kinema/moderation/default_policy.toml`.",
    )
    max_inference_steps: int = Field(100, description="Highest `num_inference_steps` a request may ask for.")

    # -- accounts, keys, sessions --
    password_min_length: int = Field(12, ge=8, description="Shortest accepted password.")
    password_hash_memory_kib: int = Field(
        65536, ge=19456, description="argon2id memory cost in KiB (at least 19 MiB); hashes are upgraded at login."
    )
    password_hash_time_cost: int = Field(3, ge=2, description="argon2id passes (at least 2).")
    password_hash_parallelism: int = Field(4, ge=1, description="argon2id lanes.")
    invite_ttl_seconds: float = Field(7 * 86400, gt=0, description="How long a new invite code stays valid.")
    session_idle_seconds: float = Field(
        1800, gt=0, description="A browser session ends after this long without a request."
    )
    session_absolute_seconds: float = Field(
        12 * 3600, gt=0, description="A browser session ends this long after login, however active."
    )
    session_cookie_secure: bool | None = Field(
        None, description="Mark the session cookie `Secure`. Default: when the request came over https."
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses or CIDR networks of reverse proxies whose `X-Forwarded-For` is believed. "
        "From anyone else the header is ignored and the TCP peer is the client.",
    )

    # -- quotas and rate limits (defaults for cohorts without their own) --
    redis_url: str | None = Field(
        None,
        description="Redis for rate limits shared by several API processes (`redis://host:6379/0`). "
        "Default: in-process memory, right for one process.",
    )
    default_requests_per_minute: int = Field(600, ge=1, description="API requests per minute per user.")
    default_concurrent_jobs: int = Field(4, ge=1, description="Queued plus running videos per user.")
    default_video_seconds_per_day: float = Field(
        600.0, gt=0, description="Seconds of video a user may generate in any 24 hours (failed jobs refunded)."
    )

    # -- shared-key defense --
    keyguard_window_seconds: float = Field(
        3600, gt=0, description="Window over which a key's distinct networks and user agents are counted."
    )
    keyguard_max_networks: int = Field(
        4, ge=1, description="A key seen from more distinct networks than this within the window is suspended."
    )
    keyguard_max_agents: int = Field(
        4, ge=1, description="A key seen with more distinct user agents than this within the window is suspended."
    )
    keyguard_max_requests_per_minute: int = Field(
        1200, ge=1, description="A key sending more requests per minute than one person would is suspended."
    )
    keyguard_ipv4_prefix: int = Field(24, ge=8, le=32, description="IPv4 addresses in one /N count as one network.")
    keyguard_ipv6_prefix: int = Field(48, ge=16, le=128, description="IPv6 addresses in one /N count as one network.")

    # -- likenesses (characters) --
    likeness_master_key: Path | None = Field(
        None,
        description="AES-256 master key file (32 raw bytes, mode 0600) that wraps every likeness's data key; "
        "created at first start. Default `<data_dir>/keys/master.key`.",
    )
    likeness_key_store: Path | None = Field(
        None,
        description="SQLite store of wrapped likeness data keys (secure-delete; keep it out of backups: deleting "
        "a key here is what makes a deleted likeness unreadable everywhere). Default `<data_dir>/keys/datakeys.db`.",
    )
    face_models_dir: Path | None = Field(
        None, description="Folder with dlib's face model files. Default: the `face-recognition-models` package."
    )
    likeness_retention_days: int = Field(
        365, ge=1, le=3650, description="A likeness is deleted this many days after its last use (never unlimited)."
    )
    likeness_revoked_retention_days: int = Field(
        30, ge=0, le=365, description="A revoked likeness is deleted this many days after revocation."
    )
    challenge_ttl_seconds: float = Field(300, gt=0, description="How long an enrolment challenge stays valid.")
    challenge_max_attempts: int = Field(
        3, ge=1, le=20, description="Enrolment uploads allowed per challenge, refused ones included; then ask anew."
    )
    unknown_faces: Literal["refuse", "allow"] = Field(
        "refuse",
        description="Uploads (input_reference, edits) showing a realistic face that matches no likeness: `refuse` "
        "(default) unless it is the requester's own likeness, or `allow`.",
    )

    # -- pause switch --
    pause_hold_running: bool = Field(
        False,
        description="Default for a pause: false lets running jobs finish; true holds them at their next step "
        "until resume.",
    )
    pause_retry_after_seconds: int = Field(
        60, ge=1, description="`Retry-After` sent with the 503 that refuses generation while paused."
    )

    # -- webhooks --
    webhook_allow_private: bool = Field(
        False,
        description="Allow webhook URLs that resolve to private, loopback, link-local or other non-public "
        "addresses (checked at create and at every delivery). Only for a receiver on your own network.",
    )
    webhook_allow_http: bool | None = Field(
        None, description="Allow `http://` webhook URLs. Default: only in `dev` mode; https otherwise."
    )
    webhook_max_attempts: int = Field(
        16,
        ge=1,
        le=50,
        description="Tries per event and endpoint before it is given up (with the default backoff: about 6.4 h).",
    )
    webhook_backoff_seconds: float = Field(
        5.0, gt=0, description="Wait before the first retry; doubled after every further failure."
    )
    webhook_backoff_max_seconds: float = Field(3600.0, gt=0, description="Longest wait between two retries.")
    webhook_disable_after_failures: int = Field(
        20, ge=1, description="An endpoint failing this many deliveries in a row is disabled and its owner alerted."
    )
    webhook_timeout_seconds: float = Field(
        10.0,
        gt=0,
        le=60,
        description="Connect and read timeout of one delivery; a whole delivery is cut off at twice this.",
    )
    webhook_max_response_bytes: int = Field(
        64 * 1024, ge=0, description="At most this much of a receiver's response is read; the rest is dropped."
    )
    webhook_poll_seconds: float = Field(1.0, gt=0, description="How often workers look for webhook events due.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Read at construction time, so KINEMA_CONFIG may change between instances (tests, CLI).
        toml = TomlConfigSettingsSource(settings_cls, toml_file=os.environ.get("KINEMA_CONFIG", "kinema.toml"))
        return (init_settings, env_settings, toml)

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: list[str]) -> list[str]:
        from kinema.netaddr import parse_networks

        for i, entry in enumerate(value):
            try:
                parse_networks([entry])
            except ValueError:
                raise ValueError(f"entry {i} is not an IP address or CIDR network") from None
        return value

    @field_validator("blob_url")
    @classmethod
    def _blob_url_is_s3(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/[A-Za-z0-9_\-./]*)?$", value):
            raise ValueError("must be s3://bucket or s3://bucket/prefix (a bucket name in lower case)")
        return value

    @model_validator(mode="after")
    def _kms_key_needs_kms(self) -> Settings:
        if self.s3_kms_key_id is not None and self.s3_sse != "aws:kms":
            raise ValueError("KINEMA_S3_KMS_KEY_ID needs KINEMA_S3_SSE=aws:kms")
        return self

    @model_validator(mode="after")
    def _keyguard_above_the_rate_limit(self) -> Settings:
        # Otherwise an ordinary user at their allowed rate would get their key suspended as shared.
        if self.keyguard_max_requests_per_minute <= self.default_requests_per_minute:
            raise ValueError(
                f"KINEMA_KEYGUARD_MAX_REQUESTS_PER_MINUTE ({self.keyguard_max_requests_per_minute}) must exceed "
                f"KINEMA_DEFAULT_REQUESTS_PER_MINUTE ({self.default_requests_per_minute})"
            )
        return self

    @model_validator(mode="after")
    def _heartbeat_well_inside_lease(self) -> Settings:
        # A lease that can lapse between two heartbeats lets a second worker take a job that is still running.
        if self.heartbeat_seconds * 3 > self.lease_seconds:
            raise ValueError(
                f"KINEMA_HEARTBEAT_SECONDS ({self.heartbeat_seconds:g}) must be at most a third of "
                f"KINEMA_LEASE_SECONDS ({self.lease_seconds:g})"
            )
        return self

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data dir."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'kinema.db').resolve()}"

    @property
    def resolved_blob_dir(self) -> Path:
        """Where blobs live."""
        return self.blob_dir or self.data_dir / "blobs"

    @property
    def resolved_provenance_dir(self) -> Path:
        """Where the signing identity and job-reference secret live."""
        return self.provenance_dir or self.data_dir / "provenance"

    @property
    def resolved_master_key(self) -> Path:
        """The likeness master key file."""
        return self.likeness_master_key or self.data_dir / "keys" / "master.key"

    @property
    def resolved_key_store(self) -> Path:
        """The likeness data-key store."""
        return self.likeness_key_store or self.data_dir / "keys" / "datakeys.db"

    @property
    def resolved_models_dir(self) -> Path:
        """Where model weights live."""
        return self.models_dir or self.data_dir / "models"

    def resolved_aliases(self) -> dict[str, str]:
        """Model aliases with `default` replaced by the default model's name."""
        return {k: (self.default_model if v == "default" else v) for k, v in self.model_aliases.items()}


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment and ``kinema.toml``; keyword arguments win."""
    return Settings(**overrides)
