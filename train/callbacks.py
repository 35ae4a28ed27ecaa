"""Keras callbacks of the training program."""

import os

import h5py
import keras
import numpy as np
import tensorflow as tf

from irevnet_tf import files
from irevnet_tf.reconstruction_error import relative_errors
from irevnet_tf.run_directory import CHECKPOINT_FILENAME


class TrainingStateBackup(keras.callbacks.Callback):
    """Saves the whole training state every few steps, and restores it.

    The state is what `model.save_weights` writes (the weights and the
    optimizer's variables, including its step counter, which drives the
    learning-rate schedule), plus what a resumed run needs to continue
    exactly as an uninterrupted one: the states of the model's random seed
    generators (its dropout masks) and the running values of the compiled
    metrics (the epoch's training accuracy so far). It is written to a
    temporary file and renamed over `state.weights.h5`
    (`irevnet_tf.files.atomic_path`), so a process killed while saving
    leaves the previous state whole. The step counter tells `train_lib`
    where to resume: the run continues at exactly that step.

    A state with a non-finite weight or loss is never saved: a diverging
    run keeps its last good state.

    `keras.callbacks.BackupAndRestore` (Keras 3.15) is not used: it restores
    the epoch number only, so a run killed mid-epoch replays that epoch from
    its first batch (more steps than asked for), and after a restart it
    records epoch 0 until its first epoch ends.

    Args:
        restore_dir: where the state is read from.
        every_steps: save when the step counter is a multiple of this, and
            at the end of every `fit`.
        save_dir: where it is written; None for `restore_dir`. Workers
            other than the chief save into a temporary directory: every
            worker runs the same saving code, only the chief's is kept.
        steps_per_epoch: optimizer steps per epoch; if given, a state
            restored in the middle of an epoch brings back the metrics'
            running values when that epoch resumes.
    """

    def __init__(
        self, restore_dir, every_steps, save_dir=None, steps_per_epoch=None
    ):
        super().__init__()
        if every_steps < 1:
            raise ValueError(
                "`every_steps` must be a positive integer. "
                f"Received: every_steps={every_steps!r}"
            )
        self.restore_dir = restore_dir
        self.every_steps = every_steps
        self.save_dir = save_dir or restore_dir
        self.steps_per_epoch = steps_per_epoch
        self.last_saved_step = None
        self.refused_step = None  # The first state refused as non-finite.
        self._loss_finite = True
        self._pending_metrics = None

    @property
    def state_path(self):
        return os.path.join(self.restore_dir, CHECKPOINT_FILENAME)

    def restore(self, model) -> int:
        """Loads the saved state into `model`; returns the step reached.

        Raises:
            ValueError: naming the file, if it exists but cannot be read.
        """
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        if os.path.exists(self.state_path):
            try:
                model.load_weights(self.state_path)
                extras = _read_extras(self.state_path, model)
            except Exception as error:  # noqa: BLE001
                # h5py raises OSError for a truncated file, Keras ValueError
                # or KeyError for one of another model.
                reason = (
                    str(error).strip().splitlines()[0] if str(error) else ""
                )
                raise ValueError(
                    f"The checkpoint {self.state_path} cannot be read "
                    f"({type(error).__name__}: {reason}): it is damaged or was "
                    "cut short. Delete it to train the run again from its "
                    "first step, or pass another model directory. "
                    f"Received: checkpoint={self.state_path!r}"
                ) from None
            random_states, metric_values = extras
            for variable, value in zip(_random_states(model), random_states):
                variable.assign(value)
            step = optimizer_step(model)
            if self.steps_per_epoch and step % self.steps_per_epoch:
                # Mid-epoch: the epoch's running metrics go on from here.
                self._pending_metrics = metric_values
        self.last_saved_step = optimizer_step(model)
        return self.last_saved_step

    def save(self):
        step = optimizer_step(self.model)
        if not (self._loss_finite and _all_finite(self.model.weights)):
            if self.refused_step is None:
                self.refused_step = step
            return
        os.makedirs(self.save_dir, exist_ok=True)
        target = os.path.join(self.save_dir, CHECKPOINT_FILENAME)
        with files.atomic_path(target) as staged:
            self.model.save_weights(staged)
            _write_extras(staged, self.model)
        self.last_saved_step = step

    def on_epoch_begin(self, epoch, logs=None):
        # `fit` resets the metrics just before this call: a resumed epoch
        # continues their running values instead.
        if self._pending_metrics is not None:
            for variable, value in zip(
                self.model.metrics_variables, self._pending_metrics
            ):
                variable.assign(value)
            self._pending_metrics = None

    def on_train_batch_end(self, batch, logs=None):
        self._loss_finite = _finite_loss(logs)
        step = optimizer_step(self.model)
        if step % self.every_steps == 0 and step != self.last_saved_step:
            self.save()

    def on_train_end(self, logs=None):
        if optimizer_step(self.model) != self.last_saved_step:
            self.save()


