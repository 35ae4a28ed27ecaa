"""A trained model's SavedModels take and return pixels, and image files.

One run of the training program (`--recipe=cifar`, so the model
standardises its inputs) on a folder of RGB digits whose channel statistics
are far from 0 and 1, so that a model fed normalised rather than plain
pixels answers differently. The export is then used by a process that
cannot import this project, through the gRPC stand-in, and through REST
bodies as TF Serving documents them.
"""

import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile

import grpc
import keras
import numpy as np
import pytest
from tensorflow_serving.apis import prediction_service_pb2_grpc

from irevnet_tf import datasets
from irevnet_tf.datasets import folder
from irevnet_tf.serving import client
from irevnet_tf.testing import processes
from irevnet_tf.testing import train_runs
from irevnet_tf.testing.digit_files import write_digit_folder
from irevnet_tf.testing.prediction_service import StandInPredictionService
from irevnet_tf.testing.prediction_service import load_signatures
from irevnet_tf.testing.prediction_service import rest_predict
from irevnet_tf.testing.test_case import TestCase
from irevnet_tf.testing.test_case import relative_error

# The serving graph is the model's own computation, so the same numbers up
# to float32 rounding of a different kernel order: measured 0 to 1e-7.
RTOL = 1e-4

# Runs the SavedModels with TensorFlow alone; importing the project fails.
FRESH_PROCESS = """
import sys

for name in ("irevnet_tf", "export", "train"):
    sys.modules[name] = None  # `import irevnet_tf` raises ImportError

import numpy as np
import tensorflow as tf

forward_dir, inverse_dir, inputs_path, outputs_path = sys.argv[1:]
inputs = np.load(inputs_path)
forward = tf.saved_model.load(forward_dir).signatures
inverse = tf.saved_model.load(inverse_dir).signatures["serving_default"]
pixels = forward["serving_default"](images=tf.constant(inputs["pixels"]))
normalised = forward["serving_default"](
    images=tf.constant(inputs["normalised"])
)
files = [open(path, "rb").read() for path in inputs["paths"]]
from_files = forward["image_bytes"](image_bytes=tf.constant(files))
restored = inverse(features=pixels["features"])["images"]
try:
    forward["image_bytes"](image_bytes=tf.constant([files[0], b"not an image"]))
    error = ""
except tf.errors.InvalidArgumentError as raised:
    error = raised.message
try:
    truncated = files[1][: len(files[1]) // 2]
    forward["image_bytes"](image_bytes=tf.constant([files[0], truncated]))
    truncated_error = ""
except tf.errors.InvalidArgumentError as raised:
    truncated_error = raised.message
try:
    import irevnet_tf
    imported = True
except ImportError:
    imported = False
np.savez(
    outputs_path,
    logits=pixels["logits"].numpy(),
    probabilities=pixels["probabilities"].numpy(),
    normalised_logits=normalised["logits"].numpy(),
    file_logits=from_files["logits"].numpy(),
    restored=restored.numpy(),
    error=error,
    truncated_error=truncated_error,
    imported=imported,
)
"""


def read_files(paths):
    contents = []
    for path in paths:
        with open(path, "rb") as file:
            contents.append(file.read())
    return contents


