"""Conversion entry point run by the litert-torch environment's interpreter.

    <env python> -P convert.py convert --module net.py --class-name Net --weights w.pt ...
    <env python> -P convert.py quantize --source model.tflite --output model-int8.tflite ...

litert-torch pins older pydantic and typing-extensions, which shadow the main environment's
in that interpreter; this file therefore imports nothing from deploybench and talks to the
toolchain through command-line arguments, log lines and a JSON result file only.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

# Reported with every conversion (the quantizer's version is needed before it runs).
CONVERTER_PACKAGES = (
    "litert-torch",
    "torch",
    "litert-converter",
    "ai-edge-litert",
    "ai-edge-quantizer",
    "jax",
)


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _log(message: str) -> None:
    print(message, flush=True)


def _load_model(module_file: Path, class_name: str, weights: Path, kwargs: dict[str, Any]) -> Any:
    import torch

    spec = importlib.util.spec_from_file_location("deploybench_litert_user_module", module_file)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot import {module_file} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    model = getattr(module, class_name)(**kwargs)
    state = torch.load(str(weights), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()


def _samples(inputs: list[dict[str, Any]], batch: int, seed: int = 0) -> tuple[Any, ...]:
    """Random tensors of the declared shapes with the batch dimension set to ``batch``."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    tensors = []
    for spec in inputs:
        shape = [batch, *(int(d) for d in spec["shape"][1:])]
        dtype = getattr(torch, spec["dtype"])
        if dtype.is_floating_point:
            tensors.append(torch.randn(shape, generator=generator).to(dtype))
        else:
            tensors.append(torch.zeros(shape, dtype=dtype))
    return tuple(tensors)


def _outputs(result: Any) -> list[Any]:
    return list(result) if isinstance(result, (tuple, list)) else [result]


def convert(args: argparse.Namespace) -> dict[str, Any]:
    """torch → .tflite at a fixed batch size, checked against torch eager."""
    import litert_torch  # type: ignore[import-not-found]
    import torch

    inputs: list[dict[str, Any]] = json.loads(args.inputs)
    model = _load_model(
        Path(args.module), args.class_name, Path(args.weights), json.loads(args.kwargs)
    )
    _log(f"model {args.class_name}: {sum(int(p.numel()) for p in model.parameters())} parameters")
    # A dynamic batch dimension (torch.export.Dim) does not convert with litert-torch 0.10:
    # its JAX lowering asserts on symbolic sizes, so the batch is fixed.
    batch = int(args.batch)
    edge = litert_torch.convert(model, _samples(inputs, batch))
    output = Path(args.output)
    edge.export(str(output))
    # Sanity check in this process: litert-torch's own interpreter against torch eager.
    check = _samples(inputs, batch, seed=1)
    with torch.inference_mode():
        expected = [t.float().numpy() for t in _outputs(model(*check))]
    got = _outputs(edge(*check))
    difference = max(
        float(abs(e - g.astype("float32")).max()) for e, g in zip(expected, got, strict=True)
    )
    _log(f"wrote {output.name} ({output.stat().st_size} bytes); batch: {batch}")
    _log(f"max |tflite - torch eager| on a random batch: {difference:.3g}")
    return {
        "batch": batch,
        "max_abs_difference": difference,
        "versions": {name: _version(name) for name in CONVERTER_PACKAGES},
    }


def quantize(args: argparse.Namespace) -> dict[str, Any]:
    """Dynamic-range INT8 with ai-edge-quantizer (int8 channel-wise weights)."""
    from ai_edge_quantizer import quantizer, recipe  # type: ignore[import-not-found]

    engine = quantizer.Quantizer(args.source)
    engine.load_quantization_recipe(recipe.dynamic_wi8_afp32())
    result = engine.quantize(enable_progress_report=False)
    result.export_model(args.output, overwrite=True)
    before, after = Path(args.source).stat().st_size, Path(args.output).stat().st_size
    _log(f"dynamic_wi8_afp32: {before} -> {after} bytes")
    return {
        "recipe": "dynamic_wi8_afp32",
        "bytes_before": before,
        "bytes_after": after,
        "versions": {"ai-edge-quantizer": _version("ai-edge-quantizer")},
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    conv = commands.add_parser("convert")
    conv.add_argument("--module", required=True)
    conv.add_argument("--class-name", required=True)
    conv.add_argument("--weights", required=True)
    conv.add_argument("--kwargs", default="{}")
    conv.add_argument("--inputs", required=True, help="JSON list of {name, shape, dtype}")
    conv.add_argument("--batch", type=int, default=1, help="the fixed batch size")
    conv.add_argument("--output", required=True)
    conv.add_argument("--result", required=True)
    quant = commands.add_parser("quantize")
    quant.add_argument("--source", required=True)
    quant.add_argument("--output", required=True)
    quant.add_argument("--result", required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command and write its JSON result."""
    args = _parser().parse_args(argv)
    start = time.perf_counter()
    result = convert(args) if args.command == "convert" else quantize(args)
    result["seconds"] = round(time.perf_counter() - start, 3)
    Path(args.result).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
