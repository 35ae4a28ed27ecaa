import dataclasses
import os
import shutil
import tempfile
from unittest import mock

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized
from google.protobuf import text_format
from tensorflow.core.protobuf import config_pb2
from tensorflow_serving.config import model_server_config_pb2

from export import export_lib
from export import versions
from irevnet_tf import IRevNet
from irevnet_tf import IRevNetClassifier
from irevnet_tf import files
from irevnet_tf import run_directory
from irevnet_tf.models import loading
from irevnet_tf.testing.read_only import read_only_directory
from irevnet_tf.testing.saved_model_graph import signature_nodes
from irevnet_tf.testing.saved_model_graph import training_nodes
from irevnet_tf.testing.small_classifier import small_classifier
from irevnet_tf.testing.test_case import TestCase
from irevnet_tf.testing.test_case import randomize_batch_norm
from irevnet_tf.testing.test_case import relative_error

IMAGES_MESSAGE = (
    r"irevnet_forward: `images` must be a float32 tensor of shape "
    r"\[batch, 16, 16, 3\]\. Received shape:\] \[{}\]"
)
FEATURES_MESSAGE = (
    r"irevnet_inverse: `features` must be a float32 tensor of shape "
    r"\[batch, 8, 8, 64\]\. Received shape:\] \[{}\]"
)
# How a signature is run: `tf.saved_model.load` (TensorFlow 2), and C++
# `Session::Run` as the model server does (`ModelServerLikeRunner`).
RUNNERS = ("load", "session")


class ModelServerLikeRunner:
    """Runs a signature the way TF Serving does: C++ `Session::Run`.

    `Session.run` would refuse a badly shaped feed in Python first; the
    model server does not, so the graph's own checks must.
    """

    def __init__(self, export_dir, input_name, output_name):
        self.session = tf.compat.v1.Session(graph=tf.Graph())
        with self.session.graph.as_default():
            meta_graph = tf.compat.v1.saved_model.load(
                self.session, [tf.saved_model.SERVING], export_dir
            )
        signature = meta_graph.signature_def["serving_default"]
        # Private, but the one Python entry to Session::Run without feed
        # checks.
        self.callable = self.session._make_callable_from_options(
            config_pb2.CallableOptions(
                feed=[signature.inputs[input_name].name],
                fetch=[signature.outputs[output_name].name],
            )
        )

    def __call__(self, value):
        return self.callable(value)[0]

    def close(self):
        self.session.close()


class ExportLibTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.output_dir = tempfile.mkdtemp()
        cls.model = small_classifier()
        cls.export = export_lib.export_for_serving(cls.model, cls.output_dir)
        cls.forward = tf.saved_model.load(cls.export.forward_dir).signatures[
            "serving_default"
        ]
        cls.inverse = tf.saved_model.load(cls.export.inverse_dir).signatures[
            "serving_default"
        ]
        cls.served_forward = ModelServerLikeRunner(
            cls.export.forward_dir, "images", "logits"
        )
        cls.served_inverse = ModelServerLikeRunner(
            cls.export.inverse_dir, "features", "images"
        )

    @classmethod
    def tearDownClass(cls):
        cls.served_forward.close()
        cls.served_inverse.close()
        shutil.rmtree(cls.output_dir)
        super().tearDownClass()

    def test_versioned_layout(self):
        self.assertEqual(self.export.version, 1)
        self.assertEqual(
            sorted(os.listdir(self.output_dir)),
            ["irevnet_forward", "irevnet_inverse", "models.config"],
        )
        for name, export_dir in (
            ("irevnet_forward", self.export.forward_dir),
            ("irevnet_inverse", self.export.inverse_dir),
        ):
            self.assertEqual(
                export_dir, os.path.join(self.output_dir, name, "1")
            )
            # Nothing but the version: no staging directory left behind.
            self.assertEqual(
                os.listdir(os.path.join(self.output_dir, name)), ["1"]
            )
            self.assertTrue(tf.saved_model.contains_saved_model(export_dir))

    def test_signatures(self):
        self.assertEqual(
            self.forward.structured_input_signature,
            ((), {"images": tf.TensorSpec((None, 16, 16, 3), name="images")}),
        )
        self.assertEqual(
            self.forward.structured_outputs,
            {
                "logits": tf.TensorSpec((None, 10), name="logits"),
                "probabilities": tf.TensorSpec(
                    (None, 10), name="probabilities"
                ),
                "features": tf.TensorSpec((None, 8, 8, 64), name="features"),
            },
        )
        self.assertEqual(
            self.inverse.structured_input_signature,
            (
                (),
                {"features": tf.TensorSpec((None, 8, 8, 64), name="features")},
            ),
        )
        self.assertEqual(
            self.inverse.structured_outputs,
            {"images": tf.TensorSpec((None, 16, 16, 3), name="images")},
        )

    @parameterized.named_parameters(("batch1", 1), ("batch5", 5))
    def test_forward_matches_keras(self, batch):
        images = np.random.rand(batch, 16, 16, 3).astype("float32")
        outputs = self.forward(images=tf.constant(images))
        logits = self.model(images, training=False)
        self.assertAllClose(outputs["logits"], logits, atol=1e-5)
        self.assertAllClose(self.served_forward(images), logits, atol=1e-5)
        self.assertAllClose(
            outputs["probabilities"], tf.nn.softmax(logits), atol=1e-6
        )
        self.assertAllClose(
            outputs["features"], self.model.features(images), atol=1e-5
        )

    def test_round_trip(self):
        images = np.random.rand(4, 16, 16, 3).astype("float32")
        features = self.forward(images=tf.constant(images))["features"]
        restored = self.inverse(features=features)["images"]
        # Measured about 6e-8 (float32 rounding through 2 blocks).
        self.assertLessEqual(relative_error(restored, images), 1e-5)
        self.assertAllClose(
            restored, self.model.inverse(self.model.features(images)), atol=1e-6
        )

    def run_forward(self, runner, images):
        if runner == "load":
            return self.forward(images=tf.constant(images))["logits"]
        return self.served_forward(images)

    def run_inverse(self, runner, features):
        if runner == "load":
            return self.inverse(features=tf.constant(features))["images"]
        return self.served_inverse(features)

    @parameterized.named_parameters(
        (f"{case}_{runner}", shape, received, runner)
        for case, shape, received in (
            ("height_width", (2, 8, 8, 3), "2 8 8 3"),
            ("width", (2, 16, 12, 3), "2 16 12 3"),
            ("channels", (2, 16, 16, 1), "2 16 16 1"),
            ("rank3", (16, 16, 3), "16 16 3"),
            ("rank5", (2, 16, 16, 3, 1), "2 16 16 3 1"),
            ("scalar", (), ""),
        )
        for runner in RUNNERS
    )
    def test_bad_images_name_expected_shape(self, shape, received, runner):
        images = np.zeros(shape, "float32")
        message = IMAGES_MESSAGE.format(received)
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, message):
            self.run_forward(runner, images)

    @parameterized.named_parameters(
        (f"{case}_{runner}", shape, received, runner)
        for case, shape, received in (
            ("height_width", (2, 4, 4, 64), "2 4 4 64"),
            ("channels", (2, 8, 8, 32), "2 8 8 32"),
            ("rank2", (2, 4096), "2 4096"),
        )
        for runner in RUNNERS
    )
    def test_bad_features_name_expected_shape(self, shape, received, runner):
        features = np.zeros(shape, "float32")
        message = FEATURES_MESSAGE.format(received)
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, message):
            self.run_inverse(runner, features)

    @parameterized.named_parameters(
        (f"{case}_{runner}", value, kind, runner)
        for case, value, kind in (
            ("nan", np.nan, "NaN"),
            ("inf", np.inf, "Inf"),
            ("minus_inf", -np.inf, "Inf"),
        )
        for runner in RUNNERS
    )
    def test_non_finite_features_rejected(self, value, kind, runner):
        images = np.random.rand(2, 16, 16, 3).astype("float32")
        features = self.forward(images=tf.constant(images))["features"].numpy()
        features[1, 3, 4, 5] = value
        message = (
            r"irevnet_inverse: `features` must be finite .* hold NaN or Inf"
            rf".*Tensor had {kind} values"
        )
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, message):
            self.run_inverse(runner, features)

    @parameterized.named_parameters(
        (f"{case}_{runner}", value, kind, runner)
        for case, value, kind in (
            ("nan", np.nan, "NaN"),
            ("inf", np.inf, "Inf"),
            ("minus_inf", -np.inf, "Inf"),
        )
        for runner in RUNNERS
    )
    def test_non_finite_images_rejected(self, value, kind, runner):
        images = np.random.rand(2, 16, 16, 3).astype("float32")
        images[1, 3, 4, 2] = value
        message = (
            r"irevnet_forward: `images` must be finite, but hold NaN or Inf"
            rf".*Tensor had {kind} values"
        )
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, message):
            self.run_forward(runner, images)

    def test_empty_batch_gives_empty_outputs(self):
        # Not refused, and the same with oneDNN (tests/export/faults_test.py
        # runs it with oneDNN on and off).
        outputs = self.forward(images=tf.zeros((0, 16, 16, 3)))
        self.assertEqual(
            {name: tuple(tensor.shape) for name, tensor in outputs.items()},
            {
                "logits": (0, 10),
                "probabilities": (0, 10),
                "features": (0, 8, 8, 64),
            },
        )
        self.assertEqual(
            self.served_forward(np.zeros((0, 16, 16, 3), "float32")).shape,
            (0, 10),
        )
        restored = self.inverse(features=outputs["features"])["images"]
        self.assertEqual(tuple(restored.shape), (0, 16, 16, 3))
        self.assertEqual(
            self.served_inverse(np.zeros((0, 8, 8, 64), "float32")).shape,
            (0, 16, 16, 3),
        )

    @parameterized.named_parameters(("float64", "float64"), ("int32", "int32"))
    def test_wrong_dtype_rejected(self, dtype):
        images = tf.zeros((2, 16, 16, 3), dtype)
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError, "expected to be a float tensor"
        ):
            self.forward(images=images)
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError, "expected to be a float tensor"
        ):
            self.inverse(features=tf.zeros((2, 8, 8, 64), dtype))

    @parameterized.named_parameters(
        (
            "forward",
            "forward_dir",
            {"Conv2D", "SpaceToDepth", "Assert", "CheckNumerics"},
        ),
        (
            "inverse",
            "inverse_dir",
            {"Conv2D", "DepthToSpace", "Assert", "CheckNumerics"},
        ),
    )
    def test_inference_graphs_only(self, export_dir, expected_ops):
        nodes = signature_nodes(getattr(self.export, export_dir))
        ops = {node.op for node in nodes}
        # The walk reaches the model's function bodies.
        self.assertContainsSubset(expected_ops, ops)
        self.assertEqual(training_nodes(nodes), [])

    def test_training_nodes_detects_training_graphs(self):
        # The check of test_inference_graphs_only on a graph that has what
        # it looks for: a custom gradient and BatchNorm in training mode.
        norm = keras.layers.BatchNormalization()
        norm.build((None, 4))

        @tf.custom_gradient
        def scaled(x):
            return 2 * x, lambda dy: 2 * dy

        module = tf.Module()
        module.norm = norm
        module.serve = tf.function(
            lambda x: {"y": norm(scaled(x), training=True)},
            input_signature=[tf.TensorSpec((None, 4), tf.float32)],
        )
        export_dir = os.path.join(self.get_temp_dir(), "training")
        tf.saved_model.save(module, export_dir, signatures=module.serve)
        found = training_nodes(signature_nodes(export_dir))
        self.assertIn("IdentityN (custom gradient)", found)
        self.assertIn("AssignVariableOp", found)

    def test_models_config(self):
        with open(self.export.models_config) as file:
            config = text_format.Parse(
                file.read(), model_server_config_pb2.ModelServerConfig()
            )
        self.assertEqual(
            [
                (c.name, c.base_path, c.model_platform)
                for c in config.model_config_list.config
            ],
            [
                (
                    "irevnet_forward",
                    os.path.join(self.output_dir, "irevnet_forward"),
                    "tensorflow",
                ),
                (
                    "irevnet_inverse",
                    os.path.join(self.output_dir, "irevnet_inverse"),
                    "tensorflow",
                ),
            ],
        )
        for model_config in config.model_config_list.config:
            self.assertTrue(os.path.isabs(model_config.base_path))
            self.assertTrue(os.path.isdir(model_config.base_path))


