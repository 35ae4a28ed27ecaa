"""Runs one pytest file as a Bazel test: `pytest_runner.py FILE [PYTEST_ARGS]`.

The tests are pytest-style (`tf.test.TestCase` classes, pytest marks and
fixtures), so Bazel's `py_test` runs them through pytest, with the project's
pytest configuration (pyproject.toml) and tests/conftest.py. The JUnit XML goes
where Bazel asks (XML_OUTPUT_FILE), and `bazel test --test_filter=EXPR` selects
tests as `pytest -k EXPR` does.
"""

import importlib.util
import os
import sys

import pytest

# First-party packages: the code under test must be Bazel's copy in the
# runfiles tree, not an installed one (e.g. from `pip install -e .`).
_FIRST_PARTY = ("irevnet_tf", "train", "export", "bench", "tests")


def _check_first_party_imports():
    here = os.path.abspath(os.getcwd())
    for name in _FIRST_PARTY:
        if not os.path.isdir(name):
            continue
        spec = importlib.util.find_spec(name)
        origin = spec.origin if spec else None
        if not origin or not os.path.abspath(origin).startswith(here + os.sep):
            sys.exit(
                f"{name} does not import from the runfiles tree {here}. "
                f"Received: {origin}"
            )


def main():
    if len(sys.argv) < 2:
        sys.exit("Usage: pytest_runner.py TEST_FILE [PYTEST_ARGS...]")
    _check_first_party_imports()
    # The sandbox's home is read-only: matplotlib caches in the test's tmp.
    if "TEST_TMPDIR" in os.environ:
        os.environ.setdefault("MPLCONFIGDIR", os.environ["TEST_TMPDIR"])
    args = [
        # The runfiles tree is Bazel's: pytest writes no cache there.
        "-p",
        "no:cacheprovider",
        # Test ids relative to the top of the runfiles tree, as in the repo.
        "--rootdir",
        os.getcwd(),
        *sys.argv[1:],
    ]
    xml_output = os.environ.get("XML_OUTPUT_FILE")
    if xml_output:
        args.append(f"--junitxml={xml_output}")
    test_filter = os.environ.get("TESTBRIDGE_TEST_ONLY")
    if test_filter:
        args += ["-k", test_filter]
    # pytest exits 5 when no test ran: Bazel reports that as a failure too.
    sys.exit(pytest.main(args))


if __name__ == "__main__":
    main()
