"""Charts as server-rendered SVG: pure functions from figures to markup, no JS and nothing from
a CDN. Drawn with presentation attributes (fill=..., never style=...), with axes, labels and a
legend, sized by a viewBox so a page or a screenshot scales them. Every value a mark stands for
is on the mark (`data-key`, `data-series`, `data-value`) and in its tooltip (<title>)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

W, H = 640, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 40, 56
FONT = 'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif"'
INK, MUTED, GRID = "#1d2430", "#637083", "#dde2ea"
#: health grades as the console's badges colour them
GRADE_COLOURS = {"green": "#1f8a4c", "yellow": "#c08a00", "red": "#c0392b", "unknown": "#8893a2"}
LOW, HIGH = (238, 243, 252), (36, 85, 195)  # heat map: no accounts .. the most


@dataclass(frozen=True)
class Series:
    name: str
    colour: str
    values: Sequence[float | None]


def nice_max(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 x 10^n at or above `value` (1 for nothing)."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    return next(s * power for s in (1, 2, 2.5, 5, 10) if s * power >= value)


def _top(values: Sequence[float], fmt) -> float:
    """The value axis' top: a nice number, and never below 100% for a percentage."""
    if fmt is percent:  # ticks at quarters of 100%, or of a multiple of 40% above it
        return max(100.0, math.ceil(max(values) / 40) * 40)
    return nice_max(max(values))


def number(value: float) -> str:
    """A tick label: 1,200 / 2.5 / 12k."""
    if abs(value) >= 10_000:
        return f"{value / 1000:,.0f}k"
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def percent(value: float) -> str:
    return f"{value:.0f}%"


def _text(
    x: float,
    y: float,
    label: object,
    anchor: str = "middle",
    fill: str = INK,
    size: int = 12,
    **attrs: object,
) -> str:
    """A label; `attrs` are further attributes (data_key= is data-key=, class_= is class=)."""
    extra = "".join(f' {k.rstrip("_").replace("_", "-")}="{escape(v)}"' for k, v in attrs.items())
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" fill="{fill}"'
        f"{extra}>{escape(label)}</text>"
    )


def _svg(chart_id: str, title: str, body: list[str], height: int = H) -> Markup:
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" id="{escape(chart_id)}" class="chart-svg" '
        f'viewBox="0 0 {W} {height}" role="img" aria-labelledby="{escape(chart_id)}-title" {FONT}>'
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>'
        f'<text x="{LEFT}" y="17" font-size="14" font-weight="600" fill="{INK}">{escape(title)}'
        f"</text>{''.join(body)}</svg>"
    )


def empty(chart_id: str, title: str, message: str, height: int = 120) -> Markup:
    """A chart with nothing to draw says so, in its place."""
    return _svg(chart_id, title, [_text(W / 2, height / 2 + 10, message, fill=MUTED)], height)


def _legend(series: Sequence[Series]) -> list[str]:
    out, x = ['<g class="legend">'], float(LEFT)
    for s in series:
        out.append(f'<rect x="{x:.1f}" y="24" width="10" height="10" fill="{s.colour}"/>')
        out.append(_text(x + 14, 33, s.name, anchor="start"))
        x += 26 + 7 * len(s.name)
    return [*out, "</g>"]


def _y_axis(top: float, fmt, height: int = H) -> list[str]:
    """Five gridlines from 0 to `top`, labelled on the left, and the baseline."""
    plot = height - TOP - BOTTOM
    out = ['<g class="y-axis">']
    for i in range(5):
        value = top * i / 4
        y = height - BOTTOM - plot * i / 4
        colour = INK if i == 0 else GRID
        out.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}" stroke="{colour}"/>'
        )
        out.append(_text(LEFT - 6, y + 4, fmt(value), anchor="end", fill=MUTED))
    return [*out, "</g>"]


def _x_labels(categories: Sequence[str], band: float, height: int = H) -> list[str]:
    """A label under each band; turned when they would run into each other."""
    turn = band < 7 * max((len(c) for c in categories), default=1)
    out = ['<g class="x-axis">']
    for i, label in enumerate(categories):
        x, y = LEFT + band * (i + 0.5), height - BOTTOM + 16
        if turn:
            out.append(_text(x, y, label, anchor="end", transform=f"rotate(-35 {x:.1f} {y:.1f})"))
        else:
            out.append(_text(x, y, label))
    return [*out, "</g>"]


