#!/usr/bin/env bash
# The whole test suite, from a fresh clone: set up, lint, type-check, test.
# Extra arguments go to pytest (for example: scripts/test.sh -k registry).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff"; ruff check plugmarket tests benchmarks demo_plugins scripts; ruff format --check plugmarket tests benchmarks demo_plugins scripts
echo "== mypy"; mypy
echo "== pytest"
status=0
python -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure, not a pass" >&2
  exit 1
fi
exit "$status"
