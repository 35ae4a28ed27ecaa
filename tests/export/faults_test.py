"""The export under faults and bad input, in real processes.

Kills are real SIGKILLs at chosen moments, read-only directories are really
read-only, and every program runs with oneDNN on and off
(`TF_ENABLE_ONEDNN_OPTS`), without `TF_CPP_MIN_LOG_LEVEL`, as users run it.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import tensorflow as tf
from absl.testing import parameterized

from export import export_lib
from irevnet_tf.models import loading
from irevnet_tf.testing import processes
from irevnet_tf.testing.read_only import read_only_directory
from irevnet_tf.testing.small_classifier import small_classifier
from irevnet_tf.testing.test_case import TestCase
from irevnet_tf.testing.test_case import relative_error

REPO_ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)
NAMES = ("irevnet_forward", "irevnet_inverse")
ONEDNN = ("1", "0")

# Pauses the export when it is about to write the inverse SavedModel: the
# forward one is written.
BEFORE_INVERSE = """
from export import export_lib

def _paused(*args, **kwargs):
    pause()

export_lib.export_inverse = _paused
"""

# Pauses the export right after it renames a version directory into place:
# one of the pair is published, the other not yet.
AFTER_FIRST_RENAME = """
import os

def _pausing(rename):
    def renamed(source, target, *args, **kwargs):
        rename(source, target, *args, **kwargs)
        if os.path.basename(os.path.normpath(target)).isdigit():
            pause()
    return renamed

os.replace = _pausing(os.replace)
os.rename = _pausing(os.rename)
"""

# Runs both SavedModels with TensorFlow alone on edge-case inputs.
EDGE_CASES = """
import json
import sys

import numpy as np
import tensorflow as tf

forward_dir, inverse_dir = sys.argv[1:]
forward = tf.saved_model.load(forward_dir).signatures["serving_default"]
inverse = tf.saved_model.load(inverse_dir).signatures["serving_default"]


def outcome(call):
    try:
        return {k: list(v.shape) for k, v in call().items()}
    except tf.errors.InvalidArgumentError as error:
        # The line of the graph's own message, after TensorFlow's context.
        lines = error.message.splitlines()
        return next((line for line in lines if "irevnet_" in line), lines[0])


report = {
    "forward_empty": outcome(lambda: forward(images=tf.zeros((0, 16, 16, 3)))),
    "inverse_empty": outcome(lambda: inverse(features=tf.zeros((0, 8, 8, 64)))),
}
for name, value in (("nan", np.nan), ("inf", np.inf)):
    images = np.full((2, 16, 16, 3), 0.5, "float32")
    images[1, 2, 3, 0] = value
    report[f"forward_{name}"] = outcome(lambda: forward(images=images))
print(json.dumps(report))
"""


def export_program(args, onednn=None, timeout=600):
    """Runs `python -m export.export ARGS` as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "export.export", *args],
        cwd=tempfile.gettempdir(),
        env=processes.user_environment(REPO_ROOT, onednn),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def hidden_entries(directory):
    """Every entry under `directory` whose name starts with a dot."""
    return [
        os.path.join(root, name)
        for root, dirs, files in os.walk(directory)
        for name in dirs + files
        if name.startswith(".")
    ]


def snapshot(path):
    """A directory's tree, a file's text, or None if `path` is missing."""
    if os.path.isdir(path):
        return listing(path)
    if os.path.isfile(path):
        with open(path) as file:
            return file.read()
    return None


def listing(directory):
    """The tree under `directory`, as sorted relative paths."""
    return sorted(
        os.path.relpath(os.path.join(root, name), directory)
        for root, dirs, files in os.walk(directory)
        for name in dirs + files
    )