class DivergenceGuard(keras.callbacks.Callback):
    """Stops training at the first step whose loss is not finite.

    Keras's `TerminateOnNaN` stops as well, but does not tell the program;
    this records where, so that the program can refuse to save the model.

    Attributes:
        step: the optimizer step at which the loss stopped being finite,
            or None.
        loss: the loss Keras reported then.
    """

    def __init__(self):
        super().__init__()
        self.step = None
        self.loss = None

    def on_train_batch_end(self, batch, logs=None):
        if self.step is None and not _finite_loss(logs):
            self.step = optimizer_step(self.model)
            self.loss = float(np.asarray(logs["loss"]).ravel()[0])
            self.model.stop_training = True


class ReconstructionImages(keras.callbacks.Callback):
    """Logs test images beside their reconstructions to TensorBoard.

    At every epoch end, in inference mode, each image `x` is mapped to its
    features and back, `Phi^-1(Phi(x))`, and written as one picture (the
    original on the left, the reconstruction on the right) with the mean
    relative error `||x - Phi^-1(Phi(x))|| / ||x||` as a scalar.

    Args:
        classifier: the `IRevNetClassifier` being trained.
        images: a batch of pixel images in [0, 1] `(n, H, W, C)`, which
            the model takes (and its inverse returns) as they are.
        log_dir: the TensorBoard directory to write into.
    """

    def __init__(self, classifier, images, log_dir):
        super().__init__()
        self.classifier = classifier
        self.images = tf.convert_to_tensor(images)
        self.log_dir = log_dir
        self.writer = None

    def on_epoch_end(self, epoch, logs=None):
        if self.writer is None:
            self.writer = tf.summary.create_file_writer(self.log_dir)
        features = self.classifier.features(self.images, training=False)
        restored = self.classifier.inverse(features, training=False)
        errors = relative_errors(self.images, restored)
        pair = tf.concat([self.images, restored], axis=2)
        # Clipped for display only: the error above is of the raw output.
        pixels = tf.clip_by_value(pair, 0.0, 1.0)
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


# The group of `state.weights.h5` that holds what `save_weights` leaves out.
_EXTRAS_GROUP = "training_state"
_EXTRAS = ("random_states", "metrics")


def _random_states(model) -> list:
    """The states of the model's seed generators (its dropout masks)."""
    return [
        v for v in model.variables if v.path.endswith("seed_generator_state")
    ]


def _extras(model) -> tuple[list, list]:
    return _random_states(model), list(model.metrics_variables)


def _write_extras(path: str, model) -> None:
    with h5py.File(path, "a") as file:
        group = file.create_group(_EXTRAS_GROUP)
        for name, variables in zip(_EXTRAS, _extras(model)):
            part = group.create_group(name)
            for index, variable in enumerate(variables):
                part.create_dataset(
                    str(index), data=keras.ops.convert_to_numpy(variable)
                )


def _read_extras(path: str, model) -> tuple[list, list]:
    """The saved values of `_extras(model)`, checked against the model."""
    values = ([], [])
    with h5py.File(path, "r") as file:
        group = file.get(_EXTRAS_GROUP)
        for name, variables, saved in zip(_EXTRAS, _extras(model), values):
            part = group[name] if group is not None else {}
            if len(part) != len(variables):
                raise ValueError(
                    f"it holds {len(part)} {name}, the model has "
                    f"{len(variables)}"
                )
            for index, variable in enumerate(variables):
                value = part[str(index)][()]
                if value.shape != tuple(variable.shape):
                    raise ValueError(f"{name} {index} has another shape")
                saved.append(value)
    return values


def _all_finite(variables) -> bool:
    return all(
        np.all(np.isfinite(keras.ops.convert_to_numpy(v))) for v in variables
    )


def _finite_loss(logs) -> bool:
    loss = (logs or {}).get("loss")
    return loss is None or bool(np.all(np.isfinite(np.asarray(loss))))
