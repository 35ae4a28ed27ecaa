"""What every benchmark script does with its report: JSON out, errors."""

import json
import os
import sys


def write_json(report: dict, path: str) -> None:
    """Writes `report` as indented JSON, creating the directory."""
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=2)


def fail(program: str, message: str) -> None:
    """Bad input: one line on stderr, exit status 2."""
    message = " ".join(message.split())
    print(f"{program}: error: {message}", file=sys.stderr)
    sys.exit(2)
