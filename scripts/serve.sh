#!/usr/bin/env bash
# Install (only what is missing), then start Kinema on the embedded defaults (SQLite, ./kinema-data, one
# in-process worker) in dev mode with the offline miniature model, so it runs on any machine with no download.
# KINEMA_PORT, KINEMA_HOST and KINEMA_DATA_DIR choose where it listens and keeps its data (examples/quickstart.py
# reads the same two, KINEMA_PORT and KINEMA_DATA_DIR); other arguments go to `kinema serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
. .venv/bin/activate
echo "The kinema command is in .venv/bin: run \`. .venv/bin/activate\` in your shell, or call .venv/bin/kinema." >&2
exec kinema serve --dev --model "${KINEMA_DEFAULT_MODEL:-tiny-wan}" "$@"
