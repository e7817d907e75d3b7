"""A DataFrame as a Markdown pipe table: the one table format of the report's text (the Findings, the
original study's tables) and of every DataFrame a chapter shows (:mod:`layerwise.book.render`)."""

from __future__ import annotations

from ..core.errors import LayerwiseError

#: the most columns a table of the report may have: wider tables do not fit A4 in the PDF (Quarto's typst
#: book) nor the HTML text column (``tests/book_layout.py`` checks the executed chapters)
MAX_TABLE_COLUMNS = 6


def markdown_table(df, widths=None) -> str:
    """A DataFrame as a Markdown pipe table (the index is dropped unless it is named; ``|`` escaped).

    ``widths``: relative column widths, written as the number of dashes of each column's separator. When
    a line of the table is longer than 72 characters, pandoc (so Quarto, in HTML and in the PDF) gives
    the table the full text width and each column its share of it, wrapping the cells; without
    ``widths`` every column gets the same share."""
    import pandas as pd

    if df.index.name is not None or isinstance(df.index, pd.MultiIndex):
        df = df.reset_index()

    def cell(v) -> str:
        text = "" if v is None or (isinstance(v, float) and v != v) else str(v)
        return text.replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(cell(c) for c in df.columns) + " |"
    if widths is not None and len(widths) != len(df.columns):
        raise LayerwiseError(f"{len(widths)} column widths for {len(df.columns)} columns", "markdown.markdown_table",
                             "give one width per column")
    rule = "|" + "|".join("-" * max(3, int(w)) for w in (widths or [3] * len(df.columns))) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *rows]) + "\n"
