"""The export program and its SavedModels used as a model server would.

Real processes: `python -m export.export`, a fresh Python that imports only
TensorFlow, and `saved_model_cli`. They start once for the class, the
independent ones side by side.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from absl.testing import parameterized

from irevnet_tf.testing.small_classifier import small_classifier
from irevnet_tf.testing.test_case import TestCase
from irevnet_tf.testing.test_case import relative_error

REPO_ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)

# Runs both SavedModels with TensorFlow alone: no project code on the path.
FRESH_PROCESS = """
import json
import sys

import numpy as np
import tensorflow as tf

forward_dir, inverse_dir, images_path, outputs_path = sys.argv[1:]
images = np.load(images_path)
forward = tf.saved_model.load(forward_dir).signatures["serving_default"]
inverse = tf.saved_model.load(inverse_dir).signatures["serving_default"]
outputs = forward(images=tf.constant(images))
restored = inverse(features=outputs["features"])["images"]
np.savez(
    outputs_path,
    restored=restored.numpy(),
    **{name: tensor.numpy() for name, tensor in outputs.items()},
)
# Keras comes with TensorFlow, but none of this project's classes.
print(json.dumps({
    "modules": sorted(
        name for name in sys.modules
        if name.split(".")[0] in ("irevnet_tf", "export", "tests")
    ),
    "custom_objects": sorted(tf.keras.utils.get_custom_objects()),
}))
"""


def saved_model_cli():
    # Installed with tensorflow, next to the interpreter that runs the tests.
    path = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    return [path] if os.path.exists(path) else [shutil.which("saved_model_cli")]


def environment(project_on_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("PYTHONPATH", None)
    if project_on_path:
        env["PYTHONPATH"] = REPO_ROOT
    return env


def run_side_by_side(commands):
    """Runs `{name: (argv, cwd, env)}` concurrently; their CompletedProcess."""
    processes = {
        name: subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, (argv, cwd, env) in commands.items()
    }
    results = {}
    for name, process in processes.items():
        stdout, stderr = process.communicate(timeout=600)
        results[name] = subprocess.CompletedProcess(
            process.args, process.returncode, stdout, stderr
        )
    return results


@pytest.mark.large
class ExportProgramTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp()
        model = small_classifier()
        # A training --model_dir: the final model in model.keras.
        model_dir = os.path.join(cls.tmp, "train")
        os.makedirs(model_dir)
        model.save(os.path.join(model_dir, "model.keras"))
        cls.images = np.random.default_rng(0).random((3, 16, 16, 3), "float32")
        cls.logits = model(cls.images, training=False).numpy()
        cls.features = model.features(cls.images).numpy()
        images_path = os.path.join(cls.tmp, "images.npy")
        features_path = os.path.join(cls.tmp, "features.npy")
        np.save(images_path, cls.images)
        np.save(features_path, cls.features)

        cls.output_dir = os.path.join(cls.tmp, "serving")
        cls.export = subprocess.run(
            [
                sys.executable,
                "-m",
                "export.export",
                "--model",
                model_dir,
                "--output_dir",
                cls.output_dir,
            ],
            cwd=REPO_ROOT,
            env=environment(project_on_path=True),
            capture_output=True,
            text=True,
            timeout=600,
        )
        cls.forward_dir = os.path.join(cls.output_dir, "irevnet_forward", "1")
        cls.inverse_dir = os.path.join(cls.output_dir, "irevnet_inverse", "1")
        empty_dir = os.path.join(cls.tmp, "empty")
        os.makedirs(empty_dir)
        cli = saved_model_cli()
        plain = environment(project_on_path=False)

        def run_signature(export_dir, argument, outdir):
            return [
                *cli,
                "run",
                "--dir",
                export_dir,
                "--tag_set",
                "serve",
                "--signature_def",
                "serving_default",
                "--inputs",
                argument,
                "--outdir",
                os.path.join(cls.tmp, outdir),
            ]

        cls.results = run_side_by_side(
            {
                "fresh": (
                    [
                        sys.executable,
                        "-c",
                        FRESH_PROCESS,
                        cls.forward_dir,
                        cls.inverse_dir,
                        images_path,
                        os.path.join(cls.tmp, "fresh.npz"),
                    ],
                    cls.tmp,
                    plain,
                ),
                "show_forward": (
                    [*cli, "show", "--all", "--dir", cls.forward_dir],
                    cls.tmp,
                    plain,
                ),
                "show_inverse": (
                    [*cli, "show", "--all", "--dir", cls.inverse_dir],
                    cls.tmp,
                    plain,
                ),
                "run_forward": (
                    run_signature(
                        cls.forward_dir, f"images={images_path}", "run_forward"
                    ),
                    cls.tmp,
                    plain,
                ),
                "run_inverse": (
                    run_signature(
                        cls.inverse_dir,
                        f"features={features_path}",
                        "run_inverse",
                    ),
                    cls.tmp,
                    plain,
                ),
                "no_model_keras": (
                    [
                        sys.executable,
                        "-m",
                        "export.export",
                        "--model",
                        empty_dir,
                        "--output_dir",
                        os.path.join(cls.tmp, "unused"),
                    ],
                    REPO_ROOT,
                    environment(project_on_path=True),
                ),
            }
        )

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)
        super().tearDownClass()

    def assert_succeeded(self, result):
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])

    def test_program_writes_serving_layout(self):
        self.assert_succeeded(self.export)
        self.assertEqual(
            sorted(os.listdir(self.output_dir)),
            ["irevnet_forward", "irevnet_inverse", "models.config"],
        )
        for export_dir in (self.forward_dir, self.inverse_dir):
            self.assertIn(export_dir, self.export.stdout)
            self.assertTrue(
                os.path.isfile(os.path.join(export_dir, "saved_model.pb"))
            )
            self.assertTrue(
                os.path.isdir(os.path.join(export_dir, "variables"))
            )

    def test_fresh_process_with_tensorflow_only(self):
        result = self.results["fresh"]
        self.assert_succeeded(result)
        # Serving imported none of this project's code.
        self.assertEqual(
            json.loads(result.stdout.splitlines()[-1]),
            {"modules": [], "custom_objects": []},
        )
        outputs = np.load(os.path.join(self.tmp, "fresh.npz"))
        self.assertAllClose(outputs["logits"], self.logits, atol=1e-5)
        self.assertAllClose(outputs["features"], self.features, atol=1e-5)
        self.assertAllClose(
            outputs["probabilities"].sum(axis=1), np.ones(3), atol=1e-6
        )
        # Measured about 6e-8.
        self.assertLessEqual(
            relative_error(outputs["restored"], self.images), 1e-5
        )

    @parameterized.named_parameters(
        (
            "forward",
            "show_forward",
            {"images": "(-1, 16, 16, 3)"},
            {
                "logits": "(-1, 10)",
                "probabilities": "(-1, 10)",
                "features": "(-1, 8, 8, 64)",
            },
        ),
        (
            "inverse",
            "show_inverse",
            {"features": "(-1, 8, 8, 64)"},
            {"images": "(-1, 16, 16, 3)"},
        ),
    )
    def test_saved_model_cli_show(self, name, inputs, outputs):
        result = self.results[name]
        self.assert_succeeded(result)
        # The serving_default block, up to the next signature.
        match = re.search(
            r"signature_def\['serving_default'\]:(.*?)"
            r"(?:\nsignature_def\[|\nThe MetaGraph|\Z)",
            result.stdout,
            re.DOTALL,
        )
        self.assertIsNotNone(match, result.stdout)
        block = match.group(1)
        for kind, tensors in (("inputs", inputs), ("outputs", outputs)):
            found = re.findall(
                rf"{kind}\['(\w+)'\] tensor_info:\s+dtype: (\w+)\s+"
                r"shape: (\([-0-9, ]+\))",
                block,
            )
            self.assertEqual(
                {n: (d, s) for n, d, s in found},
                {n: ("DT_FLOAT", s) for n, s in tensors.items()},
            )
        # The method TF Serving's Predict API runs.
        self.assertIn("Method name is: tensorflow/serving/predict", block)

    def test_saved_model_cli_show_image_bytes(self):
        result = self.results["show_forward"]
        self.assert_succeeded(result)
        match = re.search(
            r"signature_def\['image_bytes'\]:(.*?)"
            r"(?:\nsignature_def\[|\nThe MetaGraph|\Z)",
            result.stdout,
            re.DOTALL,
        )
        self.assertIsNotNone(match, result.stdout)
        block = match.group(1)
        found = {
            (kind, n, d, s)
            for kind in ("inputs", "outputs")
            for n, d, s in re.findall(
                rf"{kind}\['(\w+)'\] tensor_info:\s+dtype: (\w+)\s+"
                r"shape: (\([-0-9, ]+\))",
                block,
            )
        }
        self.assertEqual(
            found,
            {
                ("inputs", "image_bytes", "DT_STRING", "(-1)"),
                ("outputs", "logits", "DT_FLOAT", "(-1, 10)"),
                ("outputs", "probabilities", "DT_FLOAT", "(-1, 10)"),
                ("outputs", "features", "DT_FLOAT", "(-1, 8, 8, 64)"),
            },
        )
        self.assertIn("Method name is: tensorflow/serving/predict", block)

    def test_saved_model_cli_run(self):
        self.assert_succeeded(self.results["run_forward"])
        self.assert_succeeded(self.results["run_inverse"])
        run_forward = os.path.join(self.tmp, "run_forward")
        self.assertEqual(
            sorted(os.listdir(run_forward)),
            ["features.npy", "logits.npy", "probabilities.npy"],
        )
        self.assertAllClose(
            np.load(os.path.join(run_forward, "logits.npy")),
            self.logits,
            atol=1e-5,
        )
        self.assertAllClose(
            np.load(os.path.join(run_forward, "features.npy")),
            self.features,
            atol=1e-5,
        )
        restored = np.load(os.path.join(self.tmp, "run_inverse", "images.npy"))
        self.assertLessEqual(relative_error(restored, self.images), 1e-5)

    def test_missing_model_is_one_line_exit_status_2(self):
        result = self.results["no_model_keras"]
        self.assertEqual(result.returncode, 2, result.stderr[-3000:])
        self.assertNotIn("Traceback", result.stderr)
        errors = [
            line
            for line in result.stderr.splitlines()
            if line.startswith("export: error:")
        ]
        self.assertLen(errors, 1)
        self.assertRegex(
            errors[0],
            r"The directory holds no model\.keras.*Received: model=.*empty$",
        )
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "unused")))
