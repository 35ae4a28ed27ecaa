"""i-RevNet (Jacobsen, Smeulders, Oyallon, ICLR 2018) in Keras 3.

Invertible layers with paired `call` and `inverse`, the i-RevNet backbone and
classifier, and the presets of the authors' code and of the paper.
"""

from irevnet_tf.layers.channel_split import ChannelMerge
from irevnet_tf.layers.channel_split import ChannelSplit
from irevnet_tf.layers.injective_padding import InjectivePadding
from irevnet_tf.layers.invertible_downsampling import InvertibleDownsampling
from irevnet_tf.layers.invertible_layer import InvertibleLayer
from irevnet_tf.layers.irevnet_block import IRevNetBlock
from irevnet_tf.layers.residual_bottleneck import ResidualBottleneck
from irevnet_tf.models.irevnet import IRevNet
from irevnet_tf.models.irevnet_classifier import IRevNetClassifier
from irevnet_tf.models.irevnet_presets import PRESETS

__version__ = "0.1.0"

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
