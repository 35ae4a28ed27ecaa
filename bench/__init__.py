"""Benchmarks of irevnet_tf (scripts, not tests): `python -m bench.<name>`."""
