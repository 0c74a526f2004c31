"""The audit log on SQLite and PostgreSQL: append, checkpoint, export, and tamper detection."""

from __future__ import annotations

import dataclasses
import io
import json
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from kinema.audit.checkpoint import Checkpoint, CheckpointSigner, verify_signature
from kinema.audit.log import AuditLog, AuditTamperError, check_no_secrets, entry_leaf_hash, verify_export
from kinema.db.session import make_engine, make_session_factory, upgrade_to_head


@pytest.fixture
def env(db_url: str) -> Iterator[tuple[AuditLog, object]]:
    engine = make_engine(db_url)
    upgrade_to_head(engine)
    log = AuditLog(make_session_factory(engine), CheckpointSigner.generate())
    yield log, engine
    engine.dispose()


def fill(log: AuditLog, n: int = 6) -> None:
    for i in range(n):
        seq = log.append("key.create", actor=f"user-{i}", target=f"key-{i}", details={"key_id": f"k{i}", "n": i})
        assert seq == i


def sql(engine, stmt: str, **params) -> None:
    with engine.begin() as conn:
        conn.execute(text(stmt), params)


def exported_checkpoint(log: AuditLog) -> Checkpoint:
    buf = io.StringIO()
    log.export(buf)
    return Checkpoint.from_json(buf.getvalue().splitlines()[-1])


def test_append_checkpoint_verify_ok(env) -> None:
    log, _ = env
    assert log.verify().ok  # empty log
    fill(log)
    report = log.verify()
    assert report.ok and report.size == 6 and report.problems == []
    cp = log.checkpoint()
    assert cp.size == 6 and verify_signature(cp, log.signer.public_key_pem)
    assert log.latest_checkpoint() == cp
    log.append("auth.login", actor="user-9")
    report = log.verify(checkpoint=cp)
    assert report.ok and report.size == 7 and report.checkpoint_size == 6


def test_edit_detected(env) -> None:
    log, engine = env
    fill(log, 3)
    old = exported_checkpoint(log)
    fill_more = [log.append("role.change", actor="admin", target=f"user-{i}") for i in range(3)]
    assert fill_more == [3, 4, 5]
    log.checkpoint()
    sql(engine, 'UPDATE audit_log SET details = \'{"key_id": "evil", "n": 1}\' WHERE seq = 1')
    report = log.verify(checkpoint=old)
    assert not report.ok
    assert "entry 1 edited (hash mismatch)" in report.problems
    assert "root mismatch vs checkpoint size 6" in report.problems
    assert "root mismatch vs checkpoint size 3" in report.problems  # inconsistent with the older export
    with pytest.raises(AuditTamperError):
        log.checkpoint()  # never signs over a tampered log

    # An attacker who also recomputes the stored leaf hash is still caught by the signed root.
    sql(engine, "UPDATE audit_log SET leaf_hash = :h WHERE seq = 1",
        h=entry_leaf_hash(1, _at(engine, 1), "user-1", "key.create", "key-1", {"key_id": "evil", "n": 1}))  # fmt: skip
    problems = log.verify().problems
    assert problems == ["root mismatch vs checkpoint size 6"]


def _at(engine, seq: int) -> float:
    with engine.connect() as conn:
        return float(conn.execute(text("SELECT at FROM audit_log WHERE seq = :s"), {"s": seq}).scalar_one())


def test_delete_detected(env) -> None:
    log, engine = env
    fill(log, 3)
    old = exported_checkpoint(log)
    for i in range(3):
        log.append("video.create", actor="user-1", target=f"video_{i}")
    log.checkpoint()
    sql(engine, "DELETE FROM audit_log WHERE seq = 2")
    report = log.verify(checkpoint=old)
    assert not report.ok
    assert "gap at seq 2 (deleted)" in report.problems
    assert "root mismatch vs checkpoint size 6" in report.problems
    assert "root mismatch vs checkpoint size 3" in report.problems
    sql(engine, "DELETE FROM audit_log WHERE seq = 3")
    assert "gap at seq 2..3 (deleted)" in log.verify().problems


def test_reorder_detected(env) -> None:
    log, engine = env
    fill(log)
    log.checkpoint()
    cols = "at, actor, action, target, details, leaf_hash"
    with engine.begin() as conn:
        a = conn.execute(text(f"SELECT {cols} FROM audit_log WHERE seq = 1")).one()
        b = conn.execute(text(f"SELECT {cols} FROM audit_log WHERE seq = 2")).one()
        for seq, r in ((1, b), (2, a)):
            conn.execute(
                text(
                    "UPDATE audit_log SET at=:at, actor=:actor, action=:action, target=:target, "
                    "details=:details, leaf_hash=:leaf_hash WHERE seq=:seq"
                ),
                {
                    **r._asdict(),
                    "details": json.dumps(r.details) if not isinstance(r.details, str) else r.details,
                    "seq": seq,
                },
            )
    report = log.verify()
    assert "entry 1 edited (hash mismatch)" in report.problems
    assert "entry 2 edited (hash mismatch)" in report.problems
    assert "root mismatch vs checkpoint size 6" in report.problems

    # Recomputing the swapped rows' leaf hashes (with their new seqs) leaves only the root to catch it.
    with engine.begin() as conn:
        for seq in (1, 2):
            r = conn.execute(text(f"SELECT {cols} FROM audit_log WHERE seq = :s"), {"s": seq}).one()
            details = json.loads(r.details) if isinstance(r.details, str) else r.details
            h = entry_leaf_hash(seq, float(r.at), r.actor, r.action, r.target, details)
            conn.execute(text("UPDATE audit_log SET leaf_hash = :h WHERE seq = :s"), {"h": h, "s": seq})
    assert log.verify().problems == ["root mismatch vs checkpoint size 6"]