def _bar(x: float, y: float, w: float, h: float, colour: str, key: str, s: str, v: object) -> str:
    return (
        f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{max(h, 0):.1f}" '
        f'fill="{colour}" data-key="{escape(key)}" data-series="{escape(s)}" '
        f'data-value="{escape(v)}"><title>{escape(key)}: {escape(s)} {escape(v)}</title></rect>'
    )


def stacked_bars(chart_id: str, title: str, categories: Sequence[str], series: Sequence[Series]):
    """One bar per category, its series stacked bottom up, the total above it."""
    totals = [sum(s.values[i] or 0 for s in series) for i in range(len(categories))]
    if not any(totals):
        return empty(chart_id, title, "Nothing to show")
    top, plot = nice_max(max(totals)), H - TOP - BOTTOM
    band = (W - LEFT - RIGHT) / len(categories)
    body = [*_legend(series), *_y_axis(top, number)]
    for i, key in enumerate(categories):
        x, base = LEFT + band * (i + 0.15), H - BOTTOM
        for s in series:
            value = s.values[i] or 0
            if value:
                h = plot * value / top
                base -= h
                body.append(_bar(x, base, band * 0.7, h, s.colour, key, s.name, number(value)))
        label = number(totals[i])
        body.append(_text(x + band * 0.35, base - 4, label, class_="total", data_key=key))
    return _svg(chart_id, title, [*body, *_x_labels(categories, band)])


def grouped_bars(
    chart_id: str, title: str, categories: Sequence[str], series: Sequence[Series], fmt=percent
):
    """Bars side by side per category; a category with no value at all is marked "–"."""
    values = [v for s in series for v in s.values if v is not None]
    if not values:
        return empty(chart_id, title, "Nothing decided in this period yet")
    top, plot = _top(values, fmt), H - TOP - BOTTOM
    band = (W - LEFT - RIGHT) / len(categories)
    width = band * 0.8 / len(series)
    body = [*_legend(series), *_y_axis(top, fmt)]
    for i, key in enumerate(categories):
        if all(s.values[i] is None for s in series):
            body.append(_text(LEFT + band * (i + 0.5), H - BOTTOM - 5, "–", fill=MUTED))
        for j, s in enumerate(series):
            x, value = LEFT + band * (i + 0.1) + width * j, s.values[i]
            if value is not None:
                h = plot * value / top
                body.append(_bar(x, H - BOTTOM - h, width, h, s.colour, key, s.name, fmt(value)))
    return _svg(chart_id, title, [*body, *_x_labels(categories, band)])


def lines(
    chart_id: str, title: str, categories: Sequence[str], series: Sequence[Series], fmt=percent
):
    """A line per series through its points; a missing value breaks the line."""
    values = [v for s in series for v in s.values if v is not None]
    if not values:
        return empty(chart_id, title, "Nothing decided in this period yet")
    top, plot = _top(values, fmt), H - TOP - BOTTOM
    band = (W - LEFT - RIGHT) / len(categories)
    body = [*_legend(series), *_y_axis(top, fmt)]
    for s in series:
        at = [
            None if v is None else (LEFT + band * (i + 0.5), H - BOTTOM - plot * v / top)
            for i, v in enumerate(s.values)
        ]
        body += _polylines(at, s.colour)
        for i, xy in enumerate(at):
            if xy is not None:
                body.append(_point(xy, s, categories[i], fmt(s.values[i])))
    return _svg(chart_id, title, [*body, *_x_labels(categories, band)])


def _polylines(at: list[tuple[float, float] | None], colour: str) -> list[str]:
    """The line through consecutive points (a gap where a point is missing)."""
    runs: list[list[str]] = [[]]
    for xy in at:
        if xy is None:
            runs.append([])
        else:
            runs[-1].append(f"{xy[0]:.1f},{xy[1]:.1f}")
    return [
        f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" stroke-width="2"/>'
        for run in runs
        if len(run) > 1
    ]