class MixedPrecisionExportTest(TestCase):
    """A model trained under a mixed policy serves an exact inverse."""

    @parameterized.named_parameters(
        ("bfloat16", "mixed_bfloat16"), ("float16", "mixed_float16")
    )
    def test_round_trip(self, policy):
        keras.utils.set_random_seed(0)
        model = IRevNetClassifier(
            IRevNet(
                stage_depths=[1, 1],
                stage_filters=[8, 32],
                stage_strides=[1, 2],
                image_shape=(16, 16, 3),
                dtype=policy,
            ),
            10,
            dtype=policy,
        )
        randomize_batch_norm(model)
        export = export_lib.export_for_serving(model, self.get_temp_dir())
        forward = tf.saved_model.load(export.forward_dir).signatures[
            "serving_default"
        ]
        inverse = tf.saved_model.load(export.inverse_dir).signatures[
            "serving_default"
        ]
        images = np.random.rand(4, 16, 16, 3).astype("float32")
        features = forward(images=tf.constant(images))["features"]
        self.assertEqual(features.dtype, tf.float32)
        restored = inverse(features=features)["images"]
        # The stream stays float32 on a 2**-20 grid: only the input's
        # rounding to the grid remains (measured ~5e-7). Features cast to
        # the 16-bit compute dtype on their way in would miss by ~1e-3.
        self.assertLessEqual(relative_error(restored, images), 1e-6)


