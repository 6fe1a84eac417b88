"""The export formats and quantizations, by the names the command line and the JSON reports use."""

EXPORT_FORMATS = ("savedmodel", "tflite", "onnx")
QUANTIZATIONS = ("none", "float16", "int8")