@pytest.mark.large
class TrainedModelServesPixelsTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp()
        data = os.path.join(cls.tmp, "digits")
        # Channels: the digit, its negative and half of it.
        write_digit_folder(data, split_folders=True, rgb=True)
        cls.dataset = f"folder:{data}"
        model_dir = os.path.join(cls.tmp, "run")
        export_dir = os.path.join(cls.tmp, "serving")
        cls.training = train_runs.run(
            f"--dataset={cls.dataset}",
            "--recipe=cifar",
            "--preset=digits",
            "--image_size=16",
            "--batch_size=15",
            "--epochs=2",
            f"--model_dir={model_dir}",
            f"--export_dir={export_dir}",
        )
        if cls.training.returncode:
            return
        with open(os.path.join(model_dir, "metrics.json")) as file:
            cls.metrics = json.load(file)
        cls.model = keras.saving.load_model(
            os.path.join(model_dir, "model.keras")
        )
        # The training program's evaluation images: pixels in [0, 1].
        test, cls.info = datasets.load(
            cls.dataset, "test", image_size=16, preprocessing="cifar"
        )
        examples = list(test.as_numpy_iterator())
        cls.pixels = np.stack([image for image, _ in examples])
        cls.labels = np.array([label for _, label in examples])
        cls.paths = [path for path, _ in folder.read_folder(data).files["test"]]
        cls.normalised = (
            (cls.pixels - np.array(cls.info.mean)) / np.array(cls.info.std)
        ).astype("float32")
        cls.forward_dir = cls.metrics["export"]["forward_dir"]
        cls.inverse_dir = cls.metrics["export"]["inverse_dir"]
        inputs_path = os.path.join(cls.tmp, "inputs.npz")
        np.savez(
            inputs_path,
            pixels=cls.pixels,
            normalised=cls.normalised,
            paths=np.array(cls.paths),
        )
        outputs_path = os.path.join(cls.tmp, "outputs.npz")
        cls.fresh = subprocess.run(
            [
                sys.executable,
                "-c",
                FRESH_PROCESS,
                cls.forward_dir,
                cls.inverse_dir,
                inputs_path,
                outputs_path,
            ],
            cwd=cls.tmp,
            env=processes.user_environment(),
            capture_output=True,
            text=True,
            timeout=600,
        )
        if not cls.fresh.returncode:
            cls.outputs = dict(np.load(outputs_path))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.assertEqual(
            self.training.returncode, 0, self.training.stderr[-3000:]
        )
        self.assertEqual(self.fresh.returncode, 0, self.fresh.stderr[-3000:])

    def test_the_model_standardises_with_the_training_statistics(self):
        backbone = self.model.backbone
        self.assertEqual(backbone.input_mean, list(self.info.mean))
        self.assertEqual(backbone.input_std, list(self.info.std))
        # Far from the identity: the folder was chosen so.
        self.assertGreater(np.max(np.abs(np.array(self.info.mean))), 0.3)

    def test_fresh_process_classifies_pixels_as_the_evaluation_did(self):
        self.assertFalse(self.outputs["imported"])
        logits = self.outputs["logits"]
        expected = self.model(self.pixels, training=False)
        self.assertLessEqual(relative_error(logits, expected), RTOL)
        predictions = logits.argmax(axis=1)
        self.assertAllEqual(predictions, np.argmax(expected, axis=1))
        self.assertAllClose(
            np.mean(predictions == self.labels),
            self.metrics["test_accuracy"],
        )
        self.assertAllClose(
            self.outputs["probabilities"].sum(axis=1), np.ones(len(logits))
        )
        # What a client sending normalised images (the old contract)
        # would get: other answers.
        self.assertNotAllEqual(
            self.outputs["normalised_logits"].argmax(axis=1), predictions
        )

    def test_image_files_give_the_same_logits(self):
        self.assertLessEqual(
            relative_error(self.outputs["file_logits"], self.outputs["logits"]),
            RTOL,
        )

    def test_inverse_returns_the_pixel_images(self):
        error = relative_error(self.outputs["restored"], self.pixels)
        print(f"inverse(features(pixels)) relative error: {error:.3g}")
        self.assertLessEqual(error, RTOL)

    def test_undecodable_bytes_name_the_example(self):
        self.assertIn(
            "irevnet_forward: `image_bytes` example 1 is not a PNG, JPEG, "
            "GIF or BMP image",
            str(self.outputs["error"]),
        )
        self.assertIn(
            "irevnet_forward: `image_bytes` example 1 cannot be decoded: a "
            "truncated or corrupt image",
            str(self.outputs["truncated_error"]),
        )

    def test_grpc_stand_in(self):
        server = grpc.server(
            concurrent.futures.ThreadPoolExecutor(max_workers=2),
            options=client.GRPC_CHANNEL_OPTIONS,
        )
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            StandInPredictionService(
                {
                    client.FORWARD_NAME: self.forward_dir,
                    client.INVERSE_NAME: self.inverse_dir,
                }
            ),
            server,
        )
        target = f"localhost:{server.add_insecure_port('localhost:0')}"
        server.start()
        self.addCleanup(server.stop, None)
        stub = client.prediction_service_stub(target)
        outputs = client.parse_predict_response(
            stub.Predict(client.forward_request(self.pixels), timeout=60),
            client.FORWARD_OUTPUTS,
        )
        self.assertLessEqual(
            relative_error(outputs["logits"], self.outputs["logits"]), RTOL
        )
        files = read_files(self.paths)
        from_files = client.parse_predict_response(
            stub.Predict(client.image_bytes_request(files), timeout=60),
            client.FORWARD_OUTPUTS,
        )
        self.assertLessEqual(
            relative_error(from_files["logits"], self.outputs["logits"]), RTOL
        )
        restored = client.parse_predict_response(
            stub.Predict(
                client.inverse_request(outputs["features"]), timeout=60
            ),
            client.INVERSE_OUTPUTS,
        )["images"]
        self.assertLessEqual(relative_error(restored, self.pixels), RTOL)

    def test_rest_bodies(self):
        forward = load_signatures({"f": self.forward_dir})["f"]
        inverse = load_signatures({"i": self.inverse_dir})["i"]
        files = read_files(self.paths)
        for format in ("instances", "inputs"):
            body = json.loads(
                json.dumps(client.image_bytes_rest_body(files, format=format))
            )
            self.assertEqual(body["signature_name"], "image_bytes")
            reply = json.dumps(rest_predict(forward, body))
            outputs = client.parse_rest_response(reply, client.FORWARD_OUTPUTS)
            self.assertLessEqual(
                relative_error(outputs["logits"], self.outputs["logits"]),
                RTOL,
                format,
            )
            body = json.loads(
                json.dumps(client.forward_rest_body(self.pixels, format=format))
            )
            pixels = client.parse_rest_response(
                json.dumps(rest_predict(forward, body)),
                client.FORWARD_OUTPUTS,
            )
            self.assertLessEqual(
                relative_error(pixels["logits"], self.outputs["logits"]),
                RTOL,
                format,
            )
            body = json.loads(
                json.dumps(
                    client.inverse_rest_body(pixels["features"], format=format)
                )
            )
            restored = client.parse_rest_response(
                json.dumps(rest_predict(inverse, body)),
                client.INVERSE_OUTPUTS,
            )["images"]
            self.assertLessEqual(
                relative_error(restored, self.pixels), RTOL, format
            )
        # The row format of the issue, written out by hand.
        first = json.loads(json.dumps(client.image_bytes_rest_body(files[:1])))
        self.assertEqual(list(first["instances"][0]), ["image_bytes"])
        self.assertEqual(list(first["instances"][0]["image_bytes"]), ["b64"])
