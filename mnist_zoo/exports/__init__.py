"""The export stage: a trained model as SavedModel, LiteRT (TFLite) and ONNX files, each verified in its own runtime."""