@pytest.mark.large
class ExportFaultsTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp()
        cls.models = {}
        for name, seed in (("a", 0), ("b", 1)):
            path = os.path.join(cls.tmp, f"model_{name}.keras")
            small_classifier(seed=seed).save(path)
            cls.models[name] = path
        cls.images = np.random.default_rng(0).random((3, 16, 16, 3), "float32")
        # Version 1 holds model a: what the model server serves already.
        cls.served = os.path.join(cls.tmp, "served")
        export_lib.export_for_serving(
            loading.load_classifier(cls.models["a"]), cls.served
        )

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)
        super().tearDownClass()

    def output_dir_with_model_a(self):
        output_dir = os.path.join(self.get_temp_dir(), "serving")
        shutil.copytree(self.served, output_dir)
        return output_dir

    def versions(self, output_dir):
        return {
            name: sorted(
                int(v)
                for v in os.listdir(os.path.join(output_dir, name))
                if v.isdigit()
            )
            for name in NAMES
        }

    def assert_pair_of(self, output_dir, version, model):
        """Version `version` of both models is a pair that holds `model`."""
        forward, inverse = (
            tf.saved_model.load(
                os.path.join(output_dir, name, str(version))
            ).signatures["serving_default"]
            for name in NAMES
        )
        outputs = forward(images=tf.constant(self.images))
        expected = loading.load_classifier(self.models[model])
        self.assertAllClose(outputs["logits"], expected(self.images), atol=1e-5)
        restored = inverse(features=outputs["features"])["images"]
        # Measured about 6e-8; a forward and an inverse of different
        # models miss by about 0.5.
        self.assertLessEqual(relative_error(restored, self.images), 1e-5)

    def test_kill_before_the_inverse_publishes_nothing(self):
        output_dir = self.output_dir_with_model_a()
        processes.kill_when_paused(
            "export.export",
            ["--model", self.models["b"], "--output_dir", output_dir],
            BEFORE_INVERSE,
            cwd=self.tmp,
            env=processes.user_environment(REPO_ROOT),
        )
        # The model server still serves model a's pair: the forward of b
        # was staged, never published beside a's inverse.
        self.assertEqual(self.versions(output_dir), {n: [1] for n in NAMES})
        self.assert_pair_of(output_dir, 1, "a")

        rerun = export_program(
            ["--model", self.models["b"], "--output_dir", output_dir]
        )
        self.assertEqual(rerun.returncode, 0, rerun.stderr[-3000:])
        self.assertEqual(self.versions(output_dir), {n: [1, 2] for n in NAMES})
        self.assert_pair_of(output_dir, 2, "b")
        # The killed export's staging directories are gone.
        self.assertEqual(hidden_entries(output_dir), [])

    def test_kill_between_the_renames_then_rerun_completes_the_pair(self):
        output_dir = self.output_dir_with_model_a()
        processes.kill_when_paused(
            "export.export",
            ["--model", self.models["b"], "--output_dir", output_dir],
            AFTER_FIRST_RENAME,
            cwd=self.tmp,
            env=processes.user_environment(REPO_ROOT),
        )
        found = self.versions(output_dir)
        common = set(found[NAMES[0]]) & set(found[NAMES[1]])
        # One of b's pair is published, the other not: the highest version
        # both models have is still a's pair.
        self.assertEqual(max(common), 1)
        self.assert_pair_of(output_dir, 1, "a")
        self.assertEqual(sorted(len(v) for v in found.values()), [1, 2])

        rerun = export_program(
            ["--model", self.models["b"], "--output_dir", output_dir]
        )
        self.assertEqual(rerun.returncode, 0, rerun.stderr[-3000:])
        self.assertEqual(self.versions(output_dir), {n: [1, 2] for n in NAMES})
        self.assert_pair_of(output_dir, 2, "b")
        self.assertEqual(hidden_entries(output_dir), [])

        # Once more: the model is there, nothing is added or rewritten.
        before = listing(output_dir)
        again = export_program(
            ["--model", self.models["b"], "--output_dir", output_dir]
        )
        self.assertEqual(again.returncode, 0, again.stderr[-3000:])
        self.assertIn("Version 2 holds this model already", again.stdout)
        self.assertEqual(listing(output_dir), before)

    @parameterized.named_parameters(
        (f"onednn_{onednn}", onednn) for onednn in ONEDNN
    )
    def test_edge_cases_alike_with_onednn_on_and_off(self, onednn):
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                EDGE_CASES,
                *(os.path.join(self.served, name, "1") for name in NAMES),
            ],
            cwd=self.tmp,
            env=processes.user_environment(onednn=onednn),
            capture_output=True,
            text=True,
            timeout=600,
        )
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        report = json.loads(result.stdout.splitlines()[-1])
        finite = (
            "irevnet_forward: `images` must be finite, but hold NaN or Inf : "
            "Tensor had {} values"
        )
        self.assertEqual(
            report,
            {
                "forward_empty": {
                    "logits": [0, 10],
                    "probabilities": [0, 10],
                    "features": [0, 8, 8, 64],
                },
                "inverse_empty": {"images": [0, 16, 16, 3]},
                "forward_nan": finite.format("NaN"),
                "forward_inf": finite.format("Inf"),
            },
        )


