#!/usr/bin/env bash
# Set up .venv (once) and tour the demo registry shipped inside the package.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/demo.py
