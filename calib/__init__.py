"""INT8 post-training quantization: calibration data and explicit symmetric Q/DQ ONNX."""
