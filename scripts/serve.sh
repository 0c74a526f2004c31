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
# The studio's dev login: dev@localhost (the admin dev mode creates) with a random password made once and kept
# in <data dir>/dev-password (mode 0600). Delete that file to get a new password at the next start.
data="${KINEMA_DATA_DIR:-kinema-data}"
if [ ! -s "$data/dev-password" ]; then
  mkdir -p "$data"
  (umask 077 && python -c "import secrets; print(secrets.token_urlsafe(18))" > "$data/dev-password")
  { KINEMA_MODE=dev kinema admin create-user dev@localhost --admin --password-stdin < "$data/dev-password" >/dev/null 2>&1 ||
    KINEMA_MODE=dev kinema admin set-password dev@localhost --password-stdin < "$data/dev-password" >/dev/null; } ||
    { rm -f "$data/dev-password"; echo "could not set the studio's dev login" >&2; exit 1; }
fi
echo "Studio: http://${KINEMA_HOST:-127.0.0.1}:${KINEMA_PORT:-8000}/  dev login: dev@localhost / $(cat "$data/dev-password")" >&2
exec kinema serve --dev --model "${KINEMA_DEFAULT_MODEL:-tiny-wan}" "$@"
