"""mnist-zoo: train, evaluate, compare and explain the classic MNIST models."""

__version__ = "0.1.0"
