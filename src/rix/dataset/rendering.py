"""Rendered images (PS3.18 8.3.5, 9.5): pixels → modality LUT → window → 8-bit → JPEG/PNG.

The only place rix decodes pixel data, and only because a caller asked for a picture.
Windowing follows PS3.3 C.11.2.1.2 (linear, or ``sigmoid``/``linear_exact`` when asked);
without a window from the caller or the header, the full pixel range is shown.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image
from pydicom import dcmread
from pydicom.pixels import apply_modality_lut, pixel_array  # type: ignore[attr-defined]

from rix.errors import InvalidQuery, RixError
from rix.store import ObjectStore


class CannotRender(RixError):
    http_status = 406


@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    center: float
    width: float
    function: str = "linear"

    @classmethod
    def parse(cls, text: str) -> Window:
        parts = text.split(",")
        try:
            center, width = float(parts[0]), float(parts[1])
        except (ValueError, IndexError):
            raise InvalidQuery("window must be center,width[,function]") from None
        if not (math.isfinite(center) and math.isfinite(width)):
            raise InvalidQuery("window center and width must be finite numbers")
        function = parts[2].strip().lower() if len(parts) > 2 else "linear"
        if function not in ("linear", "linear_exact", "sigmoid") or width <= 0:
            raise InvalidQuery("window function must be linear, linear_exact or sigmoid, width > 0")
        return cls(center=center, width=width, function=function)


def parse_viewport(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.split(",")[:2])
    except ValueError:
        raise InvalidQuery("viewport must be width,height") from None
    if not (0 < width <= 4096 and 0 < height <= 4096):
        raise InvalidQuery("viewport sides must be 1 to 4096 pixels")
    return width, height


def _first(value: Any) -> float | None:
    """First value of a possibly multi-valued DS (Window Center may list several)."""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        value = value[0] if len(value) else None
    try:
        return None if value in (None, "") else float(value)
    except (TypeError, ValueError):
        return None


def _window(ds: Any, pixels: np.ndarray[Any, Any], asked: Window | None) -> Window:
    if asked is not None:
        return asked
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if center is not None and width is not None and width > 0:
        return Window(center=center, width=width)
    low, high = float(pixels.min()), float(pixels.max())
    return Window(center=(low + high) / 2, width=max(high - low, 1.0))


def to_8bit(pixels: np.ndarray[Any, Any], window: Window) -> np.ndarray[Any, Any]:
    c, w = window.center, window.width
    if window.function == "sigmoid":
        out = 255.0 / (1.0 + np.exp(-4.0 * (pixels - c) / w))
    elif window.function == "linear_exact":
        out = (pixels - (c - w / 2)) / w * 255.0
    else:
        out = ((pixels - (c - 0.5)) / (w - 1 if w > 1 else 1) + 0.5) * 255.0
    return np.clip(out, 0, 255).astype(np.uint8)


def render(
    store: ObjectStore,
    key: str,
    *,
    frame: int = 1,
    window: Window | None = None,
    viewport: tuple[int, int] | None = None,
    media_type: str = "image/jpeg",
    quality: int = 90,
) -> bytes:
    with store.open(key) as f:
        ds = dcmread(f)
    if "PixelData" not in ds:
        raise CannotRender("the instance has no pixel data to render")
    frames = int(ds.get("NumberOfFrames") or 1)
    if not 1 <= frame <= frames:
        raise InvalidQuery(f"frame {frame} does not exist; the instance has {frames}")
    try:
        pixels = pixel_array(ds, index=frame - 1 if frames > 1 else None)
    except Exception as exc:  # a codec missing or broken data: a clear answer, not a 500
        raise CannotRender(f"pixel data cannot be decoded: {type(exc).__name__}") from exc
    colour = ds.get("SamplesPerPixel", 1) == 3
    if colour:
        image = Image.fromarray(_to_uint8_rgb(pixels), "RGB")
    else:
        values = apply_modality_lut(pixels, ds).astype(np.float64)
        grey = to_8bit(values, _window(ds, values, window))
        if ds.get("PhotometricInterpretation") == "MONOCHROME1":
            grey = 255 - grey
        image = Image.fromarray(grey, "L")
    if viewport is not None:
        image.thumbnail(viewport, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if media_type == "image/png":
        image.save(out, "PNG")
    else:
        image.save(out, "JPEG", quality=max(1, min(quality, 100)))
    return out.getvalue()


def _to_uint8_rgb(pixels: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    if pixels.dtype == np.uint8:
        return pixels
    high = float(pixels.max()) or 1.0
    return np.asarray(pixels / high * 255.0, dtype=np.uint8)
