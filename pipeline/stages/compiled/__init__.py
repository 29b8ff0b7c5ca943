"""The train stage's second artifact: the chosen pipeline compiled to ONNX, admitted for serving
only after its probabilities match scikit-learn's on the test split (`export`); the graph for
gradient boosting (`trees`); and scoring it on onnxruntime from the canonical frame (`runtime`).
"""

from pipeline.stages.compiled.export import ONNX, SKLEARN, Compiled, compile_model, edge_rows, parity, write
from pipeline.stages.compiled.runtime import MISSING_CODE, CompiledModel, CompiledModelError

__all__ = [
    "MISSING_CODE",
    "ONNX",
    "SKLEARN",
    "Compiled",
    "CompiledModel",
    "CompiledModelError",
    "compile_model",
    "edge_rows",
    "parity",
    "write",
]
