"""`python -m irevnet_tf.analysis`: real processes, and `main` in process.

Two real processes run side by side (a training run's directory analysed
end to end, and bad input); the other command lines call `main` in this
process, which spares a TensorFlow start-up each.
"""

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

from irevnet_tf.analysis import __main__ as program
from irevnet_tf.testing.test_case import TestCase
from tests.analysis import common
from tests.datasets.digit_files import prepared_digits_dir

REPO_ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)
ERROR_PREFIX = "python -m irevnet_tf.analysis: error: "
# What TensorFlow prints while it is imported, before its log level
# applies (importing `irevnet_tf` imports TensorFlow).
STARTUP_NOISE = re.compile(
    r"All log messages before absl::InitializeLog|cudart_stub|cuda_|"
    r"cpu_feature_guard|To enable the following instructions"
)


def start(arguments):
    return subprocess.Popen(
        [sys.executable, "-m", "irevnet_tf.analysis", *arguments],
        cwd=REPO_ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO_ROOT),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_in_process(arguments):
    """`(exit status, stdout, stderr)` of `main(arguments)`."""
    stdout, stderr = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            program.main(arguments)
        except SystemExit as exit:
            code = exit.code
    return code, stdout.getvalue(), stderr.getvalue()


class CommandLineTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp()
        cls.data = ["--data_dir", prepared_digits_dir()]
        cls.output_dir = os.path.join(cls.tmp, "reconstruction")
        cls.unused_dir = os.path.join(cls.tmp, "unused")
        # Started first: it needs no trained model.
        processes = {
            "missing_model": start(
                [
                    "pca",
                    "--model",
                    os.path.join(cls.tmp, "none.keras"),
                    "--dataset",
                    "digits",
                    "--output_dir",
                    cls.unused_dir,
                ]
            )
        }
        # The dataset and its normalisation come from config.json.
        processes["reconstruction"] = start(
            [
                "reconstruction",
                "--model",
                common.model_dir(),
                "--num_noise",
                "50",
                "--output_dir",
                cls.output_dir,
                *cls.data,
            ]
        )
        # The later tests' trained model, trained while the processes run.
        common.trained_classifier()
        cls.results = {}
        for name, process in processes.items():
            stdout, stderr = process.communicate(timeout=600)
            cls.results[name] = (process.returncode, stdout, stderr)

    def assert_one_error_line(self, result, pattern):
        code, stdout, stderr = result
        self.assertEqual(code, 2, stderr[-3000:])
        self.assertNotIn("Traceback", stderr)
        lines = [
            line
            for line in stderr.splitlines()
            if line.strip() and not STARTUP_NOISE.search(line)
        ]
        self.assertLen(lines, 1, stderr)
        self.assertStartsWith(lines[0], ERROR_PREFIX)
        self.assertRegex(lines[0], pattern)
        self.assertEqual(stdout, "")

    def test_reconstruction_of_a_training_run(self):
        code, stdout, stderr = self.results["reconstruction"]
        self.assertEqual(code, 0, stderr[-3000:])
        with open(os.path.join(self.output_dir, "reconstruction.json")) as f:
            record = json.load(f)
        self.assertTrue(
            os.path.isfile(os.path.join(self.output_dir, "reconstruction.png"))
        )
        self.assertEqual(record["data"]["dataset"], "digits")
        self.assertTrue(record["data"]["normalized"])
        self.assertEqual(record["data"]["examples"], 360)
        self.assertLess(record["data"]["errors"]["mean"], 1e-5)
        self.assertLess(record["noise"]["errors"]["mean"], 1e-5)
        self.assertEqual(record["noise"]["errors"]["examples"], 50)
        self.assertEqual(
            record["model"]["name"], os.path.basename(common.model_dir())
        )
        self.assertIn("Mean relative reconstruction error", stdout)

    def test_missing_model_in_a_real_process(self):
        self.assert_one_error_line(
            self.results["missing_model"],
            r"No such file or directory.*Received: model=.*none\.keras$",
        )
        self.assertFalse(os.path.exists(self.unused_dir))

    def test_matrix_free_spectrum(self):
        output_dir = os.path.join(self.tmp, "spectrum")
        model = os.path.join(common.model_dir(), "model.keras")
        code, stdout, stderr = run_in_process(
            [
                "spectrum",
                "--model",
                model,
                "--dataset",
                "digits",
                "--nonormalize",
                "--method",
                "randomized",
                "--top_k",
                "5",
                "--first_index",
                "3",
                "--output_dir",
                output_dir,
                *self.data,
            ]
        )
        self.assertEqual(code, 0, stderr)
        with open(os.path.join(output_dir, "spectrum.json")) as file:
            record = json.load(file)
        self.assertFalse(record["data"]["normalized"])
        (image,) = record["images"]
        self.assertEqual(image["method"], "randomized")
        self.assertEqual(image["image"], "digits test #3 (class 3)")
        self.assertLen(image["singular_values"], 5)
        self.assertEqual(image["normalized"][0], 1.0)
        self.assertIn("5 singular values (randomized)", stdout)
        self.assertTrue(
            os.path.isfile(os.path.join(output_dir, "spectrum.png"))
        )

    def test_bad_input_is_one_line_and_exit_status_2(self):
        garbage = os.path.join(self.tmp, "garbage.keras")
        with open(garbage, "w") as file:
            file.write("not a zip file")
        model_file = os.path.join(self.tmp, "no_run", "model.keras")
        os.makedirs(os.path.dirname(model_file), exist_ok=True)
        shutil.copy(os.path.join(common.model_dir(), "model.keras"), model_file)
        model_dir = common.model_dir()
        bad_record_dir = os.path.join(self.tmp, "bad_record")
        os.makedirs(bad_record_dir, exist_ok=True)
        shutil.copy(model_file, bad_record_dir)
        with open(os.path.join(bad_record_dir, "config.json"), "w") as file:
            file.write('{"config": {}}')
        cases = {
            "unreadable_run_record": (
                ["reconstruction", "--model", bad_record_dir],
                r"bad_record/config.json cannot be read: not a run record",
            ),
            "garbage_model": (
                ["separability", "--model", garbage],
                r"Could not load the model.*Received: model=.*garbage\.keras$",
            ),
            "unknown_dataset": (
                ["interpolation", "--model", model_dir, "--dataset", "mnist"],
                r"Unknown dataset 'mnist'.*Received: dataset='mnist'$",
            ),
            "depth_beyond_model": (
                ["separability", "--model", model_dir, "--depths", "2,7"],
                r"from 1 to 6.*Received: depths=\[2, 7\]$",
            ),
            "no_dataset": (
                # A bare .keras file: no training record to take it from.
                ["pca", "--model", model_file],
                r"pca needs images: pass --dataset",
            ),
            "image_size": (
                ["reconstruction", "--model", model_dir, "--image_size", "32"],
                r"takes 16x16 images only. Received: image_size=32$",
            ),
            "bad_flag": (
                ["spectrum", "--model", model_dir, "--top_k", "-3"],
                r"argument --top_k: expected a positive integer: -3",
            ),
            "no_model_flag": (
                ["spectrum", "--dataset", "digits"],
                r"required: --model",
            ),
        }
        for name, (arguments, pattern) in cases.items():
            with self.subTest(name=name):
                result = run_in_process(
                    arguments + ["--output_dir", self.unused_dir, *self.data]
                )
                self.assert_one_error_line(result, pattern)
        self.assertFalse(os.path.exists(self.unused_dir))
