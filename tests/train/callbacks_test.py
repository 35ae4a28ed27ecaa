import os
import tempfile

import keras
import numpy as np

from irevnet_tf.reconstruction_error import relative_errors
from irevnet_tf.run_directory import CHECKPOINT_FILENAME
from irevnet_tf.testing.test_case import TestCase
from train import callbacks


def small_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "mse")
    return model


def train_steps(model, steps):
    x = np.ones((4 * steps, 3), np.float32)
    y = np.zeros((4 * steps, 2), np.float32)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)


class TrainingStateBackupTest(TestCase):
    def setUp(self):
        super().setUp()
        self.backup_dir = tempfile.mkdtemp(dir=self.get_temp_dir())

    def test_nothing_to_restore(self):
        backup = callbacks.TrainingStateBackup(self.backup_dir, 5)
        self.assertEqual(backup.restore(small_model()), 0)

    def test_saves_every_n_steps_and_restores_optimizer_state(self):
        model = small_model()
        backup = callbacks.TrainingStateBackup(self.backup_dir, 3)
        backup.restore(model)
        saved_steps = []
        original_save = backup.save

        def recording_save():
            original_save()
            saved_steps.append(callbacks.optimizer_step(model))

        backup.save = recording_save
        x = np.ones((28, 3), np.float32)
        y = np.zeros((28, 2), np.float32)
        model.fit(
            x, y, batch_size=4, verbose=0, shuffle=False, callbacks=[backup]
        )
        # Every 3 steps, and once more at the end of fit (step 7).
        self.assertEqual(saved_steps, [3, 6, 7])

        fresh = small_model()
        restored = callbacks.TrainingStateBackup(self.backup_dir, 3)
        self.assertEqual(restored.restore(fresh), 7)
        for expected, actual in zip(model.get_weights(), fresh.get_weights()):
            self.assertAllEqual(expected, actual)
        for expected, actual in zip(
            model.optimizer.variables, fresh.optimizer.variables
        ):
            self.assertAllEqual(expected, actual)  # Momentum included.

    def test_interrupted_save_keeps_the_previous_state(self):
        model = small_model()
        backup = callbacks.TrainingStateBackup(self.backup_dir, 1)
        backup.restore(model)
        train_steps(model, 2)
        backup.set_model(model)
        backup.save()
        path = os.path.join(self.backup_dir, CHECKPOINT_FILENAME)
        with open(path, "rb") as f:
            saved = f.read()

        def dies_while_writing(filepath, **kwargs):
            with open(filepath, "wb") as f:
                f.write(b"half a file")
            raise KeyboardInterrupt  # Stands in for a kill.

        train_steps(model, 1)
        model.save_weights = dies_while_writing
        with self.assertRaises(KeyboardInterrupt):
            backup.save()
        with open(path, "rb") as f:
            self.assertEqual(f.read(), saved)
        self.assertEqual(os.listdir(self.backup_dir), [CHECKPOINT_FILENAME])
        self.assertEqual(
            callbacks.TrainingStateBackup(self.backup_dir, 1).restore(
                small_model()
            ),
            2,
        )

    def test_bad_interval(self):
        with self.assertRaisesRegex(ValueError, "every_steps=0"):
            callbacks.TrainingStateBackup(self.backup_dir, 0)


class RelativeErrorsTest(TestCase):
    # The error the ReconstructionImages callback logs is the library's.
    def test_per_example(self):
        images = np.array([[3.0, 4.0], [1.0, 0.0]], np.float32)
        restored = np.array([[3.0, 4.5], [1.0, 0.0]], np.float32)
        self.assertAllClose(relative_errors(images, restored), [0.1, 0.0])


def dropout_model():
    # Dropout draws its masks from a seed generator, as the model's does.
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dropout(0.5, seed=1),
            keras.layers.Dense(2),
        ]
    )
    model.compile(
        keras.optimizers.SGD(0.1, momentum=0.9), "mse", metrics=["mae"]
    )
    return model


def seed_state(model):
    (state,) = [v for v in model.variables if "seed_generator" in v.path]
    return keras.ops.convert_to_numpy(state)


