"""mnist-zoo: train, evaluate, compare and explain the classic MNIST models."""

import os

__version__ = "0.1.0"

# TensorFlow turns its oneDNN kernels on by itself only on CPUs with AVX-512 VNNI/BF16 or AMX.
# Elsewhere (AVX2 machines) it falls back to Eigen convolution gradients about 2x slower; a CNN
# training step takes ~0.7x the time with oneDNN (scripts/profile_training.py, docs/benchmarks.md).
# It must be set before TensorFlow is imported; an explicit TF_ENABLE_ONEDNN_OPTS=0 still wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
