"""Programs in real processes: a user's environment, and kills on cue."""

import os
import signal
import subprocess
import sys
import tempfile
import threading

# What a paused program prints; the test kills it when it reads this.
PAUSED = "<<paused: kill me>>"

_LAUNCHER = """
import runpy
import sys
import time


def pause():
    print({paused!r}, flush=True)
    time.sleep(3600)


{hook}

sys.argv = [{module!r}] + {argv!r}
runpy.run_module({module!r}, run_name="__main__", alter_sys=True)
"""


def user_environment(
    python_path: str | None = None, onednn: str | None = None
) -> dict[str, str]:
    """`os.environ` as a user would have it, for a child process.

    Args:
        python_path: the only `PYTHONPATH` entry (e.g. the repository, so
            that the child imports the code under test), or None for none.
        onednn: `TF_ENABLE_ONEDNN_OPTS` ("1" or "0"), or None to leave it
            as it is.

    Returns:
        The environment, without `TF_CPP_MIN_LOG_LEVEL` (users do not set
        it; the test harness does).
    """
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    env.pop("PYTHONPATH", None)
    if python_path:
        env["PYTHONPATH"] = python_path
    if onednn is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = onednn
    return env


def kill_when_paused(
    module: str,
    argv: list[str],
    hook: str,
    cwd: str,
    env: dict[str, str],
    timeout: float = 600,
) -> str:
    """Runs `python -m MODULE ARGV` and SIGKILLs it where `hook` pauses it.

    Args:
        module: the program's module.
        argv: its arguments.
        hook: Python code run before the program, that patches what the
            program will call so that it calls `pause()` at the moment the
            test wants the kill.
        cwd: the working directory.
        env: the environment.
        timeout: seconds to wait for the pause.

    Returns:
        What the program printed to stdout before it paused.

    Raises:
        AssertionError: if the program ended, or did not pause in time.
    """
    launcher = _LAUNCHER.format(
        paused=PAUSED, hook=hook, module=module, argv=list(argv)
    )
    # stderr to a file: a pipe nobody reads could fill and block the child.
    with tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-c", launcher],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        timer = threading.Timer(timeout, process.kill)
        timer.start()
        printed, paused = [], False
        try:
            for line in process.stdout:
                if line.strip() == PAUSED:
                    paused = True
                    os.kill(process.pid, signal.SIGKILL)
                    break
                printed.append(line)
            status = process.wait()
        finally:
            timer.cancel()
            process.stdout.close()
        if not paused:
            stderr.seek(0)
            raise AssertionError(
                f"{module} did not pause (status {status}): "
                f"{''.join(printed)[-1000:]}{stderr.read()[-2000:]}"
            )
    return "".join(printed)
