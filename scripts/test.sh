#!/usr/bin/env bash
# Install with test extras, then run the whole suite (SQLite always; PostgreSQL too when reachable
# at KINEMA_TEST_PG, default postgresql://postgres@127.0.0.1:5432/test).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh test
. .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
ruff check src tests bench examples testkit
ruff format --check src tests bench examples testkit
mypy src
# Two processes (KINEMA_TEST_PROCESSES), each taking whole test files, so module fixtures stay in one process:
# most tests wait on real servers and subprocesses, and the suite takes about two thirds of the serial time.
exec python -m pytest -q -p no:cacheprovider -n "${KINEMA_TEST_PROCESSES:-2}" --dist loadfile "$@"
