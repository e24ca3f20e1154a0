#!/usr/bin/env bash
# Set up .venv (once), then open JupyterLab on the demo notebooks with the demo registry
# shipped inside the package (no network); prints the URL to open, Ctrl-C stops it.
#   bash scripts/demo.sh --port 8888   # a fixed port
#   bash scripts/demo.sh --terminal    # the terminal tour instead (scripts/demo.py)
#   bash scripts/demo.sh --check       # start, verify the notebooks and a kernel, stop
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/lab.py "$@"
