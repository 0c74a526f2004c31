"""Time the KEDA ScaledObject's query (deploy/kubernetes/keda.yaml) on PostgreSQL with many jobs.

Creates a database on the server at KINEMA_TEST_PG (default postgresql://postgres@127.0.0.1:5432/test), migrates
it to Kinema's schema, inserts N jobs (one in 1,000 queued, one in 1,000 running, the rest completed), runs the
query 20 times, prints the median and maximum and the plan, and drops the database.

    python bench/keda_query.py 1000000
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path

import psycopg
import yaml

from kinema.db.session import make_engine, upgrade_to_head

ADMIN = os.environ.get("KINEMA_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
MANIFEST = Path(__file__).resolve().parents[1] / "deploy" / "kubernetes" / "keda.yaml"
FILL = """
INSERT INTO videos (id, owner_id, kind, task, model, prompt, size, seconds, width, height, num_frames, fps, params,
                    status, progress, cancel_requested, created_at, lease_token, attempts, characters,
                    inputs_sealed_by, cohort)
SELECT 'video_' || g, 'o', 'create', 't2v', 'm', 'p', '96x64', '1', 96, 64, 9, 8, '{}',
       CASE WHEN g %% 1000 = 0 THEN 'queued' WHEN g %% 1000 = 1 THEN 'in_progress' ELSE 'completed' END,
       0, false, g, 0, 0, '[]', '[]', 'default'
FROM generate_series(1, %s) g
"""


def main(rows: int) -> None:
    scaled = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d["kind"] == "ScaledObject"]
    query = scaled[0]["spec"]["triggers"][0]["metadata"]["query"]
    name = f"kinema_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{ADMIN.rsplit('/', 1)[0]}/{name}"
    try:
        engine = make_engine(url.replace("postgresql://", "postgresql+psycopg://"))
        upgrade_to_head(engine)
        engine.dispose()
        with psycopg.connect(url) as conn:
            conn.execute(FILL, (rows,))
            conn.commit()
            conn.execute("ANALYZE videos")
            row = conn.execute(query).fetchone()
            assert row is not None
            times = []
            for _ in range(20):
                t = time.perf_counter()
                conn.execute(query).fetchone()
                times.append(time.perf_counter() - t)
            times.sort()
            print(f"{rows} jobs, demand {row[0]}: median {times[10] * 1000:.2f} ms, max {times[-1] * 1000:.2f} ms")
            for (line,) in conn.execute("EXPLAIN " + query).fetchall():
                print(line)
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
