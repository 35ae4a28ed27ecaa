"""Where a run trains: its `tf.distribute` strategy and the model `fit` sees.

`make_strategy` picks the strategy; `FitModel` wraps the classifier so that
Keras's `fit` works under every strategy, multi-worker included;
`num_workers` and `wait_for_all_workers` serve the multi-worker case, where
the chief writes the run's files and the other workers wait for it.
"""

import json
import os

import keras
import tensorflow as tf


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The `tf.distribute` strategy called `name` (see `base.STRATEGIES`).

    "auto" is "multi_worker" if `TF_CONFIG` describes a cluster of several
    tasks, "mirrored" with several GPUs, else "one_device". "mirrored" uses
    every local GPU, or, without GPUs, every logical CPU device.
    """
    cluster = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster", {})
    num_tasks = sum(len(cluster.get(kind, ())) for kind in ("chief", "worker"))
    if name == "auto":
        gpus = tf.config.list_physical_devices("GPU")
        if num_tasks > 1:
            name = "multi_worker"
        else:
            name = "mirrored" if len(gpus) > 1 else "one_device"
    if name == "multi_worker":
        if not cluster:
            raise ValueError(
                "The multi_worker strategy reads its cluster from the "
                "TF_CONFIG environment variable, which is not set. "
                "Received: strategy='multi_worker'"
            )
        # Created before any other TensorFlow op: it sets up the runtime.
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored":
        devices = gpus or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")


def num_workers(strategy: tf.distribute.Strategy) -> int:
    """The worker processes of the strategy's cluster (1 without one)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1
    cluster = resolver.cluster_spec().as_dict()
    return max(1, sum(len(cluster.get(k, ())) for k in ("chief", "worker")))


def wait_for_all_workers(strategy: tf.distribute.Strategy) -> None:
    """Returns once every worker has called it (a collective)."""
    # Workers that finish early wait for the chief instead of exiting, which
    # the chief's coordination service would take for a crash.
    strategy.reduce("SUM", strategy.run(lambda: tf.constant(1.0)), axis=None)


class FitModel(keras.Model):
    """Wraps a classifier for `model.fit` under any `tf.distribute` strategy.

    It computes what the classifier computes and owns no weights. It exists
    for two faults of Keras 3.15's `fit` under `MultiWorkerMirroredStrategy`
    (keras-team/keras#20585):

    - A model created inside the strategy's scope reduces its first input
      batch with `strategy.reduce` before training, which that strategy
      cannot do for an `(images, labels)` pair. This wrapper is created
      outside the scope (the classifier's variables, created inside it, are
      mirrored all the same) and compiled and fitted inside it, so Keras
      skips that step. That step also creates the optimizer's and the
      metrics' variables; `build_for_training` does it instead (created
      later, inside the replicated training step, they break it).
    - Keras averages the logs of the replicas with
      `strategy.reduce("MEAN", value, axis=0)`, which fails on scalars.
      With `rank_one_logs=True`, `train_step` and `test_step` return every
      log as a tensor of shape (1,), which that reduction turns back into a
      scalar.

    Args:
        classifier: the `IRevNetClassifier` to train.
        rank_one_logs: bool, True under `MultiWorkerMirroredStrategy` with
            more than one worker.
    """

    def __init__(self, classifier, rank_one_logs=False, **kwargs):
        super().__init__(**kwargs)
        self.classifier = classifier
        self.rank_one_logs = rank_one_logs
        self.built = classifier.built  # It owns no weights of its own.

    def build_for_training(self, image_shape):
        """Creates the optimizer's and compiled metrics' variables.

        Call it after `compile`, inside the strategy's scope. It runs the
        model, loss and metrics once on a zero image, then resets the
        metrics.
        """
        images = tf.zeros((1, *image_shape), self.compute_dtype)
        labels = tf.zeros((1,), tf.int32)
        logits = self(images, training=False)
        self.compute_loss(images, labels, logits, training=False)
        self.compute_metrics(images, labels, logits, sample_weight=None)
        self.reset_metrics()
        self.optimizer.build(self.trainable_variables)

    @property
    def input_dtype(self):
        # Images reach the classifier as it takes them (float32 under a
        # mixed policy), not cast to this wrapper's compute dtype.
        return self.classifier.input_dtype

    def call(self, inputs, training=None):
        return self.classifier(inputs, training=training)

    def train_step(self, data):
        return self._for_reduction(super().train_step(data))

    def test_step(self, data):
        return self._for_reduction(super().test_step(data))

    def _for_reduction(self, logs):
        if not self.rank_one_logs:
            return logs
        return {name: tf.reshape(value, (1,)) for name, value in logs.items()}
