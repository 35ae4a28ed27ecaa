"""Converted checkpoints of the authors' PyTorch i-RevNet match its outputs.

The golden outputs in tests/testdata/reference/ come from running the
authors' code (see the README there); the tests convert the same weights and
compare logits, features and reconstructions with them.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import textwrap
from unittest import mock

import numpy as np
import pytest
import torch
from absl.testing import parameterized

from irevnet_tf import PRESETS
from irevnet_tf import IRevNet
from irevnet_tf import IRevNetClassifier
from irevnet_tf import convert
from irevnet_tf.datasets.loading import TFDS_DATASETS
from irevnet_tf.testing import processes
from irevnet_tf.testing.read_only import read_only_directory
from irevnet_tf.testing.small_classifier import small_classifier
from irevnet_tf.testing.test_case import TestCase
from irevnet_tf.testing.test_case import relative_error

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE_DIR = os.path.join(REPO_ROOT, "tests", "testdata", "reference")
NAMES = ("cifar_small", "imagenet_small_bijective")

# The issue's bound; the authors' float32 outputs agree to about 4e-7.
RTOL = 1e-5


def reference_path(filename):
    return os.path.join(REFERENCE_DIR, filename)


def golden(name):
    with np.load(reference_path(f"{name}.npz")) as arrays:
        return {k: arrays[k] for k in ("x", "logits", "out_bij", "x_rec")}


def reference_json(name):
    with open(reference_path(f"{name}.json")) as f:
        return json.load(f)


def state_dict_arrays(name):
    """The npz state dict as a plain mapping, without the `module.` prefix."""
    with np.load(reference_path(f"{name}.npz")) as arrays:
        return {
            k[len("state_dict/") :]: arrays[k]
            for k in arrays.files
            if k.startswith("state_dict/")
        }


def nhwc(nchw):
    return np.transpose(nchw, (0, 2, 3, 1))


# Pauses the converter when it starts writing the .keras file (Keras writes
# the zip's entries with `ZipFile.open(name, "w")`).
WHILE_WRITING = """
import zipfile

_open = zipfile.ZipFile.open


def _pausing_open(self, name, mode="r", *args, **kwargs):
    if mode == "w":
        pause()
    return _open(self, name, mode, *args, **kwargs)


