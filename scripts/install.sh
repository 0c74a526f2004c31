#!/usr/bin/env bash
# Install Kinema into ./.venv. Usage: scripts/install.sh [extra]   (extra: test)
set -euo pipefail
cd "$(dirname "$0")/.."
extra="${1:-}"
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
# torch first, pinned: a bare dependency on torch would let pip pick the newest build with several
# GB of CUDA libraries. On a GPU host install the CUDA build of your choice before this script.
python -c "import torch" 2>/dev/null || python -m pip install -q "torch==2.13.0"
if [ -n "$extra" ]; then
  python -m pip install -q -e ".[$extra]"
else
  python -m pip install -q -e ".[postgres]"
fi
