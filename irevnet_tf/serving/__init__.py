"""Serving the exported i-RevNet models with TensorFlow Serving.

`signatures` names what `export/export_lib.py` writes and the model server
serves: the model names, the signature, its inputs and outputs, the ports.
`client` builds the model server's gRPC and REST requests and reads its
responses; it needs `tensorflow` and `tensorflow-serving-api` only:

    from irevnet_tf.serving import client
"""
