"""Bring a model in (Keras code, JSON, .keras) and take it out (ONNX, TorchScript, safetensors)."""
