"""The command-line convention shared by the project's programs.

Bad input (a flag, a path, a dataset, a model file) ends a program with one
line on stderr, `PROGRAM: error: MESSAGE`, and exit status 2, before the
program writes anything. Libraries raise `UsageError` (or `ValueError`,
which the programs' own code turns into it); `run` prints it.

TensorFlow writes start-up messages to stderr from C++ before its log level
applies (CUDA probing on machines without a GPU, CPU instruction sets, and,
where oneDNN is on, "oneDNN custom operations are on"). `import irevnet_tf`
imports TensorFlow and probes its devices inside `without_startup_noise`,
so that a usage error stays one line on every CPU. This module itself does
not import TensorFlow.
"""

import contextlib
import os
import re
import sys
import tempfile
from typing import Callable
from typing import NoReturn

from absl import app
from absl import flags

USAGE_ERROR_STATUS = 2

# absl's help flags; `run` answers them itself (see `_usage`).
_HELP_ARGUMENTS = ("-?", "-h", "-help", "--help", "-helpshort", "--helpshort")
_HELPFULL_ARGUMENTS = ("-helpfull", "--helpfull")

# TensorFlow's native start-up lines: never about the user's input.
_STARTUP_NOISE = re.compile(
    r"All log messages before absl::InitializeLog"
    r"|cudart_stub|cuda_|cuInit|cpu_feature_guard"
    r"|To enable the following instructions|rebuild TensorFlow with"
    r"|oneDNN custom operations are on"
)


class UsageError(ValueError):
    """Bad input to a program; nothing was written.

    `run` prints it as one line on stderr and exits with status 2.
    """


def fail(program: str, message: str) -> NoReturn:
    """Prints `PROGRAM: error: MESSAGE` on one line and exits with status 2."""
    message = " ".join(str(message).split())
    print(f"{program}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(USAGE_ERROR_STATUS)


def run(main: Callable[[], None], program: str) -> None:
    """Runs an absl program whose usage errors follow the convention.

    Args:
        main: the program, called without arguments once flags are parsed.
            A `UsageError` it raises becomes one line and exit status 2.
        program: the name that starts the error line.
    """

    def parse_flags(argv):
        arguments = argv[1 : argv.index("--") if "--" in argv else None]
        if any(a in _HELP_ARGUMENTS + _HELPFULL_ARGUMENTS for a in arguments):
            full = any(a in _HELPFULL_ARGUMENTS for a in arguments)
            print(_usage(main, program, full=full))
            sys.exit(0)
        try:
            return flags.FLAGS(argv)
        except flags.Error as error:
            fail(program, str(error))

    def checked_main(argv):
        if len(argv) > 1:
            fail(program, f"Unexpected arguments: {' '.join(argv[1:])}")
        try:
            main()
        except UsageError as error:
            fail(program, str(error))

    app.run(checked_main, flags_parser=parse_flags)


def _usage(main: Callable[[], None], program: str, full: bool) -> str:
    """The program's docstring and its flags, as `--help` prints them.

    absl's own help exits with status 1 and, in a console script (whose
    `__main__` is a generated launcher), finds neither the docstring nor the
    flags: both belong to the module that defines `main`.
    """
    module = sys.modules[main.__module__]
    # absl files the flags of `python -m MODULE` under `sys.argv[0]`.
    key = sys.argv[0] if main.__module__ == "__main__" else main.__module__
    doc = (module.__doc__ or f"USAGE: {program} [flags]").strip("\n")
    described = flags.FLAGS.get_help() if full else flags.FLAGS.module_help(key)
    text = f"{doc}\n\nflags:\n{described}" if described else doc
    if not full:
        text += "\n\nTry --helpfull to get a list of all flags."
    return text


@contextlib.contextmanager
def without_startup_noise():
    """Drops TensorFlow's start-up lines from stderr; keeps anything else.

    Works on the file descriptor, since the lines come from C++.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines():
                if line.strip() and not _STARTUP_NOISE.search(line):
                    print(line, file=sys.stderr)
