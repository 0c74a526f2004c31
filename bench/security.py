"""What the security parts cost per request or per operation, measured in one run on this machine.

Run: ``python bench/security.py [--repeats 20]``

Prints median wall times for: argon2id hashing and verification at the default cost and at the
minimum the settings accept; authenticating an API key (format check, SHA-256 lookup, account and
limits) plus the shared-key defense and the rate limiter, on SQLite; the likeness vault (create,
encrypt, decrypt, shred a data key); and, when the test photographs are present, dlib face analysis
per 800 px photo and one enrolment (12 sampled frames). Each line also gives the figure as a share
of a 2 s miniature generation and a 60 s real-model generation, the two job sizes in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kinema.audit.checkpoint import CheckpointSigner  # noqa: E402
from kinema.audit.log import AuditLog  # noqa: E402
from kinema.crypto import SqliteDataKeyStore, open_file_vault  # noqa: E402
from kinema.db.session import make_engine, make_session_factory, upgrade_to_head  # noqa: E402
from kinema.services.accounts import DefaultLimits, PasswordHashing, PasswordPolicy, Users  # noqa: E402
from kinema.services.auth import ClientInfo  # noqa: E402
from kinema.services.keyguard import KeyGuard  # noqa: E402
from kinema.services.keys import KeyService  # noqa: E402
from kinema.services.quotas import RateLimiter  # noqa: E402


def median_s(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def line(name: str, seconds: float) -> None:
    print(f"{name:<58} {seconds * 1000:9.2f} ms   {seconds / 2:7.3%} of 2 s   {seconds / 60:7.4%} of 60 s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=20)
    n = ap.parse_args().repeats
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        engine = make_engine(f"sqlite:///{d / 'k.db'}")
        upgrade_to_head(engine)
        sessions = make_session_factory(engine)
        audit = AuditLog(sessions, CheckpointSigner.load_or_create(d / "audit.key"))
        for label, policy in (
            ("default (64 MiB, t=3, p=4)", PasswordPolicy()),
            ("minimum (19 MiB, t=2, p=1)", PasswordPolicy(memory_kib=19456, time_cost=2, parallelism=1)),
        ):
            hashing = PasswordHashing(policy)
            stored = hashing.hash("correct horse battery staple")
            line(f"argon2id hash, {label}", median_s(lambda h=hashing: h.hash("x" * 20), max(3, n // 4)))
            line(
                f"argon2id verify, {label}",
                median_s(lambda h=hashing, s=stored: h.verify(s, "correct horse battery staple"), max(3, n // 4)),
            )
        users = Users(sessions, audit, hashing=hashing, defaults=DefaultLimits(600, 4, 600))
        users.create_user("bench@example.com", "correct horse battery staple")
        keys = KeyService(sessions, audit, users)
        user = users.find_user("bench@example.com")
        secret = keys.create(user.id, "bench").secret
        client = ClientInfo("203.0.113.7", "bench/1.0")
        guard = KeyGuard(
            sessions, audit, window_seconds=3600, max_networks=4, max_agents=4, max_requests_per_minute=10**6
        )
        limiter = RateLimiter()

        def request() -> None:
            principal = keys.authenticate(secret, client)
            guard.observe(principal, client)
            limiter.check(principal)

        request()
        line("API key auth + shared-key defense + rate limit, per request", median_s(request, n * 5))

        store = SqliteDataKeyStore(d / "keys" / "datakeys.db")
        vault = open_file_vault(d / "keys" / "master.key", store)
        ids = [f"char_{i:024x}" for i in range(n)]
        it = iter(ids)
        line("vault: create a likeness data key", median_s(lambda: vault.create(next(it)), n))
        blob = vault.encrypt(ids[0], b"x" * 512, "descriptor")
        line("vault: encrypt 512 B (a descriptor)", median_s(lambda: vault.encrypt(ids[0], b"x" * 512, "d"), n))
        line("vault: decrypt 512 B", median_s(lambda: vault.decrypt(ids[0], blob, "descriptor"), n))
        it2 = iter(ids)
        line("vault: shred a data key (secure delete, synced)", median_s(lambda: vault.shred(next(it2)), n))
        engine.dispose()

    try:
        from testkit.faces.clips import head_turn_clip
        from testkit.faces.photos import faces_dir, photo
    except ImportError:
        return
    if not (faces_dir() / "obama_1.jpg").is_file():
        print("face photographs not found: face analysis not measured")
        return
    from kinema.faces import FaceAnalyzer
    from kinema.faces.enrolment import analyze_enrolment

    analyzer = FaceAnalyzer()
    analyzer.load()
    image = photo("obama_1")
    line("faces: detect + landmarks + descriptor, one 800 px photo", median_s(lambda: analyzer.detect(image), 5))
    # An honest synthetic head turn (3.5 s, 15 fps, 360p; testkit/faces/clips.py), with liveness (bench/liveness.py
    # measures the pass and refusal rates).
    frames = head_turn_clip(["left", "right"], "obama_1", seconds=3.5, fps=15, seed=3, amplitudes=(30, 30))
    line(
        "faces: one enrolment (4 s clip at 15 fps, liveness included)",
        median_s(lambda: analyze_enrolment(frames, ["left", "right"], analyzer=analyzer, fps=15), 2),
    )


if __name__ == "__main__":
    main()