class ExportVersionsTest(TestCase):
    def test_next_version_names_and_serving_root(self):
        model = small_classifier()
        output_dir = self.get_temp_dir()
        first = export_lib.export_for_serving(
            model,
            output_dir,
            forward_name="fwd",
            inverse_name="inv",
            version=3,
            serving_root="/models",
        )
        self.assertEqual(
            first.forward_dir, os.path.join(output_dir, "fwd", "3")
        )
        # Another model: the same model again would add no version.
        second = export_lib.export_for_serving(
            small_classifier(seed=1),
            output_dir,
            forward_name="fwd",
            inverse_name="inv",
        )
        self.assertEqual(second.version, 4)
        self.assertEqual(
            sorted(os.listdir(os.path.join(output_dir, "inv"))), ["3", "4"]
        )
        with open(second.models_config) as file:
            config = text_format.Parse(
                file.read(), model_server_config_pb2.ModelServerConfig()
            )
        # The second export did not pass serving_root.
        self.assertEqual(
            [c.base_path for c in config.model_config_list.config],
            [os.path.join(output_dir, "fwd"), os.path.join(output_dir, "inv")],
        )
        # Version 4 holds the second model.
        with self.assertRaisesRegex(
            ValueError, r"Version already exists.*version=4"
        ):
            export_lib.export_for_serving(
                model,
                output_dir,
                forward_name="fwd",
                inverse_name="inv",
                version=4,
            )

    def test_failed_export_leaves_no_partial_version(self):
        model = small_classifier()
        output_dir = self.get_temp_dir()
        with mock.patch.object(
            export_lib, "export_inverse", side_effect=OSError("disk full")
        ):
            with self.assertRaisesRegex(OSError, "disk full"):
                export_lib.export_for_serving(model, output_dir)
        # Both are staged before either is published: the server loads
        # neither, never a half-written inverse nor a forward without its
        # inverse, and nothing is left behind.
        self.assertEqual(
            os.listdir(os.path.join(output_dir, "irevnet_forward")), []
        )
        self.assertEqual(
            os.listdir(os.path.join(output_dir, "irevnet_inverse")), []
        )
        self.assertEqual(
            versions.next_version(
                output_dir, ["irevnet_forward", "irevnet_inverse"]
            ),
            1,
        )

    def test_latest_pair_skips_a_version_of_one_model_only(self):
        # As a kill between the two SavedModels of an export leaves it.
        output_dir = self.get_temp_dir()
        names = ["irevnet_forward", "irevnet_inverse"]
        self.assertIsNone(versions.latest_pair(output_dir, names))
        for name, version in [(names[0], 1), (names[1], 1), (names[0], 2)]:
            os.makedirs(os.path.join(output_dir, name, str(version)))
        self.assertEqual(versions.latest_pair(output_dir, names), 1)
        self.assertEqual(versions.next_version(output_dir, names), 3)

    def test_same_model_again_adds_no_version(self):
        model = small_classifier()
        output_dir = self.get_temp_dir()
        first = export_lib.export_for_serving(model, output_dir)
        saved = os.path.join(first.forward_dir, "saved_model.pb")
        modified = os.stat(saved).st_mtime_ns
        for version in (None, 1):
            again = export_lib.export_for_serving(
                small_classifier(), output_dir, version=version
            )
            self.assertEqual(again, dataclasses.replace(first, written=()))
        self.assertEqual(first.written, ("irevnet_forward", "irevnet_inverse"))
        for name in ("irevnet_forward", "irevnet_inverse"):
            self.assertEqual(os.listdir(os.path.join(output_dir, name)), ["1"])
        self.assertEqual(os.stat(saved).st_mtime_ns, modified)
        # A new weight is another model.
        model.classifier.bias.assign(model.classifier.bias + 1.0)
        self.assertEqual(
            export_lib.export_for_serving(model, output_dir).version, 2
        )

    def test_half_pair_of_the_same_model_is_completed(self):
        # What a kill between the two renames leaves: the forward alone.
        output_dir = self.get_temp_dir()
        first = export_lib.export_for_serving(small_classifier(), output_dir)
        shutil.rmtree(first.inverse_dir)
        again = export_lib.export_for_serving(small_classifier(), output_dir)
        self.assertEqual(again.version, 1)
        self.assertEqual(again.written, ("irevnet_inverse",))
        self.assertTrue(tf.saved_model.contains_saved_model(again.inverse_dir))

    def test_half_pair_of_another_model_is_passed_over(self):
        output_dir = self.get_temp_dir()
        first = export_lib.export_for_serving(small_classifier(), output_dir)
        shutil.rmtree(first.inverse_dir)
        other = export_lib.export_for_serving(
            small_classifier(seed=1), output_dir
        )
        self.assertEqual(other.version, 2)
        self.assertEqual(
            sorted(os.listdir(os.path.join(output_dir, "irevnet_forward"))),
            ["1", "2"],
        )
        self.assertEqual(
            os.listdir(os.path.join(output_dir, "irevnet_inverse")), ["2"]
        )
        # The half pair is another model's: version 1 is not completed.
        with self.assertRaisesRegex(
            ValueError, r"holds another model.*version=1, existing .*forward"
        ):
            export_lib.export_for_serving(
                small_classifier(seed=1), output_dir, version=1
            )

    def test_exports_without_records_are_other_models(self):
        model = small_classifier()
        output_dir = self.get_temp_dir()
        first = export_lib.export_for_serving(model, output_dir)
        for export_dir in (first.forward_dir, first.inverse_dir):
            self.assertEqual(
                versions.read_record(export_dir),
                versions.model_fingerprint(model),
            )
            os.remove(os.path.join(export_dir, versions.RECORD_PATH))
        self.assertEqual(
            export_lib.export_for_serving(model, output_dir).version, 2
        )

    def test_stale_staging_is_removed(self):
        output_dir = self.get_temp_dir()
        leftovers = [
            os.path.join(output_dir, directory, ".staging-killed", "1")
            for directory in ("", "irevnet_forward", "irevnet_inverse")
        ]
        for leftover in leftovers:
            os.makedirs(leftover)
        export_lib.export_for_serving(small_classifier(), output_dir)
        for leftover in leftovers:
            self.assertFalse(os.path.exists(os.path.dirname(leftover)))

    def test_another_export_running_is_refused(self):
        output_dir = self.get_temp_dir()
        with versions.exclusive(output_dir):
            with self.assertRaisesRegex(
                ValueError, r"Another export is writing.*output_dir="
            ):
                export_lib.export_for_serving(small_classifier(), output_dir)
        self.assertEqual(os.listdir(output_dir), [])

    @parameterized.named_parameters(
        ("file", "is a file"), ("under_a_file", "lies under the file")
    )
    def test_output_dir_that_is_a_file(self, message):
        path = os.path.join(self.get_temp_dir(), "file")
        with open(path, "w") as file:
            file.write("x")
        output_dir = path if message == "is a file" else f"{path}/serving"
        with self.assertRaisesRegex(ValueError, f"{message}.*output_dir="):
            export_lib.export_for_serving(small_classifier(), output_dir)
        self.assertEqual(os.listdir(os.path.dirname(path)), ["file"])

    def test_read_only_output_dir(self):
        locked = os.path.join(self.get_temp_dir(), "locked")
        with read_only_directory(locked):
            with self.assertRaisesRegex(
                ValueError, r"Cannot write to .*locked.*output_dir="
            ):
                export_lib.export_for_serving(
                    small_classifier(), os.path.join(locked, "serving")
                )
        self.assertEqual(os.listdir(locked), [])

    @parameterized.named_parameters(
        ("version_zero", {"version": 0}, r"Received: version=0"),
        ("version_text", {"version": "2"}, r"Received: version='2'"),
        ("forward_name", {"forward_name": "a/b"}, r"Received: 'a/b'"),
        ("inverse_name", {"inverse_name": ""}, r"Received: ''"),
        (
            "same_names",
            {"forward_name": "same", "inverse_name": "same"},
            r"Received: forward_name='same', inverse_name='same'",
        ),
        (
            "serving_root",
            {"serving_root": "models"},
            r"Received: serving_root='models'",
        ),
    )
    def test_invalid_arguments(self, kwargs, message):
        model = small_classifier()
        output_dir = self.get_temp_dir()
        with self.assertRaisesRegex(ValueError, message):
            export_lib.export_for_serving(model, output_dir, **kwargs)
        self.assertEqual(os.listdir(output_dir), [])

    def test_models_config_needs_absolute_paths(self):
        with self.assertRaisesRegex(ValueError, r"absolute base paths"):
            export_lib.models_config({"m": "relative/path"})


