"""The model `fit` trains: a classifier, made to work with multi-worker."""

import keras
import tensorflow as tf


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
