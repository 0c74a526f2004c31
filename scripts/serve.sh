#!/usr/bin/env bash
# Install, then start Kinema on the embedded defaults (SQLite, ./kinema-data, one in-process worker)
# in dev mode with the offline miniature model, so it runs on any machine with no download.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
. .venv/bin/activate
exec kinema serve --dev --model "${KINEMA_DEFAULT_MODEL:-tiny-wan}" "$@"
