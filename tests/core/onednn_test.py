"""The oneDNN probe that .ci/run relies on."""

import os

from irevnet_tf.testing import onednn


def test_the_environment_variable_decides():
    environ = dict(os.environ)
    assert onednn.onednn_enabled(dict(environ, TF_ENABLE_ONEDNN_OPTS="1"))
    assert not onednn.onednn_enabled(dict(environ, TF_ENABLE_ONEDNN_OPTS="0"))


def test_default_is_one_of_them():
    assert onednn.onednn_enabled_by_default() in (True, False)
