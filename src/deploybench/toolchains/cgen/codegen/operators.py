"""The ONNX operators the generator accepts (after constant folding)."""

from __future__ import annotations

# Shape-only operators become buffer aliases; QuantizeLinear/DequantizeLinear come from QDQ
# models. Anything else computed only from constants is folded before this list applies.
ALIAS_OPERATORS: frozenset[str] = frozenset(
    {"Flatten", "Reshape", "Identity", "Squeeze", "Unsqueeze", "Dropout"}
)

SUPPORTED_OPERATORS: tuple[str, ...] = tuple(
    sorted(
        {
            "Add",
            "AveragePool",
            "BatchNormalization",
            "Clip",
            "Conv",
            "DequantizeLinear",
            "Div",
            "Gemm",
            "GlobalAveragePool",
            "MatMul",
            "MaxPool",
            "Mul",
            "QuantizeLinear",
            "Relu",
            "Sigmoid",
            "Softmax",
            "Sub",
            "Tanh",
        }
        | ALIAS_OPERATORS
    )
)
