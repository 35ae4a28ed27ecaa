"""The i-RevNet paper's analyses (sections 4 and 5) for any classifier.

Each analysis is a module with a function that computes its numbers, one
that draws its figure, and a `run_*` function that writes both
(`OUTPUT_DIR/NAME.json`, `OUTPUT_DIR/NAME.png`):

- `reconstruction`: mean relative error `||x - Phi^-1(Phi x)|| / ||x||` on
  uniform noise and on a dataset split (section 4.1).
- `interpolation`: images along `Phi^-1((1 - t) Phi(x0) + t Phi(x1))`
  (Figure 5).
- `separability`: linear SVM and 1-NN accuracy of the spatially averaged
  features at every block depth (Figure 6).
- `pca`: the same probes on the first `d` principal components of the
  final features (Figure 7).
- `spectrum`: singular values of the Jacobian of `Phi` at an image, exact
  or by a matrix-free randomised method (Figure 4).

Everything runs in inference mode (`training=False`). On the command line,
each is a subcommand named after its module, with the flags the module
declares (its `FLAGS`) besides those of every analysis (`__main__`):

    python -m irevnet_tf.analysis SUBCOMMAND --model PATH \
        --dataset NAME --output_dir DIR

Example:

>>> from irevnet_tf.analysis import DataSettings, run_separability
>>> from irevnet_tf.models.loading import load_classifier
>>> model = load_classifier("runs/digits")
>>> record = run_separability(model, DataSettings("digits"), "figures")
>>> record["svm_accuracy"][-1]
0.98

Reference:
    i-RevNet: https://openreview.net/pdf?id=HJsjkMb0Z, sections 4 and 5.
"""

from irevnet_tf.analysis.data import DataSettings
from irevnet_tf.analysis.interpolation import interpolation_path
from irevnet_tf.analysis.interpolation import run_interpolation
from irevnet_tf.analysis.jacobian import JacobianOperator
from irevnet_tf.analysis.pca import pca_accuracy
from irevnet_tf.analysis.pca import run_pca
from irevnet_tf.analysis.reconstruction import reconstruction_errors
from irevnet_tf.analysis.reconstruction import run_reconstruction
from irevnet_tf.analysis.separability import accuracy_by_depth
from irevnet_tf.analysis.separability import run_separability
from irevnet_tf.analysis.spectrum import jacobian_spectrum
from irevnet_tf.analysis.spectrum import run_spectrum

__all__ = [
    "DataSettings",
    "JacobianOperator",
    "accuracy_by_depth",
    "interpolation_path",
    "jacobian_spectrum",
    "pca_accuracy",
    "reconstruction_errors",
    "run_interpolation",
    "run_pca",
    "run_reconstruction",
    "run_separability",
    "run_spectrum",
]