class DynamicShapeTest(TestCase):
    """A model whose height and width are left open."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.output_dir = tempfile.mkdtemp()
        # Initial down-sampling by 2 and one stride-2 stage: a factor of 4.
        cls.model = small_classifier(
            image_shape=(None, None, 3), initial_block_size=2
        )
        cls.export = export_lib.export_for_serving(cls.model, cls.output_dir)
        cls.forward = tf.saved_model.load(cls.export.forward_dir).signatures[
            "serving_default"
        ]
        cls.inverse = tf.saved_model.load(cls.export.inverse_dir).signatures[
            "serving_default"
        ]
        cls.served_forward = ModelServerLikeRunner(
            cls.export.forward_dir, "images", "logits"
        )

    @classmethod
    def tearDownClass(cls):
        cls.served_forward.close()
        shutil.rmtree(cls.output_dir)
        super().tearDownClass()

    def test_signatures_leave_height_and_width_open(self):
        self.assertEqual(
            self.forward.structured_input_signature[1][
                "images"
            ].shape.as_list(),
            [None, None, None, 3],
        )
        self.assertEqual(
            self.inverse.structured_input_signature[1][
                "features"
            ].shape.as_list(),
            [None, None, None, 64],
        )
        self.assertEqual(
            self.served_forward(np.zeros((1, 12, 8, 3), "float32")).shape,
            (1, 10),
        )

    @parameterized.named_parameters(("8x8", 8, 8), ("12x20", 12, 20))
    def test_sizes_round_trip(self, height, width):
        images = np.random.rand(2, height, width, 3).astype("float32")
        outputs = self.forward(images=tf.constant(images))
        self.assertAllClose(outputs["logits"], self.model(images), atol=1e-5)
        self.assertEqual(
            outputs["features"].shape, (2, height // 4, width // 4, 64)
        )
        restored = self.inverse(features=outputs["features"])["images"]
        self.assertLessEqual(relative_error(restored, images), 1e-5)

    @parameterized.named_parameters(
        (f"{case}_{runner}", shape, received, runner)
        for case, shape, received in (
            ("height", (2, 10, 8, 3), "2 10 8 3"),
            ("width", (2, 8, 6, 3), "2 8 6 3"),
            ("zero_height", (2, 0, 8, 3), "2 0 8 3"),
            ("channels", (2, 8, 8, 4), "2 8 8 4"),
            ("rank3", (8, 8, 3), "8 8 3"),
        )
        for runner in RUNNERS
    )
    def test_bad_images(self, shape, received, runner):
        message = (
            r"irevnet_forward: `images` must be a float32 tensor of shape "
            r"\[batch, height, width, 3\] with height and width positive "
            r"multiples of 4\. Received shape:\] \[{}\]"
        )
        images = np.zeros(shape, "float32")
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError, message.format(received)
        ):
            if runner == "load":
                self.forward(images=tf.constant(images))
            else:
                self.served_forward(images)

    def test_empty_batch_of_a_size(self):
        outputs = self.forward(images=tf.zeros((0, 12, 20, 3)))
        self.assertEqual(tuple(outputs["features"].shape), (0, 3, 5, 64))
        self.assertEqual(tuple(outputs["logits"].shape), (0, 10))
        restored = self.inverse(features=outputs["features"])["images"]
        self.assertEqual(tuple(restored.shape), (0, 12, 20, 3))

    def test_bad_features(self):
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError,
            r"`features` must be a float32 tensor of shape \[batch, height, "
            r"width, 64\] with positive height and width\. Received shape:\] "
            r"\[2 0 3 64\]",
        ):
            self.inverse(features=tf.zeros((2, 0, 3, 64)))


class FunctionsTest(TestCase):
    def test_float64_model_serves_float32(self):
        model = small_classifier(dtype="float64")
        images = np.random.rand(3, 16, 16, 3).astype("float32")
        forward = tf.function(
            export_lib.forward_function(model),
            input_signature=[export_lib.image_spec(model)],
        )
        inverse = tf.function(
            export_lib.inverse_function(model),
            input_signature=[export_lib.feature_spec(model)],
        )
        outputs = forward(images)
        for name, tensor in outputs.items():
            self.assertEqual(tensor.dtype, tf.float32, name)
        restored = inverse(outputs["features"])["images"]
        self.assertEqual(restored.dtype, tf.float32)
        self.assertLessEqual(relative_error(restored, images), 1e-5)


class LoadClassifierTest(TestCase):
    """The export's model loading (`irevnet_tf.models.loading`)."""

    @parameterized.named_parameters(
        ("keras_file", "model.keras"), ("model_dir", "")
    )
    def test_keras_file_and_model_dir(self, source):
        model = small_classifier()
        model_dir = self.get_temp_dir()
        model.save(os.path.join(model_dir, "model.keras"))
        images = np.random.rand(2, 16, 16, 3).astype("float32")
        loaded = loading.load_classifier(os.path.join(model_dir, source))
        self.assertAllEqual(loaded(images), model(images))

    @parameterized.named_parameters(("normalized", True), ("pixels", False))
    def test_run_that_normalised_outside_the_model(self, normalized):
        # A run of irevnet-tf 0.1 recorded `normalized: true` for a model
        # that expects standardised images; every program now sends pixels.
        model = small_classifier()
        self.assertIsNone(model.backbone.standardization)
        run = run_directory.RunDirectory(self.get_temp_dir())
        model.save(run.model_path)
        record = run_directory.RunRecord(
            config={},
            recipe={},
            dataset=run_directory.DatasetRecord(
                name="folder:x",
                num_classes=10,
                class_names=None,
                image_shape=[16, 16, 3],
                train_examples=10,
                eval_split="test",
                normalized=normalized,
                mean=[0.5, 0.5, 0.5],
                std=[0.25, 0.25, 0.25],
            ),
            steps_per_epoch=1,
            total_steps=1,
            replicas=1,
        )
        files.write_json(run.config_path, record.to_json())
        for path in (run.path, run.model_path):
            if normalized:
                with self.assertRaisesRegex(
                    ValueError,
                    r"normalised its images outside the model.*"
                    r"mean=\[0.5, 0.5, 0.5\] and std=\[0.25, 0.25, 0.25\]",
                ):
                    loading.load_classifier(path)
            else:
                loading.load_classifier(path)

    @parameterized.named_parameters(
        ("missing_dir", "missing_dir", "No such file or directory"),
        ("missing_file", "missing.keras", "No such file or directory"),
        ("not_keras", "model.txt", "Expected a .keras file"),
        ("garbage", "garbage.keras", "Could not load the model"),
        ("empty_dir", "", "The directory holds no model.keras"),
        (
            "backbone",
            "backbone.keras",
            "must be an IRevNetClassifier.*holding a IRevNet",
        ),
    )
    def test_bad_paths(self, name, message):
        empty_dir = self.get_temp_dir()
        backbone_path = os.path.join(empty_dir, "backbone.keras")
        IRevNet([1], [8], [1], image_shape=(8, 8, 3)).save(backbone_path)
        with open(os.path.join(empty_dir, "model.txt"), "w") as file:
            file.write("not a model")
        with open(os.path.join(empty_dir, "garbage.keras"), "w") as file:
            file.write("not a zip file")
        with self.assertRaisesRegex(ValueError, f"{message}.*"):
            loading.load_classifier(os.path.join(empty_dir, name))
