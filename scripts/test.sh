#!/usr/bin/env bash
# The whole test suite, from a fresh clone: set up, lint, type-check, test.
# Extra arguments go to the first pytest run (for example: scripts/test.sh -k registry);
# the demo notebooks then always run whole under nbval.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff"; ruff check plugmarket tests benchmarks demo_plugins scripts notebooks; ruff format --check plugmarket tests benchmarks demo_plugins scripts notebooks
echo "== mypy"; mypy
no_tests() {
  echo "pytest collected no $1: that is a failure, not a pass" >&2
  exit 1
}
echo "== pytest"
status=0
python -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then no_tests tests; fi
# The demo notebooks, run top to bottom in a real kernel and compared with their stored outputs.
# notebooks/conftest.py gives each notebook a fresh PLUGMARKET_HOME (and IPython and Jupyter
# configuration folders) and the shipped demo registry; nothing reaches the network.
echo "== notebooks (nbval)"
nb_status=0
python -m pytest notebooks --nbval --nbval-current-env \
  --nbval-sanitize-with notebooks/nbval-sanitize.cfg -p no:cacheprovider || nb_status=$?
if [ "$nb_status" -eq 5 ]; then no_tests "notebook cells"; fi
if [ "$status" -ne 0 ]; then exit "$status"; fi
exit "$nb_status"
