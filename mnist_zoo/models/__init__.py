"""The model registry, the builders, their shared layer options, and the layer summary (parameters, MACs)."""
