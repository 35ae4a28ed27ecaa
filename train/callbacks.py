"""Keras callbacks of the training program."""

import os

import keras
import numpy as np
import tensorflow as tf

from irevnet_tf import files
from irevnet_tf.reconstruction_error import relative_errors
from irevnet_tf.run_directory import CHECKPOINT_FILENAME


class TrainingStateBackup(keras.callbacks.Callback):
    """Saves the whole training state every few steps, and restores it.

    The state is what `model.save_weights` writes: the weights and the
    optimizer's variables, including its step counter, which drives the
    learning-rate schedule. It is written to a temporary file and renamed
    over `state.weights.h5` (`irevnet_tf.files.atomic_path`), so a process
    killed while saving leaves the previous state whole. The step counter
    tells `train_lib` where to resume: the run continues at exactly that
    step.

    `keras.callbacks.BackupAndRestore` (Keras 3.15) is not used: it restores
    the epoch number only, so a run killed mid-epoch replays that epoch from
    its first batch (more steps than asked for), and after a restart it
    records epoch 0 until its first epoch ends.

    Args:
        restore_dir: where the state is read from.
        save_dir: where it is written; None for `restore_dir`. Workers
            other than the chief save into a temporary directory: every
            worker runs the same saving code, only the chief's is kept.
        every_steps: save when the step counter is a multiple of this, and
            at the end of every `fit`.
    """

    def __init__(self, restore_dir, every_steps, save_dir=None):
        super().__init__()
        if every_steps < 1:
            raise ValueError(
                "`every_steps` must be a positive integer. "
                f"Received: every_steps={every_steps!r}"
            )
        self.restore_dir = restore_dir
        self.every_steps = every_steps
        self.save_dir = save_dir or restore_dir
        self.last_saved_step = None

    @property
    def state_path(self):
        return os.path.join(self.restore_dir, CHECKPOINT_FILENAME)

    def restore(self, model) -> int:
        """Loads the saved state into `model`; returns the step reached."""
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        if os.path.exists(self.state_path):
            model.load_weights(self.state_path)
        step = optimizer_step(model)
        self.last_saved_step = step
        return step

    def save(self):
        os.makedirs(self.save_dir, exist_ok=True)
        target = os.path.join(self.save_dir, CHECKPOINT_FILENAME)
        with files.atomic_path(target) as staged:
            self.model.save_weights(staged)
        self.last_saved_step = optimizer_step(self.model)

    def on_train_batch_end(self, batch, logs=None):
        step = optimizer_step(self.model)
        if step % self.every_steps == 0 and step != self.last_saved_step:
            self.save()

    def on_train_end(self, logs=None):
        if optimizer_step(self.model) != self.last_saved_step:
            self.save()


class ReconstructionImages(keras.callbacks.Callback):
    """Logs test images beside their reconstructions to TensorBoard.

    At every epoch end, in inference mode, each image `x` is mapped to its
    features and back, `Phi^-1(Phi(x))`, and written as one picture (the
    original on the left, the reconstruction on the right) with the mean
    relative error `||x - Phi^-1(Phi(x))|| / ||x||` as a scalar.

    Args:
        classifier: the `IRevNetClassifier` being trained.
        images: a batch of model inputs `(n, H, W, C)`.
        log_dir: the TensorBoard directory to write into.
        to_pixels: maps model inputs to pixel values in [0, 1] for display
            (undoes the normalisation).
    """

    def __init__(self, classifier, images, log_dir, to_pixels):
        super().__init__()
        self.classifier = classifier
        self.images = tf.convert_to_tensor(images)
        self.log_dir = log_dir
        self.to_pixels = to_pixels
        self.writer = None

    def on_epoch_end(self, epoch, logs=None):
        if self.writer is None:
            self.writer = tf.summary.create_file_writer(self.log_dir)
        features = self.classifier.features(self.images, training=False)
        restored = self.classifier.inverse(features, training=False)
        errors = relative_errors(self.images, restored)
        pair = tf.concat([self.images, restored], axis=2)
        pixels = tf.clip_by_value(self.to_pixels(pair), 0.0, 1.0)
        with self.writer.as_default(step=epoch + 1):
            tf.summary.image(
                "reconstructions",
                pixels,
                max_outputs=int(self.images.shape[0]),
                description="Left: a test image x. Right: "
                "inverse(features(x)), inference mode.",
            )
            tf.summary.scalar("reconstruction_error", float(np.mean(errors)))
        self.writer.flush()


class RunProgbar(keras.callbacks.ProgbarLogger):
    """Keras's progress bar, counting epochs over the whole run.

    A resumed run calls `fit` once for the rest of the interrupted epoch and
    once for the epochs after it; this bar shows "Epoch 7/15" for both
    rather than each call's own count.
    """

    def __init__(self, total_epochs):
        super().__init__()
        self.total_epochs = total_epochs

    def set_params(self, params):
        super().set_params(dict(params, epochs=self.total_epochs))


def optimizer_step(model) -> int:
    """The number of optimizer steps taken (also under a strategy)."""
    return int(keras.ops.convert_to_numpy(model.optimizer.iterations))
