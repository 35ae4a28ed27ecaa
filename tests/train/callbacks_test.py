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
