#!/usr/bin/env bash
# The README's test command: bootstrap, colcon build, colcon test, the cross-package tests in test/, then
# colcon test-result --verbose. Exits non-zero on any failure and on zero tests run.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

"$repo/tools/bootstrap.sh"
# The venv's activate and colcon's setup scripts read unset variables; relax -u while sourcing them.
set +u
# shellcheck disable=SC1091
source "$repo/setup.bash"
set -u

echo "run_tests: colcon build"
colcon build --event-handlers console_direct- console_cohesion- console_stderr- summary+ status- \
  || { echo "run_tests: FAILED: colcon build (logs in log/latest_build)" >&2; exit 1; }
set +u
# shellcheck disable=SC1091
source "$repo/install/setup.bash"
set -u

# Tests SIGKILL nodes on purpose; free the shared memory such deaths left behind (earlier runs' too).
fastdds shm clean | grep -v "^0 " || true

echo "run_tests: colcon test"
# Sequential: the DDS tests start processes and measure timing; two cores do not take parallel suites well.
colcon test --executor sequential --event-handlers console_direct+ summary+ \
  --pytest-args -q -p no:cacheprovider --rerun-show-tracebacks

echo "run_tests: cross-package tests (test/)"
mkdir -p build/sgft_integration
python -m pytest test -q -p no:cacheprovider --rerun-show-tracebacks --junitxml=build/sgft_integration/pytest.xml || true

echo "run_tests: results"
set +e
result="$(colcon test-result --verbose --all)"
status=$?
set -e
echo "$result" | tail -n 80
summary="$(echo "$result" | grep -E '^Summary: ' | tail -n 1)"
total="$(echo "$summary" | sed -E 's/^Summary: ([0-9]+) tests.*/\1/')"
if [ -z "$summary" ] || [ "${total:-0}" -eq 0 ]; then
  echo "run_tests: FAILED: no tests were run" >&2
  exit 1
fi
if [ "$status" -ne 0 ]; then
  echo "run_tests: FAILED (see above)" >&2
  exit "$status"
fi
echo "run_tests: all $total tests passed"
