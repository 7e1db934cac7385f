"""The one renderer of tables as Markdown, LaTeX and CSV: cell escaping, header and alignment rows, tabular rows.

The paper tables (tables.py) and the comparison tables (ganbench.compare.report) both write through it; each lays
out its own document (title, caption, notes) around the table lines these functions return. A cell is text, or
None for an empty cell: "–" in Markdown, "--" in LaTeX, "" in CSV.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

Column = tuple[str, str]  # (header, "l" or "r")
Row = Sequence[str | None]


def md_cell(value: str | None) -> str:
    """A Markdown table cell: pipes escaped, line breaks flattened, "–" when empty."""
    if value is None:
        return "–"
    return value.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def markdown_table(columns: Sequence[Column], rows: Sequence[Row]) -> list[str]:
    """The lines of a GitHub Markdown table: header, alignment ("---:" right, "---" left), one line per row."""
    lines = ["| " + " | ".join(md_cell(h) for h, _ in columns) + " |",
             "|" + "|".join("---:" if align == "r" else "---" for _, align in columns) + "|"]
    return lines + ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]


TEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
    "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "·": r"$\cdot$",
    "×": r"$\times$", "–": "--", "—": "---",
}


def tex_text(value: str | None) -> str:
    """Text escaped for LaTeX (specials and the few non-ASCII signs the tables use); "--" when empty."""
    if value is None:
        return "--"
    return "".join(TEX_SPECIAL.get(ch, ch) for ch in value.replace("\n", " "))


def latex_tabular(columns: Sequence[Column], groups: Sequence[Sequence[Row]],
                  rules: tuple[str, str, str] = (r"\toprule", r"\midrule", r"\bottomrule")) -> list[str]:
    """The lines of a tabular: top rule, header, middle rule, the row groups, bottom rule.

    groups: the first follows the header's rule even when empty; each later non-empty one gets a middle rule
    before it. rules: (top, middle, bottom), booktabs' by default, e.g. (r"\\hline",) * 3 without booktabs.
    """
    top, middle, bottom = rules
    spec = "".join(align for _, align in columns)
    lines = [f"\\begin{{tabular}}{{{spec}}}", top,
             " & ".join(tex_text(h) for h, _ in columns) + r" \\", middle]
    for i, group in enumerate(groups):
        if i and group:
            lines.append(middle)
        lines += [" & ".join(tex_text(c) for c in row) + r" \\" for row in group]
    return lines + [bottom, r"\end{tabular}"]


def csv_text(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A CSV file's text: the header line, then one line per row ("\\n" line ends)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()
