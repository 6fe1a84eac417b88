"""The Python API: `import mnist_zoo as mz; run = mz.train("cnn")`, the same stages the CLI runs."""
