"""i-RevNet (Jacobsen, Smeulders, Oyallon, ICLR 2018) in Keras 3.

Invertible layers with paired `call` and `inverse`, the i-RevNet backbone and
classifier, and the presets of the authors' code and of the paper.

Importing it imports TensorFlow with TensorFlow's C++ start-up lines (CUDA
probing, CPU instruction sets, the oneDNN notice) dropped from stderr; any
other output passes (`irevnet_tf.cli.without_startup_noise`).
"""

from irevnet_tf import cli

with cli.without_startup_noise():
    import tensorflow

    # Probing for GPUs logs a CUDA error on machines without one; a probe
    # here keeps it inside the filter. It does not initialise the runtime.
    tensorflow.config.list_physical_devices("GPU")

from irevnet_tf.layers.channel_split import ChannelMerge  # noqa: E402
from irevnet_tf.layers.channel_split import ChannelSplit  # noqa: E402
from irevnet_tf.layers.injective_padding import InjectivePadding  # noqa: E402
from irevnet_tf.layers.invertible_downsampling import InvertibleDownsampling  # noqa: E402
from irevnet_tf.layers.invertible_layer import InvertibleLayer  # noqa: E402
from irevnet_tf.layers.irevnet_block import IRevNetBlock  # noqa: E402
from irevnet_tf.layers.residual_bottleneck import ResidualBottleneck  # noqa: E402
from irevnet_tf.models.irevnet import IRevNet  # noqa: E402
from irevnet_tf.models.irevnet_classifier import IRevNetClassifier  # noqa: E402
from irevnet_tf.models.irevnet_presets import PRESETS  # noqa: E402

__version__ = "0.2.0"

__all__ = [
    "ChannelMerge",
    "ChannelSplit",
    "IRevNet",
    "IRevNetBlock",
    "IRevNetClassifier",
    "InjectivePadding",
    "InvertibleDownsampling",
    "InvertibleLayer",
    "PRESETS",
    "ResidualBottleneck",
]