class ExactStateTest(TestCase):
    """What save_weights leaves out, saved and restored all the same."""

    def setUp(self):
        super().setUp()
        self.backup_dir = tempfile.mkdtemp(dir=self.get_temp_dir())

    def test_seed_generators_and_mid_epoch_metrics_are_restored(self):
        model = dropout_model()
        # 4 steps per epoch; the state is saved at step 3, mid-epoch.
        backup = callbacks.TrainingStateBackup(
            self.backup_dir, 3, steps_per_epoch=4
        )
        backup.restore(model)
        x = np.arange(36, dtype=np.float32).reshape(12, 3) / 36
        y = np.ones((12, 2), np.float32)
        saved = {}

        class Snapshot(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if callbacks.optimizer_step(model) == 3:
                    saved["seed"] = seed_state(model)
                    saved["metrics"] = [
                        keras.ops.convert_to_numpy(v)
                        for v in model.metrics_variables
                    ]

        model.fit(
            x,
            y,
            batch_size=3,
            epochs=1,
            steps_per_epoch=3,
            verbose=0,
            shuffle=False,
            callbacks=[backup, Snapshot()],
        )
        self.assertEqual(backup.last_saved_step, 3)

        fresh = dropout_model()
        fresh.evaluate(x, y, verbose=0)  # Builds the compiled metrics.
        restored = callbacks.TrainingStateBackup(
            self.backup_dir, 3, steps_per_epoch=4
        )
        self.assertEqual(restored.restore(fresh), 3)
        # Three draws of one mask each: not the initial state.
        self.assertAllEqual(seed_state(fresh), saved["seed"])
        self.assertNotAllEqual(seed_state(fresh), seed_state(dropout_model()))
        # fit resets the metrics at the start of the epoch; the resumed
        # epoch gets the running values back.
        restored.set_model(fresh)
        fresh.reset_metrics()
        restored.on_epoch_begin(0)
        for expected, variable in zip(
            saved["metrics"], fresh.metrics_variables
        ):
            self.assertAllEqual(variable, expected)
        self.assertGreater(float(fresh.metrics_variables[1]), 0)  # A count.

    def test_state_at_an_epoch_boundary_keeps_fresh_metrics(self):
        model = dropout_model()
        backup = callbacks.TrainingStateBackup(
            self.backup_dir, 2, steps_per_epoch=2
        )
        backup.restore(model)
        x, y = np.ones((6, 3), np.float32), np.ones((6, 2), np.float32)
        model.fit(x, y, batch_size=3, verbose=0, callbacks=[backup])
        fresh = dropout_model()
        fresh.evaluate(x, y, verbose=0)  # Builds the compiled metrics.
        restored = callbacks.TrainingStateBackup(
            self.backup_dir, 2, steps_per_epoch=2
        )
        self.assertEqual(restored.restore(fresh), 2)
        restored.set_model(fresh)
        fresh.reset_metrics()  # As fit does before on_epoch_begin.
        restored.on_epoch_begin(1)
        for variable in fresh.metrics_variables:
            self.assertAllEqual(variable, np.zeros_like(variable))

    def test_non_finite_state_is_never_saved(self):
        model = small_model()
        backup = callbacks.TrainingStateBackup(self.backup_dir, 1)
        backup.restore(model)
        train_steps(model, 2)
        backup.set_model(model)
        backup.save()
        path = os.path.join(self.backup_dir, CHECKPOINT_FILENAME)
        with open(path, "rb") as f:
            good = f.read()
        model.layers[0].kernel.assign(np.full((3, 2), np.nan, np.float32))
        train_steps(model, 1)
        backup.save()
        self.assertEqual(backup.refused_step, 3)
        self.assertEqual(backup.last_saved_step, 2)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), good)

    def test_damaged_checkpoint_is_named(self):
        model = small_model()
        backup = callbacks.TrainingStateBackup(self.backup_dir, 1)
        backup.restore(model)
        train_steps(model, 1)
        backup.set_model(model)
        backup.save()
        path = os.path.join(self.backup_dir, CHECKPOINT_FILENAME)
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
        with self.assertRaisesRegex(
            ValueError,
            f"The checkpoint {path} cannot be read .* cut short. Delete it",
        ):
            callbacks.TrainingStateBackup(self.backup_dir, 1).restore(
                small_model()
            )


class DivergenceGuardTest(TestCase):
    def test_stops_at_the_first_non_finite_loss(self):
        model = small_model()
        model.optimizer.learning_rate.assign(1e30)
        guard = callbacks.DivergenceGuard()
        x = np.full((40, 3), 1e10, np.float32)
        y = np.zeros((40, 2), np.float32)
        history = model.fit(
            x, y, batch_size=4, verbose=0, shuffle=False, callbacks=[guard]
        )
        self.assertIsNotNone(guard.step)
        self.assertFalse(np.isfinite(guard.loss))
        # Stopped at once, not after the 10 steps of the epoch.
        self.assertEqual(callbacks.optimizer_step(model), guard.step)
        self.assertLess(guard.step, 10)
        self.assertLen(history.history["loss"], 1)
