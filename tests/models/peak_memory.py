"""Peak CPU memory of a `train_on_batch` step; a helper of a test.

Usage: TF_CPU_ALLOCATOR_USE_BFC=true python peak_memory.py DEPTH \
    MEMORY_SAVING JIT_COMPILE
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

depth = int(sys.argv[1])
memory_saving, jit_compile = (arg == "True" for arg in sys.argv[2:4])
backbone = IRevNet(
    stage_depths=[depth],
    stage_filters=[16],
    stage_strides=[1],
    initial_block_size=1,
    image_shape=(32, 32, 32),
    memory_saving=memory_saving,
)
model = IRevNetClassifier(backbone, 10)
model.compile(
    "sgd",
    keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    jit_compile=jit_compile,
)
images = np.random.rand(16, 32, 32, 32).astype("float32")
labels = np.arange(16) % 10
model.train_on_batch(images, labels)  # trace and allocate slots first
peaks = []
for _ in range(3):
    tf.config.experimental.reset_memory_stats("CPU:0")
    start = tf.config.experimental.get_memory_info("CPU:0")["current"]
    model.train_on_batch(images, labels)
    peak = tf.config.experimental.get_memory_info("CPU:0")["peak"] - start
    peaks.append(peak)
print(json.dumps({"peak_bytes": min(peaks)}))
