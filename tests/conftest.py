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

# Test modules whose numerics may depend on TensorFlow's CPU kernels (oneDNN
# or Eigen round differently: see irevnet_tf/testing/onednn.py): results
# held to measured tolerances. Marked `onednn`; .ci/run runs them again
# under the setting the machine does not default to. The programs' one-line
# stderr is tested under both settings in every run (the process tests take
# `onednn` as a parameter), so they are not listed here.
ONEDNN_DEPENDENT = (
    "tests/bench_test.py",
    "tests/convert_test.py",
    "tests/export/export_lib_test.py",
    "tests/layers/",
    "tests/models/",
)


def pytest_collection_modifyitems(config, items):
    root = str(config.rootpath)
    for item in items:
        path = os.path.relpath(str(item.path), root)
        if path.startswith(ONEDNN_DEPENDENT):
            item.add_marker(pytest.mark.onednn)
