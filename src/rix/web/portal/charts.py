"""Server-drawn SVG charts for the portal: geometry computed here, markup in templates.

No script and no ``style`` attribute (the pages' ``style-src 'self'``): bars and lines are
coloured by SVG presentation attributes and classes of the portal's stylesheet. Used by
the status page (objects per hour) and the turnaround dashboard (backlog and trend).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

BAR_WIDTH = 20  # SVG user units per column
BAR_HEIGHT = 120  # the tallest bar
LABEL_ROOM = 20  # below the bars, for the labels


@dataclass(frozen=True, slots=True, kw_only=True)
class Bar:
    """One column's bar, in SVG user units (y grows downwards)."""

    x: int
    y: int
    height: int
    count: float
    label: str
    tick: bool  # whether the column is labelled under the axis


@dataclass(frozen=True, slots=True, kw_only=True)
class Point:
    x: float
    y: float
    value: float
    label: str


def columns(
    values: Sequence[float],
    labels: Sequence[str],
    *,
    width: int = BAR_WIDTH,
    height: int = BAR_HEIGHT,
    tick: Callable[[int], bool] = lambda _: True,
    top: float | None = None,
) -> list[Bar]:
    """Bars scaled so the largest (or ``top``) is ``height`` tall; a non-zero value is at
    least 2 units, so it is never drawn as none."""
    top = max(values, default=0) if top is None else top
    drawn = []
    for i, (value, label) in enumerate(zip(values, labels, strict=True)):
        tall = 0 if not top else round(value / top * height)
        if value:
            tall = max(tall, 2)
        drawn.append(
            Bar(
                x=i * width + 2,
                y=height - tall,
                height=tall,
                count=value,
                label=label,
                tick=tick(i),
            )
        )
    return drawn


def line(
    values: Sequence[float | None],
    labels: Sequence[str],
    *,
    width: int = BAR_WIDTH,
    height: int = BAR_HEIGHT,
) -> list[Point]:
    """Points at the middle of each column (a gap where a value is None), the largest at
    the top."""
    top = max((v for v in values if v is not None), default=0.0)
    room = height - 6  # a point at the top is drawn whole
    return [
        Point(
            x=i * width + width / 2,
            y=height - (value / top * room if top else 0.0),
            value=value,
            label=label,
        )
        for i, (value, label) in enumerate(zip(values, labels, strict=True))
        if value is not None
    ]


def polyline(points: Sequence[Point]) -> str:
    """The ``points`` attribute of an SVG polyline."""
    return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in points)
