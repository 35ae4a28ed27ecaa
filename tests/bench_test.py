"""The PyTorch twin that `bench.inference` times computes the authors' model.

It reproduces the golden outputs of the authors' code (from their checkpoint
format), and the Keras model that `irevnet_tf.convert` makes of its weights.
"""

import os

import numpy as np
import torch
from absl.testing import parameterized

from bench import pytorch_reference
from irevnet_tf import convert
from irevnet_tf.testing.test_case import TestCase
from irevnet_tf.testing.test_case import relative_error

REFERENCE_DIR = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "testdata", "reference"
)
# The bound; float32 implementations agree to about 4e-7.
RTOL = 1e-5


def reference_path(filename):
    return os.path.join(REFERENCE_DIR, filename)


def nhwc(nchw):
    return np.transpose(np.asarray(nchw), (0, 2, 3, 1))


class PyTorchReferenceTest(TestCase):
    @parameterized.named_parameters(
        ("cifar_small", "cifar_small"),
        ("imagenet_small_bijective", "imagenet_small_bijective"),
    )
    def test_reproduces_the_authors_golden_outputs(self, name):
        config = convert.load_config(reference_path(f"{name}.json"))
        model = pytorch_reference.PyTorchIRevNet(**config)
        checkpoint = torch.load(
            reference_path(f"{name}.pth.tar"),
            map_location="cpu",
            weights_only=True,
        )
        state_dict = {
            key.removeprefix("module."): value
            for key, value in checkpoint["state_dict"].items()
        }
        model.load_state_dict(state_dict)  # Strict: the authors' keys.
        model.eval()
        with np.load(reference_path(f"{name}.npz")) as arrays:
            golden = {k: arrays[k] for k in ("x", "logits", "out_bij", "x_rec")}

        with torch.inference_mode():
            images = torch.from_numpy(golden["x"])
            features = model.features(images)
            logits = model(images)
            reconstruction = model.inverse(features)

        self.assertLess(relative_error(logits, golden["logits"]), RTOL)
        self.assertLess(relative_error(features, golden["out_bij"]), RTOL)
        self.assertLess(relative_error(reconstruction, golden["x_rec"]), RTOL)
        self.assertLess(relative_error(reconstruction, golden["x"]), RTOL)

    def test_matches_the_converted_keras_model(self):
        # Dropout (inactive in eval mode) shifts the Sequential positions of
        # the last BatchNorm and conv: the keys must still line up.
        config = dict(
            convert.load_config(reference_path("cifar_small.json")),
            dropout_rate=0.1,
        )
        torch.manual_seed(0)
        model = pytorch_reference.PyTorchIRevNet(**config)
        pytorch_reference.randomize_batch_norms(
            model, torch.Generator().manual_seed(1)
        )
        model.eval()
        keras_model = convert.convert_state_dict(
            {k: v.numpy() for k, v in model.state_dict().items()}, config
        )
        images = np.random.default_rng(2).uniform(size=(3, 3, 32, 32))
        images = images.astype("float32")

        with torch.inference_mode():
            features = model.features(torch.from_numpy(images))
            logits = model(torch.from_numpy(images))
            reconstruction = model.inverse(features)
            # The benchmark's best case for PyTorch: channels-last tensors.
            model.to(memory_format=torch.channels_last)
            images_cl = torch.from_numpy(images).to(
                memory_format=torch.channels_last
            )
            features_cl = model.features(images_cl)
            logits_cl = model(images_cl)
            reconstruction_cl = model.inverse(features_cl)

        keras_logits = keras_model(nhwc(images), training=False)
        keras_features = keras_model.features(nhwc(images))
        self.assertLess(relative_error(logits, keras_logits), RTOL)
        self.assertLess(relative_error(nhwc(features), keras_features), RTOL)
        self.assertLess(relative_error(reconstruction, images), RTOL)
        self.assertTrue(
            features_cl.is_contiguous(memory_format=torch.channels_last)
        )
        self.assertLess(relative_error(logits_cl, keras_logits), RTOL)
        self.assertLess(relative_error(reconstruction_cl, images), RTOL)

    def test_authors_constructor_of_the_cifar10_preset(self):
        from irevnet_tf import IRevNet

        backbone = IRevNet.from_preset("cifar10")
        constructor = pytorch_reference.authors_constructor(
            backbone.get_config(), num_classes=10
        )
        self.assertEqual(
            constructor,
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
            },
        )
        # The authors' parameter count of their CIFAR-10 model.
        model = pytorch_reference.PyTorchIRevNet(**constructor)
        trainable = sum(p.numel() for p in model.parameters())
        self.assertEqual(trainable, 6_274_826)
        with self.assertRaisesRegex(ValueError, r"kernel_sizes=\[1, 3, 1\]"):
            pytorch_reference.authors_constructor(
                IRevNet.from_preset("irevnet300").get_config(), 1000
            )
