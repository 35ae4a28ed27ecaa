"""The command-line convention: one line on stderr, exit status 2."""

import os
import subprocess
import sys
import textwrap

import pytest

_PROGRAM = textwrap.dedent(
    """
    from absl import flags
    from irevnet_tf import cli

    _COUNT = flags.DEFINE_integer("count", 1, "A positive count.")

    def main():
        import tensorflow as tf

        if _COUNT.value < 1:
            raise cli.UsageError(f"`count` must be positive. Received: "
                                 f"count={_COUNT.value}")
        print(int(tf.reduce_sum(tf.ones([_COUNT.value]))))

    cli.run(main, "demo")
    """
)


def _run(args, onednn):
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=onednn)
    # The user does not set it: the convention must hold without.
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return subprocess.run(
        [sys.executable, "-c", _PROGRAM, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.mark.parametrize("onednn", ["0", "1"])
def test_success_prints_no_startup_noise(onednn):
    result = _run(["--count=3"], onednn)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "3\n"
    # oneDNN's "custom operations are on" and CUDA probing lines are gone.
    assert result.stderr == ""


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--count=0"], "demo: error: `count` must be positive."),
        (["--count=x"], "demo: error: flag --count=x"),
        (["--nosuchflag"], "demo: error: Unknown command line flag"),
        (["extra"], "demo: error: Unexpected arguments: extra"),
    ],
)
@pytest.mark.parametrize("onednn", ["0", "1"])
def test_usage_errors_are_one_line_and_status_2(args, expected, onednn):
    result = _run(args, onednn)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(expected), lines[0]
    assert result.stdout == ""


@pytest.mark.parametrize("argument", ["--help", "-h", "--helpshort"])
def test_help_is_the_usage_text_and_status_0(argument):
    result = _run([argument], "0")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("USAGE: demo [flags]"), result.stdout
    assert "--count: A positive count." in result.stdout
    assert result.stderr == ""
