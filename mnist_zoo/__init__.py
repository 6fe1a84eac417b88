"""mnist-zoo: train, evaluate, compare and explain the classic MNIST models."""

import os

__version__ = "0.1.0"

# TensorFlow turns its oneDNN kernels on by itself only on CPUs with AVX-512 VNNI/BF16 or AMX.
# Elsewhere (AVX2 machines) it falls back to Eigen convolution gradients that are 2-3x slower;
# the CNN trains 1.2-1.7x faster with oneDNN (docs/benchmarks.md). It must be set before
# TensorFlow is imported; an explicit TF_ENABLE_ONEDNN_OPTS=0 from the user still wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
