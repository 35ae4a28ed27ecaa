#!/usr/bin/env bash
# The Bazel build (issue 7), run by .ci/run after pip install and pytest:
# Debian's bazel-bootstrap (Bazel 4.2.3), offline. Builds every target and runs
# the quick test targets (those not tagged "large"; pytest runs them all).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! dpkg -s bazel-bootstrap >/dev/null 2>&1; then
  echo "== apt-get install bazel-bootstrap ($(date -u +%T))"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq bazel-bootstrap >/dev/null
fi
trap 'bazel shutdown' EXIT

# Every test file must have a Bazel test target, or the Bazel build would
# silently test less than pytest does.
missing="$(comm -23 \
  <(git ls-files 'tests/*_test.py' | sed -E 's|^(.*)/([^/]*)\.py$|//\1:\2|' | sort) \
  <(bazel query --noshow_progress 'kind(py_test, //tests/...)' | sort))"
if [ -n "${missing}" ]; then
  echo "test files without a Bazel test target (add them to their BUILD):" >&2
  echo "${missing}" >&2
  exit 1
fi

# The interpreter that `pip install -r requirements.txt` installed into.
python_bin="$(python -c 'import sys; print(sys.executable)')"
flags=(
  "--repo_env=PYTHON_BIN_PATH=${python_bin}"
  --color=no
  --curses=no
  --show_progress_rate_limit=30
)

echo "== bazel build //... ($(date -u +%T))"
bazel build "${flags[@]}" //...

echo "== bazel test --test_tag_filters=-large //... ($(date -u +%T))"
bazel test "${flags[@]}" --test_tag_filters=-large //...
