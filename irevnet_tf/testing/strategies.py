"""The one `MirroredStrategy` of a test process.

Two `MirroredStrategy` objects in one process number their collective
operations alike, and TensorFlow's shared collective executor then mixes
them up ("Shape mismatch in the collective instance 100"): every test
module that distributes takes this one.
"""

import functools

import tensorflow as tf


@functools.cache
def mirrored_strategy() -> tf.distribute.MirroredStrategy:
    """A strategy over the two logical CPUs that tests/conftest.py makes."""
    return tf.distribute.MirroredStrategy(["CPU:0", "CPU:1"])
