"""Create ONNX Runtime sessions that refuse a silent fall-back to another provider."""

from __future__ import annotations

from typing import Any


def create_session(path: str, options: Any, providers: list[str]) -> Any:
    """``InferenceSession`` on exactly ``providers``.

    ONNX Runtime falls back to the CPU provider when a requested one fails to initialise and
    only prints a notice; a benchmark that silently measured another provider would lie, so
    this raises instead.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(path, sess_options=options, providers=providers)
    used = session.get_providers()
    missing = [p for p in providers if p not in used]
    if missing:
        raise RuntimeError(
            f"execution provider(s) {', '.join(missing)} could not be used (onnxruntime fell "
            f"back to {', '.join(used)}); available here: "
            f"{', '.join(ort.get_available_providers())}"
        )
    return session
