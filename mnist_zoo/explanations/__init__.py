"""Explain: what a trained network learned (weights, feature maps) and why it answered (attributions)."""

PARTS = ("weights", "feature-maps", "attributions", "mistakes")
"""What explain can picture; by default every part the model has."""