zipfile.ZipFile.open = _pausing_open
"""


def run_python(args, cwd, onednn=None):
    # As a user runs it: no TF_CPP_MIN_LOG_LEVEL.
    return subprocess.run(
        [sys.executable] + args,
        cwd=cwd,
        env=processes.user_environment(REPO_ROOT, onednn),
        capture_output=True,
        text=True,
        timeout=300,
    )


def sha256(path):
    with open(path, "rb") as file:
        return hashlib.sha256(file.read()).hexdigest()


def load_model(path):
    import keras

    return keras.saving.load_model(path, compile=False)


class ConvertTest(TestCase):
    def assert_matches_golden(self, model, name):
        expected = golden(name)
        x = nhwc(expected["x"])
        logits = model(x, training=False)
        features = model.features(x)
        # The inverse of the authors' features, as their x_rec is.
        restored = model.inverse(nhwc(expected["out_bij"]))
        for what, actual, wanted in (
            ("logits", logits, expected["logits"]),
            ("out_bij", features, nhwc(expected["out_bij"])),
            ("x_rec", restored, nhwc(expected["x_rec"])),
        ):
            self.assertEqual(tuple(actual.shape), wanted.shape, what)
            self.assertLessEqual(relative_error(actual, wanted), RTOL, what)

    def assert_trainable_count(self, model, name):
        count = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        self.assertEqual(count, reference_json(name)["num_trainable_params"])

    @parameterized.named_parameters(
        (f"{name}_{source.replace('.', '_')}", name, source)
        for name in NAMES
        for source in ("npz", "pth.tar")
    )
    def test_reproduces_golden_outputs(self, name, source):
        model = convert.convert_checkpoint(
            reference_path(f"{name}.{source}"), reference_path(f"{name}.json")
        )
        self.assertIsInstance(model, IRevNetClassifier)
        self.assert_matches_golden(model, name)
        self.assert_trainable_count(model, name)

    @parameterized.named_parameters(
        ("cifar10", "cifar10"), ("cifar100", "cifar100")
    )
    def test_normalization_makes_the_model_take_pixels(self, normalization):
        statistics = convert.AUTHORS_NORMALIZATIONS[normalization]
        model = convert.convert_checkpoint(
            reference_path("cifar_small.npz"),
            reference_path("cifar_small.json"),
            input_mean=statistics["mean"],
            input_std=statistics["std"],
        )
        mean, std = np.array(statistics["mean"]), np.array(statistics["std"])
        expected = golden("cifar_small")
        # The authors' model saw the golden `x` as normalised images: the
        # pixels behind it give their logits and features, and the inverse
        # of their features is their reconstruction, back in pixels.
        pixels = (nhwc(expected["x"]) * std + mean).astype("float32")
        self.assertLessEqual(
            relative_error(model(pixels, training=False), expected["logits"]),
            RTOL,
        )
        self.assertLessEqual(
            relative_error(model.features(pixels), nhwc(expected["out_bij"])),
            RTOL,
        )
        restored = model.inverse(nhwc(expected["out_bij"]))
        self.assertLessEqual(
            relative_error(restored, nhwc(expected["x_rec"]) * std + mean),
            RTOL,
        )
        config = model.backbone.get_config()
        self.assertEqual(config["input_mean"], statistics["mean"])
        self.assertEqual(config["input_std"], statistics["std"])

    def test_authors_normalizations_are_the_datasets_statistics(self):
        for name, statistics in convert.AUTHORS_NORMALIZATIONS.items():
            self.assertEqual(
                tuple(statistics["mean"]), TFDS_DATASETS[name]["mean"], name
            )
            self.assertEqual(
                tuple(statistics["std"]), TFDS_DATASETS[name]["std"], name
            )

    def test_without_statistics_the_model_takes_the_authors_inputs(self):
        model = convert.convert_checkpoint(
            reference_path("cifar_small.npz"),
            reference_path("cifar_small.json"),
        )
        self.assertIsNone(model.backbone.standardization)

    def test_pth_tar_holds_the_npz_weights_with_module_prefix(self):
        loaded = convert.load_checkpoint(reference_path("cifar_small.pth.tar"))
        arrays = state_dict_arrays("cifar_small")
        self.assertEqual(sorted(loaded), sorted("module." + k for k in arrays))
        for key, value in arrays.items():
            self.assertAllEqual(loaded["module." + key], value)

    @parameterized.named_parameters(("plain", ""), ("data_parallel", "module."))
    def test_arrays_with_and_without_prefix(self, prefix):
        arrays = {
            prefix + k: v for k, v in state_dict_arrays("cifar_small").items()
        }
        config = reference_json("cifar_small")["constructor"]
        model = convert.convert_state_dict(arrays, config)
        self.assert_matches_golden(model, "cifar_small")

    def test_bare_state_dict_file_without_prefix(self):
        # What `torch.save(model.state_dict(), path)` writes for an unwrapped
        # model: no checkpoint dict, no `module.` prefix.
        path = os.path.join(self.get_temp_dir(), "bare.pth")
        torch.save(
            {
                k: torch.from_numpy(v)
                for k, v in state_dict_arrays(
                    "imagenet_small_bijective"
                ).items()
            },
            path,
        )
        model = convert.convert_checkpoint(
            path, reference_path("imagenet_small_bijective.json")
        )
        self.assert_matches_golden(model, "imagenet_small_bijective")

    def test_legacy_torch_file_format(self):
        # PyTorch before 1.6 (the authors' pretrained checkpoint is from
        # 2018) wrote a non-zip format; weights_only=True reads it too.
        checkpoint = torch.load(
            reference_path("cifar_small.pth.tar"), weights_only=True
        )
        path = os.path.join(self.get_temp_dir(), "legacy.pth.tar")
        torch.save(checkpoint, path, _use_new_zipfile_serialization=False)
        model = convert.convert_checkpoint(
            path, reference_path("cifar_small.json")
        )
        self.assert_matches_golden(model, "cifar_small")

    def test_non_affine_batch_norm(self):
        # affineBN=False: the blocks' BatchNorms have no weight and bias,
        # the head's `bn1` keeps them.
        config = dict(reference_json("cifar_small")["constructor"])
        config["affineBN"] = False
        arrays = state_dict_arrays("cifar_small")
        with self.assertRaisesRegex(
            ValueError, r"Unknown key 'stack\.0\.bottleneck_block\.1\.weight'"
        ):
            convert.convert_state_dict(arrays, config)
        non_affine = {
            k: v
            for k, v in arrays.items()
            if not (k.startswith("stack.") and v.ndim == 1)
            or k.endswith(("running_mean", "running_var"))
        }
        model = convert.convert_state_dict(non_affine, config)
        norm = model.backbone.blocks[1].residual.bn1
        self.assertEqual(
            [w.name for w in norm.weights], ["moving_mean", "moving_variance"]
        )
        self.assertAllEqual(
            norm.moving_variance,
            arrays["stack.1.bottleneck_block.0.running_var"],
        )
        self.assertAllEqual(model.head_norm.gamma, arrays["bn1.weight"])

    def test_torch_tensors_in_memory(self):
        checkpoint = torch.load(
            reference_path("cifar_small.pth.tar"), weights_only=True
        )
        model = convert.convert_state_dict(
            checkpoint["state_dict"], reference_json("cifar_small")
        )
        self.assert_matches_golden(model, "cifar_small")

    def test_num_batches_tracked_is_optional(self):
        arrays = {
            k: v
            for k, v in state_dict_arrays("cifar_small").items()
            if not k.endswith("num_batches_tracked")
        }
        model = convert.convert_state_dict(
            arrays, reference_json("cifar_small")
        )
        self.assert_matches_golden(model, "cifar_small")

    def test_missing_key(self):
        arrays = state_dict_arrays("cifar_small")
        del arrays["stack.1.bottleneck_block.5.weight"]
        with self.assertRaisesRegex(
            ValueError, r"Missing key 'stack\.1\.bottleneck_block\.5\.weight'"
        ):
            convert.convert_state_dict(arrays, reference_json("cifar_small"))

    def test_unknown_key(self):
        arrays = state_dict_arrays("cifar_small")
        arrays["stack.6.bottleneck_block.0.weight"] = np.ones(16, "float32")
        with self.assertRaisesRegex(
            ValueError, r"Unknown key 'stack\.6\.bottleneck_block\.0\.weight'"
        ):
            convert.convert_state_dict(arrays, reference_json("cifar_small"))

    def test_unknown_num_batches_tracked(self):
        # Ignored only where a BatchNorm sits: conv 2 of block 1 has none.
        arrays = state_dict_arrays("cifar_small")
        arrays["stack.1.bottleneck_block.2.num_batches_tracked"] = np.int64(1)
        with self.assertRaisesRegex(
            ValueError, r"Unknown key .*bottleneck_block\.2\.num_batches"
        ):
            convert.convert_state_dict(arrays, reference_json("cifar_small"))

    def test_mis_shaped_key(self):
        arrays = state_dict_arrays("cifar_small")
        # A kernel left in Keras layout (HWIO) instead of PyTorch's OIHW.
        key = "stack.2.bottleneck_block.9.weight"
        arrays[key] = np.transpose(arrays[key], (2, 3, 1, 0))
        with self.assertRaisesRegex(
            ValueError,
            r"Key 'stack\.2\.bottleneck_block\.9\.weight' has the wrong shape: "
            r"expected \(64, 16, 3, 3\).*Received: shape \(3, 3, 16, 64\)",
        ):
            convert.convert_state_dict(arrays, reference_json("cifar_small"))

    def test_config_that_does_not_match_checkpoint(self):
        config = dict(reference_json("cifar_small")["constructor"])
        config["nClasses"] = 11
        with self.assertRaisesRegex(
            ValueError,
            r"Key 'linear\.weight' has the wrong shape: expected \(11, 512\)"
            r".*Received: shape \(10, 512\)",
        ):
            convert.convert_state_dict(state_dict_arrays("cifar_small"), config)

    def test_bad_config_json(self):
        path = os.path.join(self.get_temp_dir(), "config.json")
        with open(path, "w") as f:
            f.write('{"nBlocks": [2, 2, 2],')
        with self.assertRaisesRegex(ValueError, "is not valid JSON"):
            convert.load_config(path)

    @parameterized.named_parameters(
        ("missing", {"nBlocks": None}, r"Missing .*\['nBlocks'\]"),
        ("unknown", {"n_blocks": [2]}, r"Unknown .*\['n_blocks'\]"),
        ("init_ds", {"init_ds": 3}, r"`init_ds` must be 0, 2 or 4.*init_ds=3"),
        ("strides", {"nStrides": [1, 3, 2]}, r"`nStrides`.*\[1, 3, 2\]"),
        ("lengths", {"nBlocks": [2, 2]}, r"same length.*nBlocks=\[2, 2\]"),
        ("in_shape", {"in_shape": [32, 32]}, r"in_shape=\[32, 32\]"),
        ("mult", {"mult": 0}, r"`mult` must be a positive integer.*mult=0"),
        ("dropout", {"dropout_rate": 1.5}, r"dropout_rate=1\.5"),
        ("classes", {"nClasses": True}, r"nClasses=True"),
        ("affine", {"affineBN": "yes"}, r"affineBN='yes'"),
        ("size", {"in_shape": [3, 30, 30]}, r"divisible by 4.*30, 30"),
        ("channels", {"nChannels": [16, 48, 256]}, r"out_channels"),
    )
    def test_bad_constructor_arguments(self, change, message):
        config = dict(reference_json("cifar_small")["constructor"])
        config.update(change)
        config = {k: v for k, v in config.items() if v is not None}
        with self.assertRaisesRegex(ValueError, message):
            convert.convert_state_dict(state_dict_arrays("cifar_small"), config)

    def test_config_from_authors_matches_presets(self):
        # The constructor calls of the authors' CIFAR_main.py and of their
        # ImageNet model, which our presets transcribe.
        cifar = convert.config_from_authors(
            {
                "nBlocks": [18, 18, 18],
                "nStrides": [1, 2, 2],
                "nChannels": [16, 64, 256],
                "nClasses": 10,
                "init_ds": 0,
                "dropout_rate": 0.1,
                "affineBN": True,
                "in_shape": [3, 32, 32],
                "mult": 4,
            }
        )
        imagenet = convert.config_from_authors(
            {
                "nBlocks": [6, 16, 72, 6],
                "nStrides": [2, 2, 2, 2],
                "nChannels": [24, 96, 384, 1536],
                "nClasses": 1000,
                "in_shape": [3, 224, 224],
            }
        )
        for config, preset in ((cifar, "cifar10"), (imagenet, "irevnet301")):
            for key, value in PRESETS[preset].items():
                self.assertEqual(config[key], value, f"{preset}: {key}")
            self.assertEqual(config["batch_norm_epsilon"], 1e-5)
            self.assertEqual(config["batch_norm_momentum"], 0.9)
            self.assertEqual(config["head_batch_norm_momentum"], 0.1)
        self.assertEqual(imagenet["initial_block_size"], 2)  # init_ds=2

    @parameterized.named_parameters(
        ("cifar10_preset", lambda: IRevNet.from_preset("cifar10")),
        (
            "initial_downsampling",
            lambda: small_classifier(initial_block_size=2).backbone,
        ),
    )
    def test_authors_constructor_round_trip(self, make_backbone):
        # Ours -> the authors' -> ours gives back every backbone argument
        # the authors' constructor has.
        backbone_config = make_backbone().get_config()
        constructor = convert.authors_constructor(backbone_config, 7)
        config = convert.config_from_authors(constructor)
        self.assertEqual(config.pop("num_classes"), 7)
        self.assertEqual(config.pop("head_batch_norm_momentum"), 0.1)
        self.assertEqual(
            config, {k: backbone_config[k] for k in config}, constructor
        )

    def test_default_channels_as_in_authors_code(self):
        # nChannels=None: in_ch = C * 2**init_ds, widths in_ch/2 * 4**stage.
        config = convert.config_from_authors(
            {
                "nBlocks": [6, 16, 72, 6],
                "nStrides": [2, 2, 2, 2],
                "nChannels": None,
                "nClasses": 1000,
                "init_ds": 2,
                "in_shape": [3, 224, 224],
            }
        )
        self.assertEqual(config["stage_filters"], [6, 24, 96, 384])
        self.assertEqual(config["image_shape"], [224, 224, 3])
        config = convert.config_from_authors(
            {
                "nBlocks": [1, 1, 1, 1],
                "nStrides": [1, 2, 2, 2],
                "nClasses": 10,
                "init_ds": 0,
                "in_shape": [4, 32, 32],
            }
        )
        self.assertEqual(config["stage_filters"], [2, 8, 32, 128])
        self.assertEqual(config["initial_block_size"], 1)

    def test_checkpoint_with_other_python_objects(self):
        # Training scripts often save their argparse namespace too, which
        # torch.load(weights_only=True) refuses: full unpickling is opt-in.
        checkpoint = torch.load(
            reference_path("cifar_small.pth.tar"), weights_only=True
        )
        checkpoint["args"] = argparse.Namespace(lr=0.1)
        path = os.path.join(self.get_temp_dir(), "with_args.pth.tar")
        torch.save(checkpoint, path)
        with self.assertRaisesRegex(ValueError, "allow_pickle"):
            convert.load_checkpoint(path)
        model = convert.convert_checkpoint(
            path, reference_path("cifar_small.json"), allow_pickle=True
        )
        self.assert_matches_golden(model, "cifar_small")

    def test_files_that_are_not_checkpoints(self):
        path = os.path.join(self.get_temp_dir(), "notes.pth.tar")
        with open(path, "w") as f:
            f.write("not a checkpoint")
        with self.assertRaisesRegex(ValueError, "Cannot read .*notes.pth.tar"):
            convert.load_checkpoint(path)
        path = os.path.join(self.get_temp_dir(), "tensor.pth")
        torch.save(torch.zeros(3), path)
        with self.assertRaisesRegex(ValueError, "neither a state_dict"):
            convert.load_checkpoint(path)
        with self.assertRaisesRegex(FileNotFoundError, "no_such.pth.tar"):
            convert.load_checkpoint("no_such.pth.tar")

    def test_pytorch_checkpoint_without_pytorch(self):
        with mock.patch.dict(sys.modules, {"torch": None}):
            with self.assertRaisesRegex(ImportError, r"pip install"):
                convert.load_checkpoint(reference_path("cifar_small.pth.tar"))


@pytest.mark.large
class ConvertCommandLineTest(TestCase):
    def test_writes_a_keras_file_that_loads_elsewhere(self):
        workdir = self.get_temp_dir()
        output = os.path.join(workdir, "cifar_small.keras")
        result = run_python(
            [
                "-m",
                "irevnet_tf.convert",
                "--checkpoint",
                reference_path("cifar_small.pth.tar"),
                "--config",
                reference_path("cifar_small.json"),
                "--output",
                output,
            ],
            cwd=workdir,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("597,770 trainable", result.stdout)
        self.assertIn(output, result.stdout)
        self.assertTrue(os.path.isfile(output))

        # A fresh interpreter: only `import irevnet_tf` registers the classes.
        check = textwrap.dedent(
            f"""
            import keras
            import numpy as np
            import irevnet_tf
            model = keras.saving.load_model({output!r})
            x = np.load({reference_path("cifar_small.npz")!r})["x"]
            logits = model(np.transpose(x, (0, 2, 3, 1)), training=False)
            np.save("logits.npy", np.asarray(logits))
            """
        )
        result = run_python(["-c", check], cwd=workdir)
        self.assertEqual(result.returncode, 0, result.stderr)
        logits = np.load(os.path.join(workdir, "logits.npy"))
        self.assertLessEqual(
            relative_error(logits, golden("cifar_small")["logits"]), RTOL
        )

    def test_normalization_flag(self):
        workdir = self.get_temp_dir()
        output = os.path.join(workdir, "cifar_small_pixels.keras")
        result = run_python(
            [
                "-m",
                "irevnet_tf.convert",
                "--checkpoint",
                reference_path("cifar_small.npz"),
                "--config",
                reference_path("cifar_small.json"),
                "--normalization=cifar10",
                "--output",
                output,
            ],
            cwd=workdir,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        backbone = load_model(output).backbone
        statistics = convert.AUTHORS_NORMALIZATIONS["cifar10"]
        self.assertEqual(backbone.input_mean, statistics["mean"])
        self.assertEqual(backbone.input_std, statistics["std"])

    def test_array_path_does_not_import_torch(self):
        check = textwrap.dedent(
            f"""
            import sys
            from irevnet_tf import convert
            model = convert.convert_checkpoint(
                {reference_path("imagenet_small_bijective.npz")!r},
                {reference_path("imagenet_small_bijective.json")!r})
            print("torch imported:", "torch" in sys.modules)
            """
        )
        result = run_python(["-c", check], cwd=self.get_temp_dir())
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("torch imported: False", result.stdout)

    @parameterized.named_parameters(
        (f"{case}_onednn_{onednn}", flags, message, onednn)
        for case, flags, message in (
            (
                "mismatched_config",
                ["--config", reference_path("imagenet_small_bijective.json")],
                "Unknown key 'stack.5.",
            ),
            ("missing_flag", [], "--output"),
            ("not_keras", ["--output", "model.h5"], "must name a .keras file"),
            ("directory", ["--output", "dir.keras"], "must name a .keras file"),
            ("unknown_flag", ["--no_such_flag", "1"], "no_such_flag"),
            (
                "normalization_and_mean",
                ["--normalization", "cifar10", "--mean", "0.5"],
                "--normalization or --mean/--std, not both",
            ),
            (
                "unknown_normalization",
                ["--normalization", "imagenet"],
                "--normalization",
            ),
            (
                "mean_not_numbers",
                ["--mean", "0.5,a,0.5"],
                "--mean must be comma-separated finite numbers. "
                "Received: --mean=0.5,a,0.5",
            ),
            ("std_zero", ["--std", "0.2,0,0.2"], "--std must be positive"),
            (
                "mean_per_channel",
                ["--mean", "0.5,0.5"],
                "--mean needs one value or 3",
            ),
            (
                "read_only",
                ["--output", "locked/model.keras"],
                "Cannot write to",
            ),
        )
        for onednn in ("1", "0")
    )
    def test_bad_input_gives_one_line_and_status_2(
        self, flags, message, onednn
    ):
        args = {
            "--checkpoint": reference_path("cifar_small.npz"),
            "--config": reference_path("cifar_small.json"),
        }
        if flags:
            args["--output"] = "model.keras"
            args.update(dict(zip(flags[::2], flags[1::2])))
        argv = [f"{k}={v}" for k, v in args.items()]
        workdir = self.get_temp_dir()
        os.makedirs(os.path.join(workdir, "dir.keras"))
        locked = os.path.join(workdir, "locked")
        with read_only_directory(locked):
            result = run_python(
                ["-m", "irevnet_tf.convert"] + argv, cwd=workdir, onednn=onednn
            )
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertNotIn("Traceback", result.stderr)
        ours = [
            line
            for line in result.stderr.splitlines()
            if line.startswith("convert:")
        ]
        self.assertLen(ours, 1, result.stderr)
        self.assertIn(message, ours[0])
        # Nothing else: no TensorFlow start-up lines, on any CPU.
        self.assertEqual(result.stderr.splitlines(), ours)
        self.assertFalse(os.path.exists(os.path.join(workdir, "model.keras")))
        self.assertEqual(os.listdir(os.path.join(workdir, "dir.keras")), [])
        self.assertEqual(os.listdir(locked), [])

    def test_kill_while_overwriting_keeps_the_old_file(self):
        workdir = self.get_temp_dir()
        output = os.path.join(workdir, "model.keras")

        def argv(name):
            return [
                "--checkpoint",
                reference_path(f"{name}.npz"),
                "--config",
                reference_path(f"{name}.json"),
                "--output",
                output,
            ]

        first = run_python(
            ["-m", "irevnet_tf.convert"] + argv("cifar_small"), cwd=workdir
        )
        self.assertEqual(first.returncode, 0, first.stderr)
        good = sha256(output)
        # Killed while it writes another model over the good one.
        processes.kill_when_paused(
            "irevnet_tf.convert",
            argv("imagenet_small_bijective"),
            WHILE_WRITING,
            cwd=workdir,
            env=processes.user_environment(REPO_ROOT),
        )
        self.assertEqual(sha256(output), good)
        self.assert_logits_match_golden(load_model(output), "cifar_small")

        # The next conversion replaces it and removes what the kill left.
        again = run_python(
            ["-m", "irevnet_tf.convert"] + argv("imagenet_small_bijective"),
            cwd=workdir,
        )
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assert_logits_match_golden(
            load_model(output), "imagenet_small_bijective"
        )
        self.assertEqual(os.listdir(workdir), ["model.keras"])

    def assert_logits_match_golden(self, model, name):
        expected = golden(name)
        logits = model(nhwc(expected["x"]), training=False)
        self.assertLessEqual(relative_error(logits, expected["logits"]), RTOL)
