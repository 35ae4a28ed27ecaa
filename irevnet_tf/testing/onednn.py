"""Which of TensorFlow's two CPU kernel libraries a process runs.

TensorFlow 2.21 on x86 runs its oneDNN kernels by default only on CPUs with
AVX-512 VNNI/BF16 or AMX; elsewhere it runs Eigen's. They round differently
and oneDNN prints a notice to stderr, so the tests whose outcome could
depend on it run under both settings (`TF_ENABLE_ONEDNN_OPTS=0` and `=1`):
`.ci/run` runs the tests marked `onednn` again under the setting this
machine does not default to.
"""

import os
import subprocess
import sys

_PROBE = (
    "from tensorflow.python.util import _pywrap_util_port as port\n"
    "print(int(port.IsMklEnabled()))\n"
)


def onednn_enabled(environ=None) -> bool:
    """Whether a TensorFlow process with this environment runs oneDNN.

    Asks a fresh process, since the setting is read once, at start-up.
    TensorFlow's own answer is not public API: a TensorFlow upgrade that
    moves it fails `tests/core/onednn_test.py`, not a user.
    """
    result = subprocess.run(
        [sys.executable, "-c", _PROBE],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ if environ is None else environ),
    )
    return result.stdout.strip() == "1"


def onednn_enabled_by_default() -> bool:
    """Whether this machine runs oneDNN when the user sets nothing."""
    environ = dict(os.environ)
    environ.pop("TF_ENABLE_ONEDNN_OPTS", None)
    return onednn_enabled(environ)