@pytest.mark.large
class ExportUsageErrorsTest(TestCase):
    """One line on stderr, exit status 2, nothing written."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp()
        cls.model = os.path.join(cls.tmp, "model.keras")
        small_classifier().save(cls.model)
        cls.other_model = os.path.join(cls.tmp, "other.keras")
        small_classifier(seed=1).save(cls.other_model)
        cls.a_file = os.path.join(cls.tmp, "a_file")
        with open(cls.a_file, "w") as file:
            file.write("not a directory")
        cls.served = os.path.join(cls.tmp, "served")
        export_lib.export_for_serving(
            loading.load_classifier(cls.model), cls.served
        )

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)
        super().tearDownClass()

    @parameterized.named_parameters(
        (f"{case}_onednn_{onednn}", case, onednn)
        for case in (
            "unknown_flag",
            "no_model_flag",
            "missing_model",
            "output_dir_is_a_file",
            "output_dir_under_a_file",
            "read_only_output_dir",
            "version_of_another_model",
        )
        for onednn in ONEDNN
    )
    def test_one_line_and_status_2(self, case, onednn):
        new_dir = os.path.join(self.get_temp_dir(), "serving")
        locked = os.path.join(self.get_temp_dir(), "locked")
        args, expected, untouched = {
            "unknown_flag": (
                ["--no_such_flag"],
                r"Unknown command line flag 'no_such_flag'",
                new_dir,
            ),
            "no_model_flag": (
                ["--output_dir", new_dir],
                r"--model is required",
                new_dir,
            ),
            "missing_model": (
                ["--model", self.model + ".missing", "--output_dir", new_dir],
                r"No such file or directory.*Received: model=.*missing$",
                new_dir,
            ),
            "output_dir_is_a_file": (
                ["--model", self.model, "--output_dir", self.a_file],
                r"`--output_dir` must be a directory, but .*a_file is a file",
                self.a_file,
            ),
            "output_dir_under_a_file": (
                ["--model", self.model, "--output_dir", self.a_file + "/x"],
                r"`--output_dir` must be a directory.*lies under the file",
                self.a_file,
            ),
            "read_only_output_dir": (
                ["--model", self.model, "--output_dir", locked + "/serving"],
                r"Cannot write to .*locked .*Received: --output_dir=",
                locked,
            ),
            "version_of_another_model": (
                ["--model", self.other_model, "--output_dir", self.served]
                + ["--version", "1"],
                r"Version already exists and holds another model.*version=1",
                self.served,
            ),
        }[case]
        os.makedirs(locked)
        before = snapshot(untouched)
        with read_only_directory(locked):
            result = export_program(args, onednn)
        self.assertEqual(result.returncode, 2, result.stderr[-3000:])
        lines = result.stderr.splitlines()
        self.assertLen(lines, 1, result.stderr)
        self.assertRegex(lines[0], r"^export: error: " + expected)
        # Nothing written.
        self.assertEqual(snapshot(untouched), before)
        self.assertEqual(os.listdir(locked), [])
