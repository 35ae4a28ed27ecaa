"""Peak CPU memory of a `train_on_batch` step; a helper of a test.

Usage: TF_CPU_ALLOCATOR_USE_BFC=true python peak_memory.py DEPTH \
    MEMORY_SAVING JIT_COMPILE
DEPTH is the number of blocks of a one-stage stack (batch 16), or `cifar10`
for that preset (batch 32).
Prints {"peak_bytes": N}: the least of three steps' peaks, since the
executor's scheduling moves a single step's peak by a few MB.
"""

import json
import sys

import keras
import numpy as np
import tensorflow as tf

from irevnet_tf import IRevNet
from irevnet_tf import IRevNetClassifier

memory_saving, jit_compile = (arg == "True" for arg in sys.argv[2:4])
if sys.argv[1] == "cifar10":
    model = IRevNetClassifier.from_preset(
        "cifar10", memory_saving=memory_saving
    )
    batch, shape = 32, (32, 32, 3)
else:
    backbone = IRevNet(
        stage_depths=[int(sys.argv[1])],
        stage_filters=[16],
        stage_strides=[1],
        initial_block_size=1,
        image_shape=(32, 32, 32),
        memory_saving=memory_saving,
    )
    model = IRevNetClassifier(backbone, 10)
    batch, shape = 16, (32, 32, 32)
model.compile(
    "sgd",
    keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    jit_compile=jit_compile,
)
images = np.random.rand(batch, *shape).astype("float32")
labels = np.arange(batch) % 10
model.train_on_batch(images, labels)  # trace and allocate slots first
peaks = []
for _ in range(3):
    tf.config.experimental.reset_memory_stats("CPU:0")
    start = tf.config.experimental.get_memory_info("CPU:0")["current"]
    model.train_on_batch(images, labels)
    peak = tf.config.experimental.get_memory_info("CPU:0")["peak"] - start
    peaks.append(peak)
print(json.dumps({"peak_bytes": min(peaks)}))
