"""What every benchmark script does with its report: JSON out, errors."""

import json
import os


def write_json(report: dict, path: str) -> None:
    """Writes `report` as indented JSON, creating the directory."""
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=2)


def fail(program: str, message: str) -> None:
    """Bad input: one line on stderr, exit status 2 (`irevnet_tf.cli.fail`).

    Imported here, not at the top: some benchmarks configure TensorFlow
    through the environment before it is first imported.
    """
    from irevnet_tf import cli

    cli.fail(program, message)
