#!/bin/sh
# Bazel's coverage tools are a download (coverage_output_generator-v2.5.zip)
# that these machines cannot fetch. Say so instead of writing an empty report.
echo "bazel coverage is not available offline: @remote_coverage_tools" \
    "(coverage_output_generator) cannot be downloaded here;" \
    "use: python -m pytest --cov (pytest-cov) instead." >&2
exit 1
