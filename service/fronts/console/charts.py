"""Bar charts as geometry for inline SVG, computed on the server.

Each bar keeps its exact value as text (a decimal string, or None when unknown), so that the
page can carry it in ``data-value`` and ``<title>`` for tests and screen readers; only the
drawn length is approximate. Pure: no I/O, nothing of the service.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

LABEL_WIDTH_PIXELS = 120
PLOT_WIDTH_PIXELS = 300
VALUE_WIDTH_PIXELS = 120
BAR_HEIGHT_PIXELS = 22
BAR_GAP_PIXELS = 8
BARS_MAX = 400  # a chart is read by a person: past this it is a table, and is cut


@dataclass(frozen=True, slots=True)
class Bar:
    key: str  # stable machine name (an aging bucket, a period, an outcome)
    label: str  # what a person reads
    value: str | None  # the exact value as shown; None is unknown, never zero
    y: int
    width: int  # drawn length in pixels
    link: str | None = None  # where the things it counts are listed


@dataclass(frozen=True, slots=True)
class BarChart:
    name: str  # identifies the chart on the page (data-chart)
    title: str
    unit: str  # a currency code, or "deliveries" / "events"
    bars: tuple[Bar, ...]
    width: int
    height: int
    label_width: int = LABEL_WIDTH_PIXELS
    plot_width: int = PLOT_WIDTH_PIXELS

    @property
    def value_x(self) -> int:
        return self.label_width + self.plot_width + 8


def bar_chart(
    name: str,
    title: str,
    unit: str,
    values: Sequence[tuple[str, str, Decimal | int | None, str | None]],
    links: Mapping[str, str] | None = None,
) -> BarChart:
    """Horizontal bars, one per ``(key, label, amount, shown)``; ``shown`` is the exact text;
    ``links`` by key, where what a bar counts is listed.

    Lengths are proportional to the largest known amount; an unknown amount draws no bar.
    Negative amounts (a report never has them, but a chart must not draw backwards) draw none.
    """
    kept = values[:BARS_MAX]
    known = [amount for _, _, amount, _ in kept if amount is not None and amount > 0]
    largest = max(known, default=0)
    bars = []
    for index, (key, label, amount, shown) in enumerate(kept):
        width = 0
        if amount is not None and amount > 0 and largest > 0:
            # At least one pixel, so that a tiny known amount is seen to be there.
            width = max(1, round(PLOT_WIDTH_PIXELS * float(Decimal(amount) / Decimal(largest))))
        y = BAR_GAP_PIXELS + index * (BAR_HEIGHT_PIXELS + BAR_GAP_PIXELS)
        bars.append(Bar(key, label, shown, y, width, (links or {}).get(key)))
    height = BAR_GAP_PIXELS + len(bars) * (BAR_HEIGHT_PIXELS + BAR_GAP_PIXELS)
    return BarChart(
        name=name,
        title=title,
        unit=unit,
        bars=tuple(bars),
        width=LABEL_WIDTH_PIXELS + PLOT_WIDTH_PIXELS + VALUE_WIDTH_PIXELS,
        height=max(height, BAR_HEIGHT_PIXELS + 2 * BAR_GAP_PIXELS),
    )
