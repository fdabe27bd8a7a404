"""The HTML report base shared by the audit (pipeline.audit.report) and the evaluation report
(model.eval.report): jinja2 templates with autoescape, plots embedded as PNG data.

Both reports extend ``pipeline/templates/report_base.html.j2`` (page skeleton and styles) and
draw their tables with the ``table`` macro of ``report_macros.html.j2``. Every value a template
prints is escaped by jinja2: a transcript, a rationale or a run name may hold markup, and an
injection attempt must show as text, not run. Nothing here marks text as safe.
"""

from __future__ import annotations

import base64
import functools
import io
from collections.abc import Sequence
from dataclasses import dataclass

import jinja2
import pandas as pd
from matplotlib.figure import Figure

TEMPLATES = "templates"  # the folder of templates inside each package that has reports


@dataclass(frozen=True)
class Cell:
    text: str
    numeric: bool = False  # right-aligned, tabular figures


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[Cell]]


@dataclass(frozen=True)
class Plot:
    alt: str
    src: str  # a data: URI, so the page needs no other file


def plot(fig: Figure, dpi: int, alt: str | None = None) -> Plot:
    """The figure as PNG data; ``alt`` defaults to the first axes' title."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    if alt is None:
        alt = fig.axes[0].get_title() if fig.axes else ""
    return Plot(alt, "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode())


def frame_table(frame: pd.DataFrame, percent: Sequence[str] = ()) -> Table:
    """A data frame with its index as the first column; ``percent`` columns hold shares (0–1)."""
    frame = frame.reset_index()
    rows = []
    for row in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, row, strict=True):
            if value is None or (isinstance(value, float) and pd.isna(value)):
                cells.append(Cell("–", numeric=True))
            elif column in percent:
                cells.append(Cell(f"{100 * value:.1f}%", numeric=True))
            elif isinstance(value, int | float):
                cells.append(Cell(f"{value:g}", numeric=True))
            else:
                cells.append(Cell(str(value)))
        rows.append(cells)
    return Table([str(c).replace("_", " ") for c in frame.columns], rows)


@functools.cache
def _environment(package: str) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(
            [jinja2.PackageLoader(package, TEMPLATES), jinja2.PackageLoader("pipeline", TEMPLATES)]
        ),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a misspelt name fails the render instead of printing nothing
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(package: str, template: str, **context) -> str:
    """Render ``template`` from ``package``'s templates folder (the base and macros come from pipeline's)."""
    return _environment(package).get_template(template).render(**context)
