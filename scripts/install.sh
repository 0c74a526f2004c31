#!/usr/bin/env bash
# Install Kinema into ./.venv. Usage: scripts/install.sh [extra]   (extra: test; default: postgres,examples)
# Nothing is installed when .venv already holds this checkout and everything pyproject.toml asks for
# (scripts/installed.py checks), so running scripts/serve.sh again starts at once, with no network.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-postgres,examples}"
[ -x .venv/bin/python ] || python3 -m venv .venv
# The studio's browser tests (tests/web) drive Debian's chromium at /usr/bin/chromium: Playwright's own
# browser download is not used. Only for the test extra, only when it is missing and apt-get exists.
if [[ ",$extras," == *",test,"* ]] && [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then
  as_root=""
  [ "$(id -u)" -eq 0 ] || as_root="sudo -n"
  $as_root apt-get install -y -q chromium >/dev/null || { $as_root apt-get update -q && $as_root apt-get install -y -q chromium; }
fi
. .venv/bin/activate
if python scripts/installed.py "$extras" 2>/dev/null; then
  exit 0
fi
python -m pip install -q --upgrade pip
# torch first. From PyPI, `pip install torch==2.13.0` on Linux x86-64 is the CUDA build: with its NVIDIA
# libraries, several GB. On Linux without an NVIDIA GPU (no nvidia-smi) this takes the CPU-only build from
# PyTorch's own index instead, a few hundred MB. TORCH_INDEX_URL chooses the index yourself (for example
# https://download.pytorch.org/whl/cu128); a torch that is already importable is kept as it is.
if ! python -c "import torch" 2>/dev/null; then
  index="${TORCH_INDEX_URL:-}"
  if [ -z "$index" ] && [ "$(uname -s)" = Linux ] && ! command -v nvidia-smi >/dev/null 2>&1; then
    index=https://download.pytorch.org/whl/cpu
    # Where that index cannot be reached (an offline mirror, no DNS), pip would retry every torch dependency
    # there for minutes: use the configured indexes instead.
    if ! python -c "import urllib.request as u; u.urlopen('$index/', timeout=5)" >/dev/null 2>&1; then
      echo "install.sh: $index is not reachable; installing torch from the configured package index" >&2
      index=""
    fi
  fi
  python -m pip install -q "torch==2.13.0" ${index:+--index-url "$index"}
fi
# Then Kinema and its dependencies, torchao (the fast preset's FP8 layers) among them: torchao declares no
# torch requirement, so it never swaps out the torch chosen above.
python -m pip install -q -e ".[$extras]"
