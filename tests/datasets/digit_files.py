"""Moved to `irevnet_tf.testing.digit_files`; import it from there.

Kept for the test modules that still import it from here.
"""

from irevnet_tf.testing.digit_files import prepared_digits_dir  # noqa: F401
from irevnet_tf.testing.digit_files import write_digit_folder  # noqa: F401