def test_truncation_detected_against_export(env) -> None:
    log, engine = env
    fill(log)
    exported = exported_checkpoint(log)
    # Cover-up: drop the last entries, the stored checkpoints, and wind the head counter back.
    sql(engine, "DELETE FROM audit_log WHERE seq >= 4")
    assert "entries missing: 4..5 (truncated below head counter 6)" in log.verify().problems
    sql(engine, "DELETE FROM audit_checkpoints")
    sql(engine, "UPDATE audit_head SET next_seq = 4")
    assert log.verify().ok  # nothing left in the database to tell...
    report = log.verify(checkpoint=exported)  # ...but the exported checkpoint does
    assert not report.ok
    assert "entries missing: 4..5 (truncated below checkpoint size 6)" in report.problems
    assert "root mismatch vs checkpoint size 6" in report.problems


def test_forged_checkpoints_detected(env) -> None:
    log, engine = env
    fill(log)
    cp = log.checkpoint()
    # A checkpoint signed by another key, for the true root.
    other = CheckpointSigner.generate().sign(cp.size, cp.root_hex, cp.at)
    report = log.verify(checkpoint=other)
    assert report.problems == [f"given checkpoint size 6 signature invalid (key {other.key_id})"]
    sql(engine, "INSERT INTO audit_checkpoints (size, root_hex, at, key_id, signature_hex) "
        "VALUES (:size, :root_hex, :at, :key_id, :signature_hex)", **dataclasses.asdict(other))  # fmt: skip
    assert not log.verify().ok
    sql(engine, "DELETE FROM audit_checkpoints WHERE key_id = :k", k=other.key_id)
    assert log.verify().ok
    # The stored checkpoint's root changed.
    sql(engine, "UPDATE audit_checkpoints SET root_hex = :r", r="00" * 32)
    problems = log.verify().problems
    assert f"stored checkpoint size 6 signature invalid (key {cp.key_id})" in problems
    assert "root mismatch vs checkpoint size 6" in problems
    # A given checkpoint with its size changed.
    assert not log.verify(checkpoint=dataclasses.replace(cp, size=5)).ok


def test_concurrent_appends(env) -> None:
    log, _ = env
    barrier = threading.Barrier(20)
    seqs: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(t: int) -> None:
        try:
            barrier.wait()
            for i in range(5):
                s = log.append("auth.login", actor=f"t{t}", details={"i": i})
                with lock:
                    seqs.append(s)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(20)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert sorted(seqs) == list(range(100))
    cp = log.checkpoint()
    assert cp.size == 100
    assert log.verify().ok


def test_append_in_commits_with_the_change(env) -> None:
    log, engine = env
    sessions = make_session_factory(engine)
    with sessions() as s, s.begin():
        assert log.append_in(s, "service.pause", actor="admin") == 0
    with pytest.raises(RuntimeError), sessions() as s, s.begin():
        log.append_in(s, "service.resume", actor="admin")
        raise RuntimeError("the change failed")
    assert log.append("service.resume", actor="admin") == 1  # the rolled-back seq is reused, no gap
    assert log.verify().ok and log.verify().size == 2


@pytest.mark.parametrize(
    "details",
    [
        {"password": "x"}, {"token": "x"}, {"secret": "x"}, {"api_key": "x"}, {"key": "x"},
        {"Authorization": "x"}, {"descriptor": [0.1]}, {"embedding": [0.1]}, {"face": "x"},
        {"faceEmbedding": [1]}, {"access_token": "x"}, {"new_password": "x"}, {"user": {"apiKey": "x"}},
        {"items": [{"secret_value": 1}]}, {"header": "Bearer abc123"},
    ],
)  # fmt: skip
def test_secrets_refused(details: dict) -> None:
    with pytest.raises(ValueError):
        check_no_secrets(details)


def test_secrets_refused_by_append(env) -> None:
    log, _ = env
    with pytest.raises(ValueError):
        log.append("auth.login", actor="u", details={"password": "hunter2"})
    check_no_secrets({"key_id": "k1", "job_id": "video_1", "face_count": 0, "role": "admin", "ip": "10.0.0.1"})
    assert log.verify().size == 0


def test_export_round_trip(env) -> None:
    log, engine = env
    fill(log)
    log.append("video.delete", actor="u", target="video_abc", details={"tags": ("a", "b"), "x": 1.5, "é": None})
    buf = io.StringIO()
    assert log.export(buf) == 7
    lines = buf.getvalue().splitlines()
    assert len(lines) == 8
    records = [json.loads(line) for line in lines]
    assert [r["type"] for r in records] == ["entry"] * 7 + ["checkpoint"]
    assert [r["seq"] for r in records[:7]] == list(range(7))
    assert records[6]["details"] == {"tags": ["a", "b"], "x": 1.5, "é": None}
    cp = Checkpoint.from_json(lines[-1])
    assert cp == log.latest_checkpoint() and cp.size == 7
    for r in records[:7]:
        assert entry_leaf_hash(r["seq"], r["at"], r["actor"], r["action"], r["target"], r["details"]) == r["leaf_hash"]
    assert verify_export(lines, log.signer.public_key_pem).ok
    assert log.verify(checkpoint=cp).ok

    tampered = [*lines]
    rec = json.loads(tampered[2])
    rec["actor"] = "someone-else"
    tampered[2] = json.dumps(rec)
    report = verify_export(tampered, log.signer.public_key_pem)
    assert "entry 2 edited (hash mismatch)" in report.problems
    report = verify_export(lines[:3] + lines[4:], log.signer.public_key_pem)
    assert "gap at seq 3 (deleted)" in report.problems
