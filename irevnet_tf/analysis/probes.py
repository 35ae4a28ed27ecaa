"""Linear SVM and 1-nearest-neighbour accuracy of fixed features.

The paper's probes of sections 5.1 and 5.2: features standardised with
the training set's statistics, then scikit-learn's `LinearSVC` and
`KNeighborsClassifier(n_neighbors=1)` fitted on the training set and scored
on the test set.
"""

import dataclasses
import warnings

import numpy as np
from absl import flags
from sklearn import exceptions as sklearn_exceptions
from sklearn import neighbors
from sklearn import preprocessing
from sklearn import svm

from irevnet_tf.analysis import command_line
from irevnet_tf.analysis import data as data_lib

# LinearSVC's coordinate descent: enough iterations for standardised
# features of a few thousand dimensions.
SVM_MAX_ITERATIONS = 5000


@dataclasses.dataclass(frozen=True)
class ProbeAccuracy:
    """Test accuracies of the two probes.

    Attributes:
        svm: accuracy of the linear SVM.
        nearest_neighbour: accuracy of the 1-nearest-neighbour classifier.
        svm_converged: False if LinearSVC stopped at its iteration limit.
    """

    svm: float
    nearest_neighbour: float
    svm_converged: bool


def standardize(
    train: np.ndarray, test: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Zero mean, unit variance per feature, with the training statistics."""
    scaler = preprocessing.StandardScaler().fit(train)
    return scaler.transform(train), scaler.transform(test)


def probe_standardized(
    train: np.ndarray,
    train_labels: np.ndarray,
    test: np.ndarray,
    test_labels: np.ndarray,
    svm_c: float = 1.0,
    seed: int = 0,
) -> ProbeAccuracy:
    """Fits both probes on standardised features and scores them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", sklearn_exceptions.ConvergenceWarning)
        linear = svm.LinearSVC(
            C=svm_c, max_iter=SVM_MAX_ITERATIONS, random_state=seed
        ).fit(train, train_labels)
    converged = not any(
        issubclass(w.category, sklearn_exceptions.ConvergenceWarning)
        for w in caught
    )
    nearest = neighbors.KNeighborsClassifier(n_neighbors=1).fit(
        train, train_labels
    )
    return ProbeAccuracy(
        svm=float(np.mean(linear.predict(test) == test_labels)),
        nearest_neighbour=float(np.mean(nearest.predict(test) == test_labels)),
        svm_converged=converged,
    )


def probe(
    train: np.ndarray,
    train_labels: np.ndarray,
    test: np.ndarray,
    test_labels: np.ndarray,
    svm_c: float = 1.0,
    seed: int = 0,
) -> ProbeAccuracy:
    """Standardises the features, then `probe_standardized`."""
    train, test = standardize(train, test)
    return probe_standardized(
        train, train_labels, test, test_labels, svm_c=svm_c, seed=seed
    )


def load_train_and_test(
    model,
    settings,
    train_split: str,
    test_split: str | None,
    max_train_examples: int | None,
    max_test_examples: int | None,
):
    """The two splits the probes are fitted and scored on, with sizes.

    Returns:
        `(train, num_train, test, num_test, info, test_split)`.
    """
    test_split = test_split or data_lib.eval_split(settings.dataset)
    train, info = data_lib.load_split(
        model, settings, train_split, max_train_examples
    )
    test, test_info = data_lib.load_split(
        model, settings, test_split, max_test_examples
    )
    return (
        train,
        data_lib.split_size(info, max_train_examples),
        test,
        data_lib.split_size(test_info, max_test_examples),
        test_info,
        test_split,
    )


@dataclasses.dataclass(frozen=True)
class ProbeFlags:
    """The flags of an analysis that fits probes (`separability`, `pca`)."""

    train_split: flags.FlagHolder
    max_train_examples: flags.FlagHolder
    max_test_examples: flags.FlagHolder
    svm_c: flags.FlagHolder

    def values(self) -> dict:
        """The values, named as `run_separability` and `run_pca` take them."""
        return {
            field.name: getattr(self, field.name).value
            for field in dataclasses.fields(self)
        }


def define_flags(flag_values: flags.FlagValues) -> ProbeFlags:
    """Defines the probes' flags on an analysis's `flag_values`."""
    return ProbeFlags(
        train_split=flags.DEFINE_string(
            "train_split",
            "train",
            "The split the probes are fitted on.",
            flag_values=flag_values,
        ),
        max_train_examples=flags.DEFINE_integer(
            "max_train_examples",
            None,
            "Use the first N training images. Default: all.",
            lower_bound=1,
            flag_values=flag_values,
        ),
        max_test_examples=flags.DEFINE_integer(
            "max_test_examples",
            None,
            "Use the first N test images. Default: all.",
            lower_bound=1,
            flag_values=flag_values,
        ),
        svm_c=command_line.define_positive_float(
            "svm_c",
            1.0,
            "Regularisation parameter C of the linear SVM.",
            flag_values,
        ),
    )
