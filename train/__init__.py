"""The i-RevNet training program: `python -m train.train` (see train_lib)."""
