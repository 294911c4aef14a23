"""PyTorch models: a module file defining an ``nn.Module`` plus a state dict file.

Shared by problem resolution (to check the files and learn the output signature) and by
the PyTorch toolchain's session (to rebuild the model in the measurement worker). torch is
imported inside the functions: it is optional and slow to import.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from deploybench.errors import ModelError
from deploybench.problems.model_files import ModelInfo, check_model_file
from deploybench.problems.tensors import TensorSpec

_FIX_STATE_DICT = "save the weights with torch.save(model.state_dict(), path)"


def split_module_spec(spec: str) -> tuple[Path, str]:
    """``'path/to/net.py:Net'`` -> (path, class name)."""
    file, sep, class_name = spec.rpartition(":")
    if not sep or not file or not class_name:
        raise ModelError(f"model.module {spec!r} must be 'path/to/file.py:ClassName'")
    return Path(file), class_name


def load_module_class(spec: str) -> type[Any]:
    """Import the file of ``spec`` (under a name derived from its path) and return the class."""
    from torch import nn

    path, class_name = split_module_spec(spec)
    if not path.is_file():
        raise ModelError(f"model.module file {path} does not exist; check problem.model.module")
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    name = f"deploybench_torch_module_{digest}"
    module = sys.modules.get(name)
    if module is None:
        loader_spec = importlib.util.spec_from_file_location(name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise ModelError(f"cannot import {path} as a Python module; name it *.py")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[name] = module
        try:
            loader_spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[name]
            raise ModelError(
                f"importing model.module file {path} failed: {type(exc).__name__}: {exc}"
            ) from None
    cls = getattr(module, class_name, None)
    if cls is None:
        found = sorted(
            key
            for key, value in vars(module).items()
            if isinstance(value, type) and issubclass(value, nn.Module)
        )
        raise ModelError(
            f"{path} defines no class {class_name!r}; nn.Module classes there: "
            f"{', '.join(found) or 'none'}"
        )
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ModelError(f"{path}:{class_name} is not a torch.nn.Module subclass")
    return cls


def load_state_dict(path: Path) -> dict[str, Any]:
    """Read a state dict with ``torch.load(weights_only=True)``: no code from the file runs."""
    import pickle

    import torch

    check_model_file(path)
    try:
        loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ModelError(
            f"{path} is not a plain state dict: it holds Python objects beyond tensors "
            f"(a pickled full model?), which are not loaded for safety; {_FIX_STATE_DICT}"
        ) from None
    except Exception as exc:  # zip, EOF, magic-number errors on a file that is no torch save
        raise ModelError(
            f"{path} is not a torch state dict file ({type(exc).__name__}: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else 'unreadable'}); "
            f"{_FIX_STATE_DICT}"
        ) from None
    if not isinstance(loaded, Mapping) or not all(isinstance(k, str) for k in loaded):
        raise ModelError(
            f"{path} holds a {type(loaded).__name__}, not a state dict "
            f"(a mapping of parameter names to tensors); {_FIX_STATE_DICT}"
        )
    return dict(loaded)


def build_module(spec: str, kwargs: Mapping[str, Any], state_dict: Mapping[str, Any]) -> Any:
    """Instantiate the class with ``kwargs``, load the state dict strictly, switch to eval."""
    cls = load_module_class(spec)
    try:
        model = cls(**dict(kwargs))
    except Exception as exc:
        raise ModelError(
            f"constructing {cls.__name__}(**{dict(kwargs)!r}) failed: "
            f"{type(exc).__name__}: {exc}; check problem.model.kwargs"
        ) from None
    expected = set(model.state_dict())
    given = set(state_dict)
    missing, unexpected = sorted(expected - given), sorted(given - expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {', '.join(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {', '.join(unexpected)}")
        raise ModelError(
            f"the state dict does not fit {cls.__name__}({_kw(kwargs)}): {'; '.join(parts)}; "
            "check model.module and model.kwargs, or save the state dict of this class"
        )
    try:
        model.load_state_dict(dict(state_dict), strict=True)
    except RuntimeError as exc:
        raise ModelError(
            f"the state dict does not fit {cls.__name__}({_kw(kwargs)}): {exc}"
        ) from None
    return model.eval()


def _kw(kwargs: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


def example_inputs(inputs: Sequence[TensorSpec], batch: int = 2) -> tuple[Any, ...]:
    """Zero tensors of the declared shapes (symbolic or unknown dims become ``batch``)."""
    import numpy as np
    import torch

    return tuple(
        torch.from_numpy(
            np.zeros([d if isinstance(d, int) else batch for d in spec.shape], dtype=spec.dtype)
        )
        for spec in inputs
    )


def as_output_list(result: Any) -> list[Any]:
    """A forward() result as a list of tensors (a tensor, or a tuple/list of them)."""
    import torch

    if isinstance(result, torch.Tensor):
        return [result]
    if isinstance(result, (tuple, list)) and all(isinstance(t, torch.Tensor) for t in result):
        return list(result)
    raise ModelError(
        f"forward() returned {type(result).__name__}; only a tensor or a tuple of tensors "
        "is supported"
    )


def inspect_torch(
    path: Path,
    module: str,
    kwargs: Mapping[str, Any],
    inputs: Sequence[TensorSpec],
    output_names: Sequence[str] | None,
) -> ModelInfo:
    """Load the model, run it once on zeros and describe its outputs."""
    import torch

    model = build_module(module, kwargs, load_state_dict(path))
    try:
        with torch.inference_mode():
            outputs = as_output_list(model(*example_inputs(inputs)))
    except ModelError:
        raise
    except Exception as exc:
        rendered = ", ".join(spec.render() for spec in inputs)
        raise ModelError(
            f"running the model on zeros of the declared inputs ({rendered}) failed: "
            f"{type(exc).__name__}: {exc}; check model.inputs"
        ) from None
    if output_names is None:
        names = ["output"] if len(outputs) == 1 else [f"output_{i}" for i in range(len(outputs))]
    elif len(output_names) != len(outputs):
        raise ModelError(
            f"model.outputs names {len(output_names)} outputs but forward() returns {len(outputs)}"
        )
    else:
        names = list(output_names)
    batch_dim = inputs[0].shape[0] if inputs and inputs[0].shape[0] is not None else "N"
    specs = [
        TensorSpec(
            name=name,
            dtype=str(tensor.detach().numpy().dtype),
            shape=[batch_dim, *[int(d) for d in tensor.shape[1:]]],
        )
        for name, tensor in zip(names, outputs, strict=True)
    ]
    layers = sorted({type(m).__name__ for m in model.modules() if not list(m.children())})
    return ModelInfo(format="torch", inputs=list(inputs), outputs=specs, operators=layers)
