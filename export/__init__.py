"""Export of i-RevNet classifiers as SavedModels for TensorFlow Serving.

`export_lib` writes a forward and an inverse SavedModel plus the model
server's `models.config`; `export` is its command line. The names they are
served under, and the client that builds requests for the model server, are
in `irevnet_tf.serving`.
"""

# Before anything imports TensorFlow: `irevnet_tf` imports it inside its
# filter of TensorFlow's start-up lines, so that the programs' usage errors
# stay one line on stderr.
import irevnet_tf  # noqa: F401
