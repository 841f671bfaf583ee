"""Line charts drawn as inline SVG on the server: no script, no third party, and readable by
a screen reader (a title, a description, and the numbers beside them in a table)."""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 12, 28  # room for the axes' labels


@dataclass(frozen=True)
class Series:
    """One line: its name (also its CSS class, `line-<name>`) and a value per period."""

    name: str
    values: list[int]


def line_chart(chart_id: str, title: str, description: str, labels: list[str],
               lines: list[Series]) -> Markup:
    """An SVG of `lines` over the periods named by `labels` (same length as each line)."""
    top = max([1, *(v for line in lines for v in line.values)])
    span_x = WIDTH - LEFT - RIGHT
    span_y = HEIGHT - TOP - BOTTOM
    step = span_x / max(1, len(labels) - 1)

    def x(n: int) -> float:
        return round(LEFT + n * step, 1)

    def y(value: int) -> float:
        return round(TOP + span_y - value / top * span_y, 1)

    parts = [
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{chart_id}-title '
        f'{chart_id}-desc" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(description)}</desc>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP + span_y}" x2="{WIDTH - RIGHT}" '
        f'y2="{TOP + span_y}"/>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + span_y}"/>',
        f'<text class="tick" x="{LEFT - 6}" y="{TOP + 4}" text-anchor="end">{top}</text>',
        f'<text class="tick" x="{LEFT - 6}" y="{TOP + span_y}" text-anchor="end">0</text>',
    ]
    if labels:
        marks = sorted({0, len(labels) // 2, len(labels) - 1})
        for n in marks:
            anchor = "start" if n == 0 else "end" if n == len(labels) - 1 else "middle"
            parts.append(f'<text class="tick" x="{x(n)}" y="{HEIGHT - 8}" '
                         f'text-anchor="{anchor}">{escape(labels[n])}</text>')
    for line in lines:
        points = " ".join(f"{x(n)},{y(v)}" for n, v in enumerate(line.values))
        parts.append(f'<polyline class="line line-{escape(line.name)}" points="{points}">'
                     f'<title>{escape(line.name)}</title></polyline>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (every text in it is escaped above)
