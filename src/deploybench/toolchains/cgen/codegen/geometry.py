"""Window geometry shared by convolution and pooling (fp32 and int8)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FLOAT_MAX = 3.402823466e38


@dataclass(frozen=True)
class Window2d:
    """A 2-D sliding window over an NCHW tensor with batch 1; bottom/right padding is implied
    by the output size."""

    channels: int
    height: int
    width: int
    out_height: int
    out_width: int
    kernel_h: int
    kernel_w: int
    stride_h: int
    stride_w: int
    pad_top: int
    pad_left: int

    def c_args(self) -> str:
        """``h, w, oh, ow, kh, kw, sh, sw, pt, pl`` as a C argument list."""
        return ", ".join(
            str(v)
            for v in (
                self.height,
                self.width,
                self.out_height,
                self.out_width,
                self.kernel_h,
                self.kernel_w,
                self.stride_h,
                self.stride_w,
                self.pad_top,
                self.pad_left,
            )
        )


def window_2d(
    attrs: dict[str, Any],
    in_shape: tuple[int, ...],
    out_shape: tuple[int, ...],
    kernel: tuple[int, int],
) -> Window2d:
    """Resolve strides and explicit or ``auto_pad`` padding into a ``Window2d``."""
    strides = list(attrs.get("strides", [1, 1]))
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else str(auto_pad)
    _, channels, height, width = in_shape
    out_h, out_w = out_shape[2], out_shape[3]
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads_begin = []
        for size, out, k, s in zip((height, width), (out_h, out_w), kernel, strides, strict=True):
            total = max((out - 1) * s + k - size, 0)
            pads_begin.append(total // 2 if auto_pad == "SAME_UPPER" else total - total // 2)
    elif auto_pad == "VALID":
        pads_begin = [0, 0]
    else:
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        pads_begin = pads[:2]
    return Window2d(
        channels,
        height,
        width,
        out_h,
        out_w,
        kernel[0],
        kernel[1],
        strides[0],
        strides[1],
        pads_begin[0],
        pads_begin[1],
    )
