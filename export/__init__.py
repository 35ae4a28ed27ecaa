"""Export of i-RevNet classifiers as SavedModels for TensorFlow Serving.

`export_lib` writes a forward and an inverse SavedModel plus the model
server's `models.config`; `export` is its command line. The names they are
served under, and the client that builds requests for the model server, are
in `irevnet_tf.serving`.
"""
