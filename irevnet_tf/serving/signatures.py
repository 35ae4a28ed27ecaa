"""The names of the exported models, as the model server serves them.

The export (`export/export_lib.py`) writes two SavedModels under these
names and the client (`irevnet_tf.serving.client`) addresses them by them:

    irevnet_forward   serving_default: images -> logits, probabilities,
                                                features
    irevnet_inverse   serving_default: features -> images

Every tensor is float32. The forward's `features` output is the inverse's
`features` input.
"""

# Model names: the directories under the export's --output_dir and the
# names in its models.config.
FORWARD_NAME = "irevnet_forward"
INVERSE_NAME = "irevnet_inverse"

# The one signature of each SavedModel (TF Serving's default).
SIGNATURE_NAME = "serving_default"

IMAGES = "images"
LOGITS = "logits"
PROBABILITIES = "probabilities"
FEATURES = "features"

FORWARD_INPUT = IMAGES
FORWARD_OUTPUTS = (LOGITS, PROBABILITIES, FEATURES)
INVERSE_INPUT = FEATURES
INVERSE_OUTPUTS = (IMAGES,)

# The model server's default ports.
GRPC_PORT = 8500
REST_PORT = 8501
