import os

# Keep test logs readable: TensorFlow's C++ start-up chatter is not ours.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Two logical CPU devices, so that MirroredStrategy runs for real in tests.
# This must happen before TensorFlow initialises its devices.
_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)

# Test modules whose outcome may depend on TensorFlow's CPU kernels (oneDNN
# or Eigen: see irevnet_tf/testing/onednn.py): numerics held to measured
# tolerances, and programs whose stderr must be exactly one line. Marked
# `onednn`; .ci/run runs them under both settings.
ONEDNN_DEPENDENT = (
    "tests/analysis/cli_test.py",
    "tests/bench_test.py",
    "tests/convert_test.py",
    "tests/core/cli_test.py",
    "tests/export/export_test.py",
    "tests/layers/",
    "tests/models/",
    "tests/train/train_test.py",
)


def pytest_collection_modifyitems(config, items):
    root = str(config.rootpath)
    for item in items:
        path = os.path.relpath(str(item.path), root)
        if path.startswith(ONEDNN_DEPENDENT):
            item.add_marker(pytest.mark.onednn)
