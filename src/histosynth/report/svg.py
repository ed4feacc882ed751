"""Small, dependency-free SVG charts for the report: bars with error bars, scatter, lines.

Each function returns one ``<svg>`` element as a string (inline in the page, so the report stays
one self-contained file). Sizes are in CSS pixels; text is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

__all__ = ["PALETTE", "bar_chart", "line_chart", "scatter_chart"]

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")  # fmt: skip
_FONT = 'font-family="system-ui, sans-serif" font-size="11"'


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (Heckbert's nice numbers)."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=10 * mag)
    start = math.floor(lo / step) * step
    return [start + i * step for i in range(int(math.ceil((hi - start) / step)) + 1)]


def _fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.2e}"


class _Frame:
    """A plot area with linear axes; maps data coordinates to SVG pixels."""

    def __init__(self, width: int, height: int, xlim, ylim, left: int = 52, bottom: int = 40, top: int = 26,
                 right: int = 12) -> None:  # fmt: skip
        self.w, self.h = width, height
        self.x0, self.x1 = left, width - right
        self.y0, self.y1 = height - bottom, top
        self.xlim, self.ylim = xlim, ylim

    def x(self, v: float) -> float:
        lo, hi = self.xlim
        return self.x0 + (v - lo) / ((hi - lo) or 1.0) * (self.x1 - self.x0)

    def y(self, v: float) -> float:
        lo, hi = self.ylim
        return self.y0 - (v - lo) / ((hi - lo) or 1.0) * (self.y0 - self.y1)

    def axes(self, title: str, xlabel: str, ylabel: str, yticks: Sequence[float], xticks=None) -> list[str]:
        out = [f'<text x="{self.w / 2:.0f}" y="15" text-anchor="middle" {_FONT} font-weight="600">{escape(title)}</text>',
               f'<line x1="{self.x0}" y1="{self.y0}" x2="{self.x1}" y2="{self.y0}" stroke="#444"/>',
               f'<line x1="{self.x0}" y1="{self.y0}" x2="{self.x0}" y2="{self.y1}" stroke="#444"/>']  # fmt: skip
        for t in yticks:
            y = self.y(t)
            out.append(f'<line x1="{self.x0}" y1="{y:.1f}" x2="{self.x1}" y2="{y:.1f}" stroke="#e4e4e4"/>')
            out.append(f'<text x="{self.x0 - 4}" y="{y + 4:.1f}" text-anchor="end" {_FONT}>{_fmt(t)}</text>')
        for t in xticks or []:
            x = self.x(t)
            out.append(f'<text x="{x:.1f}" y="{self.y0 + 14}" text-anchor="middle" {_FONT}>{_fmt(t)}</text>')
        out.append(f'<text x="{(self.x0 + self.x1) / 2:.0f}" y="{self.h - 6}" text-anchor="middle" {_FONT}>'
                   f"{escape(xlabel)}</text>")  # fmt: skip
        out.append(f'<text transform="translate(12 {(self.y0 + self.y1) / 2:.0f}) rotate(-90)" text-anchor="middle" '
                   f"{_FONT}>{escape(ylabel)}</text>")  # fmt: skip
        return out


def _svg(width: int, height: int, body: list[str], label: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}">' + "".join(body) + "</svg>")  # fmt: skip


def _legend(names: Sequence[str], x: float, y: float) -> list[str]:
    out = []
    for i, name in enumerate(names):
        yy = y + 14 * i
        out.append(
            f'<rect x="{x:.0f}" y="{yy - 8:.0f}" width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/>'
        )
        out.append(f'<text x="{x + 14:.0f}" y="{yy + 1:.0f}" {_FONT}>{escape(name)}</text>')
    return out


def bar_chart(
    values: Mapping[str, Mapping[str, float | None]],
    title: str,
    ylabel: str,
    errors: Mapping[str, Mapping[str, tuple[float, float] | None]] | None = None,
    width: int = 420,
    height: int = 240,
) -> str:
    """Grouped bars: ``values[group][series]``, optional ``errors[group][series] = (low, high)``."""
    groups = list(values)
    series = list(dict.fromkeys(s for g in groups for s in values[g]))
    nums = [v for g in groups for v in values[g].values() if v is not None and math.isfinite(v)]
    for g in errors or {}:
        nums += [hi for e in errors[g].values() if e for hi in e[1:] if hi is not None and math.isfinite(hi)]
    top = max(nums + [0.0]) * 1.08 or 1.0
    ticks = _ticks(min(0.0, min(nums, default=0.0)), top)
    legend_w = 12 + 7 * max((len(s) for s in series), default=0)
    long = max((len(g) for g in groups), default=0)
    # Group labels wider than their slot are slanted; the plot gives up height for them.
    slant = long * 6.5 > (width - legend_w - 80) / max(len(groups), 1)
    bottom = int(28 + 3.4 * long) if slant else 40
    fr = _Frame(
        width, height, (0, max(len(groups), 1)), (ticks[0], ticks[-1]), right=legend_w + 16, bottom=bottom
    )
    body = fr.axes(title, "", ylabel, ticks)
    slot = (fr.x1 - fr.x0) / max(len(groups), 1)
    bw = slot * 0.8 / max(len(series), 1)
    for gi, g in enumerate(groups):
        gx = fr.x0 + gi * slot + slot * 0.1
        lx = gx + slot * 0.4
        if slant:
            body.append(f'<text transform="translate({lx:.1f} {fr.y0 + 10}) rotate(-35)" text-anchor="end" '
                        f"{_FONT}>{escape(g)}</text>")  # fmt: skip
        else:
            body.append(
                f'<text x="{lx:.1f}" y="{fr.y0 + 14}" text-anchor="middle" {_FONT}>{escape(g)}</text>'
            )
        for si, s in enumerate(series):
            v = values[g].get(s)
            if v is None or not math.isfinite(v):
                continue
            x, y, y0 = gx + si * bw, fr.y(v), fr.y(max(0.0, ticks[0]))
            colour = PALETTE[si % len(PALETTE)]
            body.append(f'<rect x="{x:.1f}" y="{min(y, y0):.1f}" width="{bw * 0.92:.1f}" height="{abs(y0 - y):.1f}" '
                        f'fill="{colour}"><title>{escape(f"{g} / {s}: {_fmt(v)}")}</title></rect>')  # fmt: skip
            err = (errors or {}).get(g, {}).get(s)
            if err and None not in err:
                cx = x + bw * 0.46
                lo, hi = fr.y(err[0]), fr.y(err[1])
                body.append(f'<path d="M{cx:.1f} {lo:.1f}V{hi:.1f}M{cx - 3:.1f} {lo:.1f}h6M{cx - 3:.1f} {hi:.1f}h6" '
                            'stroke="#222" fill="none"/>')  # fmt: skip
    body += _legend(series, fr.x1 + 10, fr.y1 + 8)
    return _svg(width, height, body, title)


def scatter_chart(
    points: Sequence[tuple[str, str, float, float]],
    title: str,
    xlabel: str,
    ylabel: str,
    lim: tuple[float, float] = (0.0, 1.0),
    width: int = 360,
    height: int = 300,
) -> str:
    """Points ``(series, label, x, y)`` on square axes ``lim`` (precision/recall)."""
    series = list(dict.fromkeys(p[0] for p in points))
    labels = list(dict.fromkeys(p[1] for p in points))
    legend_w = 12 + 7 * max((len(s) for s in series + labels), default=0)
    fr = _Frame(width, height, lim, lim, right=legend_w + 16)
    ticks = _ticks(*lim)
    ticks = [t for t in ticks if lim[0] <= t <= lim[1]]
    body = fr.axes(title, xlabel, ylabel, ticks, ticks)
    marks = ("circle", "square", "diamond", "triangle")
    for series_name, label, x, y in points:
        if x is None or y is None:
            continue
        colour = PALETTE[series.index(series_name) % len(PALETTE)]
        px, py, shape = fr.x(x), fr.y(y), marks[labels.index(label) % len(marks)]
        tip = f"<title>{escape(f'{series_name} / {label}: ({_fmt(x)}, {_fmt(y)})')}</title>"
        body.append(_mark(shape, px, py, colour, tip))
    body += _legend(series, fr.x1 + 10, fr.y1 + 8)
    for i, label in enumerate(labels):
        yy = fr.y1 + 8 + 14 * (len(series) + 1 + i)
        body.append(_mark(marks[i % len(marks)], fr.x1 + 15, yy - 3, "#666", ""))
        body.append(f'<text x="{fr.x1 + 24:.0f}" y="{yy + 1:.0f}" {_FONT}>{escape(label)}</text>')
    return _svg(width, height, body, title)


def _mark(shape: str, x: float, y: float, colour: str, tip: str) -> str:
    if shape == "circle":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{colour}" fill-opacity="0.85">{tip}</circle>'
    if shape == "square":
        return f'<rect x="{x - 4.5:.1f}" y="{y - 4.5:.1f}" width="9" height="9" fill="{colour}">{tip}</rect>'
    pts = {"diamond": [(0, -6), (6, 0), (0, 6), (-6, 0)], "triangle": [(0, -6), (6, 5), (-6, 5)]}[shape]
    d = " ".join(f"{x + dx:.1f},{y + dy:.1f}" for dx, dy in pts)
    return f'<polygon points="{d}" fill="{colour}">{tip}</polygon>'


def line_chart(
    series: Mapping[str, Sequence[tuple[float, float]]],
    title: str,
    xlabel: str,
    ylabel: str,
    log_y: bool = False,
    width: int = 420,
    height: int = 240,
) -> str:
    """One polyline per series of (x, y) points; ``log_y`` plots log10(y) for positive y."""
    clean = {
        k: [(x, math.log10(y) if log_y else y) for x, y in pts
            if y is not None and math.isfinite(y) and (y > 0 or not log_y)]
        for k, pts in series.items()
    }  # fmt: skip
    xs = [x for pts in clean.values() for x, _ in pts] or [0.0, 1.0]
    ys = [y for pts in clean.values() for _, y in pts] or [0.0, 1.0]
    xt, yt = _ticks(min(xs), max(xs)), _ticks(min(ys), max(ys))
    legend_w = 12 + 7 * max((len(s) for s in clean), default=0)
    fr = _Frame(width, height, (xt[0], xt[-1]), (yt[0], yt[-1]), right=legend_w + 16)
    body = fr.axes(title, xlabel, f"log10 {ylabel}" if log_y else ylabel, yt, xt)
    for i, (name, pts) in enumerate(clean.items()):
        if not pts:
            continue
        d = " ".join(f"{fr.x(x):.1f},{fr.y(y):.1f}" for x, y in sorted(pts))
        body.append(f'<polyline points="{d}" fill="none" stroke="{PALETTE[i % len(PALETTE)]}" stroke-width="1.5">'
                    f"<title>{escape(name)}</title></polyline>")  # fmt: skip
    body += _legend(list(clean), fr.x1 + 10, fr.y1 + 8)
    return _svg(width, height, body, title)
