"""`python -m irevnet_tf.analysis`: real processes, and `run` in process.

Real processes, without TF_CPP_MIN_LOG_LEVEL (users do not set it): a
training run's directory analysed end to end, and bad input with oneDNN on
and off, including an `--output_dir` that is a file or that the process
cannot write to. One process per test, so that pytest-xdist spreads them
over its workers. The other command lines call `run` in this process, which
spares a TensorFlow start-up each.
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
import textwrap
from unittest import mock

from absl import flags
from absl.testing import flagsaver
from absl.testing import parameterized

from irevnet_tf.analysis import __main__ as program
from irevnet_tf.run_directory import RunDirectory
from irevnet_tf.testing import digits_models
from irevnet_tf.testing.digit_files import prepared_digits_dir
from irevnet_tf.testing.test_case import TestCase

REPO_ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)
ERROR_PREFIX = "python -m irevnet_tf.analysis: error: "
# TensorFlow logs an INFO line whenever a TFRecordDataset is created (with
# or without a buffer size: tf_record_dataset_op.cc), so once per split that
# TensorFlow Datasets reads; nothing the program can pass avoids it.
TENSORFLOW_INFO = re.compile(r"^I\d{4} .*tf_record_dataset_op\.cc")
# Runs the program as the user "nobody" (root writes anywhere), after the
# imports, which may write Python's caches.
UNPRIVILEGED = textwrap.dedent(
    """
    import os
    import sys

    from irevnet_tf.analysis import __main__ as program

    if os.geteuid() == 0:
        os.setuid(65534)
    sys.argv = [program.PROGRAM, *sys.argv[1:]]
    program.run()
    """
)
# TF_ENABLE_ONEDNN_OPTS: TensorFlow prints more where oneDNN is on.
ONEDNN = (("onednn_off", "0"), ("onednn_on", "1"))
PACKAGE = "irevnet_tf.analysis"


def assert_one_error_line(test, result, pattern):
    """One line on stderr, `PROGRAM: error: ...`, exit status 2."""
    code, stdout, stderr = result
    test.assertEqual(code, 2, stderr[-3000:])
    test.assertNotIn("Traceback", stderr)
    lines = stderr.splitlines()
    test.assertLen(lines, 1, stderr)
    test.assertStartsWith(lines[0], ERROR_PREFIX)
    test.assertRegex(lines[0], pattern)
    test.assertEqual(stdout, "")


def run_in_process(arguments):
    """`(exit status, stdout, stderr)` of `run()` on `arguments`."""
    stdout, stderr = io.StringIO(), io.StringIO()
    code = 0
    with (
        flagsaver.flagsaver(),
        mock.patch.object(sys, "argv", [program.PROGRAM, *arguments]),
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
    ):
        try:
            program.run()
        except SystemExit as exit:
            code = exit.code or 0
    return code, stdout.getvalue(), stderr.getvalue()


class RealProcessTest(TestCase):
    """Each test runs the program in its own process."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp()
        cls.addClassCleanup(shutil.rmtree, cls.tmp, ignore_errors=True)
        # Searchable, not writable, by the unprivileged process.
        os.chmod(cls.tmp, 0o755)
        cls.run_dir = digits_models.run_directory()
        cls.unused_dir = os.path.join(cls.tmp, "unused")

    def run_program(self, arguments, onednn=None, unprivileged=False):
        """`(exit status, stdout, stderr)` of the program in a new process."""
        env = dict(os.environ, PYTHONPATH=REPO_ROOT)
        env.pop("TF_CPP_MIN_LOG_LEVEL", None)
        if onednn is not None:
            env["TF_ENABLE_ONEDNN_OPTS"] = onednn
        command = ["-c", UNPRIVILEGED] if unprivileged else ["-m", PACKAGE]
        result = subprocess.run(
            [sys.executable, *command, *arguments],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        return result.returncode, result.stdout, result.stderr

    def test_reconstruction_of_a_training_run(self):
        output_dir = os.path.join(self.tmp, "reconstruction")
        # The dataset comes from config.json; the model standardises the
        # pixels itself.
        code, stdout, stderr = self.run_program(
            [
                "reconstruction",
                "--model",
                self.run_dir,
                "--num_noise",
                "50",
                "--output_dir",
                output_dir,
                "--data_dir",
                prepared_digits_dir(),
            ]
        )
        self.assertEqual(code, 0, stderr[-3000:])
        with open(os.path.join(output_dir, "reconstruction.json")) as f:
            record = json.load(f)
        self.assertTrue(
            os.path.isfile(os.path.join(output_dir, "reconstruction.png"))
        )
        self.assertEqual(record["data"]["dataset"], "digits")
        self.assertEqual(record["data"]["pixel_range"], [0.0, 1.0])
        self.assertEqual(record["data"]["examples"], 360)
        self.assertLess(record["data"]["errors"]["mean"], 1e-5)
        self.assertLess(record["noise"]["errors"]["mean"], 1e-5)
        self.assertEqual(record["noise"]["errors"]["examples"], 50)
        self.assertEqual(
            record["model"]["name"], os.path.basename(self.run_dir)
        )
        self.assertIn("Mean relative reconstruction error", stdout)
        # No warnings: only TensorFlow's unavoidable INFO line.
        self.assertEqual(
            [
                line
                for line in stderr.splitlines()
                if not TENSORFLOW_INFO.search(line)
            ],
            [],
        )

    @parameterized.named_parameters(*ONEDNN)
    def test_missing_model(self, onednn):
        result = self.run_program(
            [
                "pca",
                "--model",
                os.path.join(self.tmp, "none.keras"),
                "--dataset",
                "digits",
                "--output_dir",
                self.unused_dir,
            ],
            onednn,
        )
        assert_one_error_line(
            self,
            result,
            r"No such file or directory.*Received: model=.*none\.keras$",
        )
        self.assertFalse(os.path.exists(self.unused_dir))

    @parameterized.named_parameters(*ONEDNN)
    def test_error_once_the_model_is_loaded(self, onednn):
        # Found once the model is loaded: TensorFlow is running.
        result = self.run_program(
            [
                "separability",
                "--model",
                self.run_dir,
                "--depths",
                "2,7",
                "--output_dir",
                self.unused_dir,
                "--data_dir",
                prepared_digits_dir(),
            ],
            onednn,
        )
        assert_one_error_line(
            self, result, r"from 1 to 6.*Received: depths=\[2, 7\]$"
        )
        self.assertFalse(os.path.exists(self.unused_dir))

    @parameterized.product(
        onednn=("1", "0"),
        case=(
            (
                ["interpolation", "--pairs", "0:360"],
                r"digits test has 360 images; indices go from 0 to 359\. "
                r"Received: pairs=\[\(0, 360\)\]$",
            ),
            (
                ["spectrum", "--first_index", "359", "--num_images", "2"],
                r"digits test has 360 images\. Received: first_index=359, "
                r"num_images=2$",
            ),
        ),
    )
    def test_error_found_from_the_split_size(self, onednn, case):
        # Found from the dataset's metadata, before TensorFlow reads a file
        # (reading logs a line of TensorFlow's on stderr).
        arguments, pattern = case
        result = self.run_program(
            arguments
            + [
                "--model",
                self.run_dir,
                "--output_dir",
                self.unused_dir,
                "--data_dir",
                prepared_digits_dir(),
            ],
            onednn,
        )
        assert_one_error_line(self, result, pattern)
        self.assertFalse(os.path.exists(self.unused_dir))

    @parameterized.named_parameters(*ONEDNN)
    def test_output_dir_that_is_a_file(self, onednn):
        a_file = os.path.join(self.tmp, f"a_file_{onednn}")
        with open(a_file, "w") as file:
            file.write("not a directory")
        result = self.run_program(
            ["reconstruction", "--model", self.run_dir, "--output_dir", a_file],
            onednn,
        )
        assert_one_error_line(
            self,
            result,
            r"`output_dir` must be a directory, but .*a_file_\d is a file\. "
            r"Received: output_dir=",
        )

    @parameterized.named_parameters(*ONEDNN)
    def test_output_dir_not_writable(self, onednn):
        read_only = os.path.join(self.tmp, f"read_only_{onednn}")
        os.mkdir(read_only, 0o555)
        result = self.run_program(
            [
                "reconstruction",
                "--model",
                self.run_dir,
                "--output_dir",
                os.path.join(read_only, "figures"),
            ],
            onednn,
            unprivileged=True,
        )
        assert_one_error_line(
            self,
            result,
            r"Cannot write to .*read_only_\d \(Permission denied\).*"
            r"Received: output_dir=.*read_only_\d/figures",
        )
        self.assertEqual(os.listdir(read_only), [])


class InProcessTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp()
        cls.addClassCleanup(shutil.rmtree, cls.tmp, ignore_errors=True)
        cls.data = ["--data_dir", prepared_digits_dir()]
        cls.run_dir = digits_models.run_directory()
        cls.unused_dir = os.path.join(cls.tmp, "unused")

    def test_matrix_free_spectrum(self):
        output_dir = os.path.join(self.tmp, "spectrum")
        model = RunDirectory(self.run_dir).model_path
        code, stdout, stderr = run_in_process(
            [
                "spectrum",
                "--model",
                model,
                "--dataset",
                "digits",
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
        self.assertEqual(record["data"]["pixel_range"], [0.0, 1.0])
        (image,) = record["images"]
        self.assertEqual(image["method"], "randomized")
        self.assertEqual(image["image"], "digits test #3 (class 3)")
        self.assertLen(image["singular_values"], 5)
        self.assertEqual(image["normalized"][0], 1.0)
        self.assertIn("5 singular values (randomized)", stdout)
        self.assertTrue(
            os.path.isfile(os.path.join(output_dir, "spectrum.png"))
        )
        # The subcommand's flags were defined for that run only.
        self.assertNotIn("top_k", flags.FLAGS)
        self.assertNotIn("model", flags.FLAGS)

    def test_deprecated_name_of_interpolation(self):
        output_dir = os.path.join(self.tmp, "interpolation")
        code, stdout, stderr = run_in_process(
            [
                "interpolate",
                "--model",
                self.run_dir,
                "--pairs",
                "0:1",
                "--steps",
                "3",
                "--output_dir",
                output_dir,
                *self.data,
            ]
        )
        self.assertEqual(code, 0, stderr)
        self.assertEqual(
            stderr,
            "python -m irevnet_tf.analysis: warning: the subcommand "
            "interpolate is deprecated; use interpolation.\n",
        )
        self.assertIn("interpolation.json", stdout)
        self.assertCountEqual(
            os.listdir(output_dir),
            ["interpolation.json", "interpolation.npz", "interpolation.png"],
        )

    def test_help_lists_the_subcommands_with_their_summaries(self):
        code, stdout, stderr = run_in_process(["--help"])
        self.assertEqual(code, 0, stderr)
        for name, analysis in program.ANALYSES.items():
            summary = analysis.__doc__.splitlines()[0]
            self.assertRegex(stdout, rf"\n  {name} +{re.escape(summary)}\n")
        self.assertIn("--output_dir", stdout)
        self.assertNotIn("--top_k", stdout)

    @parameterized.named_parameters(
        ("reconstruction", "reconstruction", "--num_noise", "--depths"),
        ("interpolation", "interpolation", "--pairs", "--num_noise"),
        ("separability", "separability", "--depths", "--dimensions"),
        ("pca", "pca", "--dimensions", "--depths"),
        ("spectrum", "spectrum", "--top_k", "--svm_c"),
    )
    def test_subcommand_help_lists_its_flags(self, name, own, other):
        code, stdout, stderr = run_in_process([name, "--help"])
        self.assertEqual(code, 0, stderr)
        self.assertIn(f"Flags of {name}:\n", stdout)
        self.assertIn(f"  {own}", stdout)
        self.assertNotIn(other, stdout)
        self.assertIn("--model", stdout)

    @parameterized.named_parameters(
        (
            "garbage_model",
            ["separability", "--model", "{garbage}"],
            r"Could not load the model.*Received: model=.*garbage\.keras$",
        ),
        (
            "unknown_dataset",
            ["interpolation", "--model", "{run_dir}", "--dataset", "mnist"],
            r"Unknown dataset 'mnist'.*Received: dataset='mnist'$",
        ),
        (
            "depth_beyond_model",
            ["separability", "--model", "{run_dir}", "--depths", "2,7"],
            r"from 1 to 6.*Received: depths=\[2, 7\]$",
        ),
        (
            # A bare .keras file: no training record to take it from.
            "no_dataset",
            ["pca", "--model", "{model_file}"],
            r"pca needs images: pass --dataset",
        ),
        (
            "image_size",
            ["reconstruction", "--model", "{run_dir}", "--image_size", "32"],
            r"takes 16x16 images only. Received: image_size=32$",
        ),
        (
            "unreadable_run_record",
            ["reconstruction", "--model", "{bad_record_dir}"],
            r"bad_record/config.json cannot be read: not a run record",
        ),
        (
            "bad_flag",
            ["spectrum", "--model", "{run_dir}", "--top_k", "-3"],
            r"flag --top_k=-3: -3 is not a positive integer",
        ),
        (
            "bad_pairs",
            ["interpolation", "--model", "{run_dir}", "--pairs", "0-5"],
            r"flag --pairs=0-5: expected pairs of image indices",
        ),
        (
            "bad_integer_list",
            ["pca", "--model", "{run_dir}", "--dimensions", "1,x"],
            r"flag --dimensions=1,x: expected comma-separated integers",
        ),
        (
            "zero_svm_c",
            ["separability", "--model", "{run_dir}", "--svm_c", "0"],
            r"flag --svm_c=0.0: expected a positive, finite number",
        ),
        (
            "no_model_flag",
            ["spectrum", "--dataset", "digits"],
            r"flag --model=None: Flag --model must have a value",
        ),
        (
            "flag_of_another_subcommand",
            ["spectrum", "--model", "{run_dir}", "--depths", "1"],
            r"Unknown command line flag 'depths'",
        ),
        (
            "unknown_subcommand",
            ["interpolations", "--model", "{run_dir}"],
            r"must be a SUBCOMMAND: one of reconstruction, interpolation, "
            r"separability, pca, spectrum \(see --help\)\. "
            r"Received: interpolations$",
        ),
        (
            "flag_before_subcommand",
            ["--model", "{run_dir}", "pca"],
            r"must be a SUBCOMMAND: .* Received: --model$",
        ),
    )
    def test_bad_input_is_one_line_and_exit_status_2(self, arguments, pattern):
        model_file = os.path.join(self.tmp, "no_run", "model.keras")
        os.makedirs(os.path.dirname(model_file), exist_ok=True)
        shutil.copy(RunDirectory(self.run_dir).model_path, model_file)
        bad_record_dir = os.path.join(self.tmp, "bad_record")
        os.makedirs(bad_record_dir, exist_ok=True)
        shutil.copy(model_file, bad_record_dir)
        with open(os.path.join(bad_record_dir, "config.json"), "w") as file:
            file.write('{"config": {}}')
        garbage = os.path.join(self.tmp, "garbage.keras")
        with open(garbage, "w") as file:
            file.write("not a zip file")
        paths = dict(
            garbage=garbage,
            run_dir=self.run_dir,
            model_file=model_file,
            bad_record_dir=bad_record_dir,
        )
        arguments = [argument.format(**paths) for argument in arguments]
        result = run_in_process(
            arguments + ["--output_dir", self.unused_dir, *self.data]
        )
        assert_one_error_line(self, result, pattern)
        self.assertFalse(os.path.exists(self.unused_dir))

    def test_missing_subcommand(self):
        assert_one_error_line(
            self,
            run_in_process([]),
            r"Missing SUBCOMMAND: one of reconstruction",
        )
