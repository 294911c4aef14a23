"""OpenVINO CPU properties: from the config, and what the compiled model reports back.

Nothing here imports openvino at module level; the functions that need it take the runtime's
objects as arguments or import it themselves.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from deploybench.toolchains.openvino.config import OpenVinoConfig

DEVICE = "CPU"
# What the CPU plugin lists in OPTIMIZATION_CAPABILITIES when it has native kernels.
PRECISION_CAPABILITY = {"bf16": "BF16", "f16": "FP16"}
# /proc/cpuinfo flags that give the CPU plugin those kernels (for targets that are not here).
PRECISION_ISA = {"bf16": ("avx512_bf16", "amx_bf16"), "f16": ("avx512_fp16", "amx_fp16")}
INT8_PRECISIONS = frozenset({"i8", "u8"})


def inference_precision(precision: str) -> str:
    """INFERENCE_PRECISION_HINT for a config precision: int8 keeps unquantized layers in f32."""
    return "f32" if precision == "int8" else precision


def session_config(cfg: OpenVinoConfig) -> dict[str, Any]:
    """What the deployable carries for the session factory."""
    return {
        "device": DEVICE,
        "precision": cfg.precision,
        "hint": cfg.hint,
        "streams": cfg.streams,
        "threads": cfg.threads,
    }


def compile_properties(config: Mapping[str, Any], threads: int | None = None) -> dict[str, str]:
    """Properties passed to ``compile_model`` (strings, as benchmark_app's -load_config takes).

    ``threads`` is the environment's thread count, used when the config sets none.
    """
    properties = {
        "INFERENCE_PRECISION_HINT": inference_precision(str(config["precision"])),
        "PERFORMANCE_HINT": str(config["hint"]).upper(),
    }
    if config.get("streams", "auto") != "auto":
        properties["NUM_STREAMS"] = str(config["streams"])
    chosen = config.get("threads") or threads
    if chosen:
        properties["INFERENCE_NUM_THREADS"] = str(chosen)
    return properties


def type_name(value: Any) -> str:
    """``f32`` for an ``openvino.Type``; ``str(value)`` for anything else."""
    getter = getattr(value, "get_type_name", None)
    return str(getter()) if callable(getter) else str(value)


def runtime_precisions(compiled: Any) -> dict[str, int]:
    """How many nodes of the executed graph run in each precision (u8, i8, f32, bf16...)."""
    counts: Counter[str] = Counter()
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        if "runtimePrecision" in info:
            counts[str(info["runtimePrecision"].astype(str))] += 1
    return dict(sorted(counts.items()))


def compiled_facts(compiled: Any) -> dict[str, Any]:
    """What the compiled model actually does, read back from the plugin."""
    return {
        "inference_precision": type_name(compiled.get_property("INFERENCE_PRECISION_HINT")),
        "execution_devices": list(compiled.get_property("EXECUTION_DEVICES")),
        "performance_hint": str(compiled.get_property("PERFORMANCE_HINT")).lower(),
        "num_streams": int(compiled.get_property("NUM_STREAMS")),
        "inference_num_threads": int(compiled.get_property("INFERENCE_NUM_THREADS")),
        "runtime_precisions": runtime_precisions(compiled),
    }


def precision_mismatch(precision: str, facts: Mapping[str, Any]) -> str | None:
    """Why what ran differs from the precision asked for, or None when it matches."""
    expected = inference_precision(precision)
    reported = facts["inference_precision"]
    if reported != expected:
        return (
            f"precision '{precision}' asks INFERENCE_PRECISION_HINT={expected} but the "
            f"{DEVICE} plugin compiled the model with {reported}"
        )
    ran = facts.get("runtime_precisions") or {}
    if precision == "int8" and ran and not INT8_PRECISIONS.intersection(ran):
        return (
            "precision 'int8' was asked but no layer of the compiled model runs in i8/u8 "
            f"(runtime precisions: {ran})"
        )
    return None


def host_capabilities() -> list[str]:
    """OPTIMIZATION_CAPABILITIES of this machine's CPU plugin (imports openvino)."""
    import openvino as ov  # type: ignore[import-untyped]

    return [str(item) for item in ov.Core().get_property(DEVICE, "OPTIMIZATION_CAPABILITIES")]


def precision_supported(
    precision: str, capabilities: Iterable[str] | None, isa_features: Iterable[str]
) -> bool:
    """Whether the CPU runs ``precision`` natively: the plugin's own capabilities when known
    (a target on this machine), else the target's ISA flags."""
    if precision not in PRECISION_CAPABILITY:
        return True
    if capabilities is not None:
        return PRECISION_CAPABILITY[precision] in set(capabilities)
    return bool(set(PRECISION_ISA[precision]).intersection(isa_features))
