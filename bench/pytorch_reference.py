"""A PyTorch twin of the authors' i-RevNet, to time it beside ours.

The authors' code (jhjacobsen/pytorch-i-revnet, `models/iRevNet.py`) is not
installable, so `bench.inference` times this module instead: written for this
project from the authors' code, it computes the same function with
the same layers in the same layout (NCHW, PyTorch's `nn.Conv2d`,
`nn.BatchNorm2d`, in-place ReLU), and its `state_dict` has the authors' keys:

    stack.<block>.bottleneck_block.<position>.<param>   (an nn.Sequential)
    bn1.*, linear.*                                      (the head)

so that their checkpoints load into it and `irevnet_tf.convert` converts its
weights. `tests/bench_test.py` checks that it reproduces the authors' golden
outputs and the converted Keras model.

    model = PyTorchIRevNet(**irevnet_tf.convert.load_config("config.json"))
    model.eval()
    logits = model(images)                  # NCHW images -> logits
    features = model.features(images)       # the authors' `out_bij`
    images = model.inverse(features)
"""

import torch
import torch.nn.functional as F
from torch import nn


def space_to_depth(x, block_size):
    """The authors' invertible down-sampling `psi` (block size b).

    y[n, (dh*b + dw)*C + c, i, j] = x[n, c, i*b + dh, j*b + dw]: the channel
    order of `tf.nn.space_to_depth` after NCHW -> NHWC (not that of
    `F.pixel_unshuffle`, which is c*b*b + dh*b + dw).
    """
    n, c, h, w = x.shape
    b = block_size
    y = x.reshape(n, c, h // b, b, w // b, b)
    y = y.permute(0, 3, 5, 1, 2, 4)  # n, dh, dw, c, i, j
    return _same_layout(y.reshape(n, b * b * c, h // b, w // b), x)


def depth_to_space(y, block_size):
    """The inverse of `space_to_depth`."""
    n, c, h, w = y.shape
    b = block_size
    x = y.reshape(n, b, b, c // (b * b), h, w)
    x = x.permute(0, 3, 4, 1, 5, 2)  # n, c, i, dh, j, dw
    return _same_layout(x.reshape(n, c // (b * b), h * b, w * b), y)


def _same_layout(y, x):
    # Keeps a channels-last pipeline channels-last (reshape returns NCHW).
    if x.dim() == 4 and not x.is_contiguous():
        if x.is_contiguous(memory_format=torch.channels_last):
            return y.contiguous(memory_format=torch.channels_last)
    return y.contiguous()


def _halves(x):
    n = x.shape[1] // 2
    return x[:, :n], x[:, n:]


class Block(nn.Module):
    """The authors' coupling block: `(x1, x2) -> (S(x2), F(x2) + S(x1))`.

    `S` is `space_to_depth(2)` for stride 2 and the identity for stride 1.
    A stride-1 block whose output is wider than its input (`pad =
    2 * out_channels - in_channels > 0`) first appends `pad` zero channels
    to the merged halves and splits them again (injective padding).
    """

    def __init__(
        self,
        in_channels,
        out_channels,
        stride,
        first,
        dropout_rate,
        affine,
        mult,
    ):
        super().__init__()
        self.stride = stride
        self.pad = 2 * out_channels - in_channels if stride == 1 else 0
        if stride == 1:
            valid = self.pad >= 0
        else:
            valid = stride == 2 and out_channels == 2 * in_channels
        if not valid:
            raise ValueError(
                "A block cannot map these widths: stride 1 needs "
                "out_channels >= in_channels / 2, stride 2 needs "
                "out_channels = 2 * in_channels, no other stride exists. "
                f"Received: in_channels={in_channels}, "
                f"out_channels={out_channels}, stride={stride}"
            )
        half = (in_channels + self.pad) // 2
        middle = out_channels // mult
        layers = []
        if not first:  # The network's first block starts with the conv.
            layers += [nn.BatchNorm2d(half, affine=affine), nn.ReLU(True)]
        layers += [
            nn.Conv2d(half, middle, 3, stride, padding=1, bias=False),
            nn.BatchNorm2d(middle, affine=affine),
            nn.ReLU(True),
            nn.Conv2d(middle, middle, 3, padding=1, bias=False),
            nn.Dropout(dropout_rate),
            nn.BatchNorm2d(middle, affine=affine),
            nn.ReLU(True),
            nn.Conv2d(middle, out_channels, 3, padding=1, bias=False),
        ]
        self.bottleneck_block = nn.Sequential(*layers)

    def forward(self, x1, x2):
        if self.pad:
            merged = F.pad(torch.cat((x1, x2), 1), (0, 0, 0, 0, 0, self.pad))
            x1, x2 = _halves(merged)
        fx2 = self.bottleneck_block(x2)
        if self.stride == 2:
            x1 = space_to_depth(x1, 2)
            x2 = space_to_depth(x2, 2)
        return x2, fx2 + x1

    def inverse(self, y1, y2):
        x2 = depth_to_space(y1, 2) if self.stride == 2 else y1
        x1 = y2 - self.bottleneck_block(x2)
        if self.stride == 2:
            x1 = depth_to_space(x1, 2)
        if self.pad:
            merged = torch.cat((x1, x2), 1)
            x1, x2 = _halves(merged[:, : merged.shape[1] - self.pad])
        return x1, x2


class PyTorchIRevNet(nn.Module):
    """The authors' `iRevNet` classifier, with their constructor arguments.

    Args:
        nBlocks: blocks per stage.
        nStrides: stride (1 or 2) of each stage's first block.
        nClasses: number of classes.
        nChannels: channels of each half per stage; None for the authors'
            default (four stages, each 4 times as wide as the last).
        init_ds: 0 (no initial down-sampling), 2 or 4 (a `space_to_depth`
            with block size 2 or 4, as the authors' `psi(init_ds)`).
        dropout_rate: dropout before the last BatchNorm of each bottleneck.
        affineBN: whether the blocks' BatchNorms have weight and bias.
        in_shape: `[channels, height, width]` of the images.
        mult: bottleneck width divisor.

    Call arguments:
        images: NCHW float tensor. Returns the logits; `features(images)`
        returns the invertible features (the authors' `out_bij`) and
        `inverse(features)` the images. The head (BatchNorm with PyTorch
        momentum 0.9, ReLU, global average pooling, Linear) is not inverted.
    """

    def __init__(
        self,
        nBlocks,
        nStrides,
        nClasses,
        nChannels=None,
        init_ds=2,
        dropout_rate=0.0,
        affineBN=True,
        in_shape=None,
        mult=4,
    ):
        super().__init__()
        if init_ds not in (0, 2, 4):
            raise ValueError(f"init_ds must be 0, 2 or 4. Received: {init_ds}")
        self.init_ds = init_ds
        in_channels = in_shape[0] * 2**init_ds
        if not nChannels:
            nChannels = [in_channels // 2 * 4**stage for stage in range(4)]
        blocks = []
        for depth, stride, channels in zip(nBlocks, nStrides, nChannels):
            for index in range(depth):
                blocks.append(
                    Block(
                        in_channels,
                        channels,
                        stride if index == 0 else 1,
                        first=not blocks,
                        dropout_rate=dropout_rate,
                        affine=affineBN,
                        mult=mult,
                    )
                )
                in_channels = 2 * channels
        self.stack = nn.ModuleList(blocks)
        self.bn1 = nn.BatchNorm2d(in_channels, momentum=0.9)
        self.linear = nn.Linear(in_channels, nClasses)

    def features(self, images):
        x = images
        if self.init_ds:
            x = space_to_depth(x, self.init_ds)
        x1, x2 = _halves(x)
        for block in self.stack:
            x1, x2 = block(x1, x2)
        return torch.cat((x1, x2), 1)

    def logits_from_features(self, features):
        x = F.relu(self.bn1(features))
        # The authors pool with a kernel of the feature map's size.
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.linear(x)

    def forward(self, images):
        return self.logits_from_features(self.features(images))

    def inverse(self, features):
        x1, x2 = _halves(features)
        for block in reversed(self.stack):
            x1, x2 = block.inverse(x1, x2)
        x = torch.cat((x1, x2), 1)
        if self.init_ds:
            x = depth_to_space(x, self.init_ds)
        return x


def authors_constructor(backbone_config, num_classes):
    """The authors' constructor arguments of one of our models.

    `irevnet_tf.convert.authors_constructor`, for `PyTorchIRevNet(**d)`;
    imported on call, so that a process running only the PyTorch twin does
    not load TensorFlow.
    """
    from irevnet_tf import convert

    return convert.authors_constructor(backbone_config, num_classes)


def randomize_batch_norms(model, generator):
    """Gives every BatchNorm random statistics, weight and bias.

    At their initial values (mean 0, variance 1, weight 1, bias 0) a
    BatchNorm is nearly the identity, and a check that two implementations
    agree would miss swapped or mis-assigned statistics.
    """
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                size = module.num_features
                module.running_mean.copy_(
                    0.2 * torch.randn(size, generator=generator)
                )
                module.running_var.copy_(
                    0.5 + torch.rand(size, generator=generator)
                )
                if module.affine:
                    module.weight.copy_(
                        0.5 + torch.rand(size, generator=generator)
                    )
                    module.bias.copy_(
                        0.1 * torch.randn(size, generator=generator)
                    )