def _point(xy: tuple[float, float], s: Series, key: str, shown: str) -> str:
    return (
        f'<circle class="point" cx="{xy[0]:.1f}" cy="{xy[1]:.1f}" r="4" fill="{s.colour}" '
        f'data-key="{escape(key)}" data-series="{escape(s.name)}" data-value="{escape(shown)}">'
        f"<title>{escape(key)}: {escape(s.name)} {escape(shown)}</title></circle>"
    )


def horizontal_bars(
    chart_id: str, title: str, items: Sequence[tuple[str, float]], colour: str, series: str
):
    """A bar per label, in the order given, its value at its end."""
    if not items:
        return empty(chart_id, title, "Nothing to show")
    left = min(240, 20 + 7 * max(len(label) for label, _ in items))
    row, top = 28, nice_max(max(v for _, v in items))
    height = TOP + row * len(items) + 16
    span = W - left - RIGHT - 40
    body = []
    for i, (label, value) in enumerate(items):
        y = TOP + row * i
        body.append(_text(left - 8, y + row / 2 + 4, label, anchor="end"))
        w = span * value / top
        body.append(_bar(left, y + 4, w, row - 8, colour, label, series, number(value)))
        body.append(_text(left + w + 6, y + row / 2 + 4, number(value), anchor="start"))
    body.append(f'<line x1="{left}" y1="{TOP}" x2="{left}" y2="{height - 16}" stroke="{INK}"/>')
    return _svg(chart_id, title, body, height)


def _shade(share: float) -> str:
    r, g, b = (round(lo + (hi - lo) * share) for lo, hi in zip(LOW, HIGH, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def heat_map(chart_id: str, title: str, matrix: dict[str, dict[str, int]], rows_label: str = ""):
    """Rows x columns of cells shaded by their count (darker: more), the count in each."""
    rows = list(matrix)
    cols = sorted({c for row in matrix.values() for c in row})
    if not rows or not cols:
        return empty(chart_id, title, "No two recorded periods to compare yet")
    left = min(220, 20 + 7 * max(len(r) for r in rows))
    head, cell_h = TOP + 36, 32
    cell_w = (W - left - RIGHT) / len(cols)
    height = head + cell_h * len(rows) + 8
    most = max(n for row in matrix.values() for n in row.values()) or 1
    body = [_text(left - 8, head - 8, rows_label, anchor="end", fill=MUTED)] if rows_label else []
    for j, col in enumerate(cols):
        words = _wrap(col, cell_w)
        for k, word in enumerate(words):
            y = head - 8 - 14 * (len(words) - 1 - k)
            body.append(_text(left + cell_w * (j + 0.5), y, word, font_weight="600"))
    for i, src in enumerate(rows):
        y = head + cell_h * i
        body.append(_text(left - 8, y + cell_h / 2 + 4, src, anchor="end"))
        for j, dst in enumerate(cols):
            n = matrix[src].get(dst, 0)
            x = left + cell_w * j
            body.append(
                f'<rect class="cell" x="{x:.1f}" y="{y}" width="{cell_w - 2:.1f}" '
                f'height="{cell_h - 2}" fill="{_shade(n / most)}" data-from="{escape(src)}" '
                f'data-to="{escape(dst)}" data-value="{n}"><title>{escape(src)} -> '
                f"{escape(dst)}: {n}</title></rect>"
            )
            ink = "#ffffff" if n / most > 0.5 else INK
            body.append(_text(x + cell_w / 2 - 1, y + cell_h / 2 + 4, n, fill=ink))
    return _svg(chart_id, title, body, height)


def _wrap(label: str, width: float) -> list[str]:
    """A column label in one line, or two split at the space (or _) nearest its middle."""
    if 7 * len(label) <= width - 6:
        return [label]
    spaces = [i for i, ch in enumerate(label) if ch in " _"]
    if not spaces:
        return [label]
    cut = min(spaces, key=lambda i: abs(i - len(label) / 2))
    return [label[:cut], label[cut + 1 :]]
