"""Converts checkpoints of the authors' PyTorch i-RevNet into Keras models.

The authors' code (jhjacobsen/pytorch-i-revnet, `models/iRevNet.py`) saves a
PyTorch `state_dict`; this module loads it into an `IRevNetClassifier` built
from the same constructor arguments, so that the converted model computes the
same logits, features and inverse (to float32 rounding).

Command line, from the repository root (or `irevnet-convert` after
`pip install .`):

    python -m irevnet_tf.convert --checkpoint model_best.pth.tar \
        --config constructor.json --output irevnet301.keras

`--checkpoint` is a `.pth.tar` written by the authors' ImageNet script, a bare
`state_dict` saved with `torch.save` (both need PyTorch:
`pip install 'irevnet-tf[torch]'`), or a `.npz` of arrays (no PyTorch needed).
`--config` is a JSON object of the authors' constructor arguments, for example

    {"nBlocks": [6, 16, 72, 6], "nStrides": [2, 2, 2, 2],
     "nChannels": [24, 96, 384, 1536], "nClasses": 1000, "init_ds": 2,
     "dropout_rate": 0.0, "affineBN": true, "in_shape": [3, 224, 224],
     "mult": 4}

or an object holding one under the key "constructor". The written `.keras`
file loads with `keras.saving.load_model` after `import irevnet_tf`.

The authors' CIFAR code trains on normalised images, `(x - mean) / std`.
`--normalization=cifar10` (or `cifar100`) gives the converted model their
statistics (`AUTHORS_NORMALIZATIONS`) as its first layer, so that it takes
pixels in [0, 1]; `--mean` and `--std` give others. Without them the model
takes what the authors' model took.

In Python:

    config = load_config("constructor.json")
    model = convert_state_dict(load_checkpoint("model_best.pth.tar"), config)

The modules: `constructor` (the authors' constructor arguments to ours and
back), `weights` (their state_dict into a model), `checkpoint` (files),
`__main__` (the command line).
"""

from irevnet_tf.convert.checkpoint import convert_checkpoint
from irevnet_tf.convert.checkpoint import load_checkpoint
from irevnet_tf.convert.checkpoint import load_config
from irevnet_tf.convert.constructor import AUTHORS_NORMALIZATIONS
from irevnet_tf.convert.constructor import authors_constructor
from irevnet_tf.convert.constructor import build_model
from irevnet_tf.convert.constructor import config_from_authors
from irevnet_tf.convert.weights import convert_state_dict

__all__ = [
    "AUTHORS_NORMALIZATIONS",
    "authors_constructor",
    "build_model",
    "config_from_authors",
    "convert_checkpoint",
    "convert_state_dict",
    "load_checkpoint",
    "load_config",
]
