"""Training configuration: the run's settings and the recipes' defaults."""
