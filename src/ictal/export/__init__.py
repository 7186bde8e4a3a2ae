"""``ictal export``: a checkpoint as an ONNX or TorchScript model with a JSON sidecar."""
