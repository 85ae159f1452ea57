"""`diplotag report`: what a tagged collection says. Stance by holder × label, monthly counts per
label and per holder, the top holders' support/oppose balance: CSV, Markdown, PNG plots, and one
HTML page whose cells link to the statements behind them, each shown in its article.

It streams, so that a collection of any size runs in flat memory: records are read one line at a
time, flattened to one small row per statement, and every `chunk_size` records the rows are reduced
to counts (pandas groupby) and added to running totals. Beyond the totals only the capped examples
per holder × label cell are kept, and a linked article is rendered to its page when it is first
linked, so no record is held once it has been read.
"""
import base64
import html
import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd

from ..model.batch import render_html

STANCES = ["support", "oppose", "neutral"]
NOT_HOLDERS = ("none", "unknown")  # nobody holds the statement; the output predates holders
MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")  # the month of "YYYY-MM-DD" (or of a fuller ISO time)
TABLES = {"stance_by_holder_label": "Stance by holder × label", "holder_balance": "Top holders: support/oppose balance",
          "monthly_by_label": "Monthly statements per label", "monthly_by_holder": "Monthly statements per holder"}
NOTES = {"stance_by_holder_label": "Shares are of the cell's statements.",
         "holder_balance": "balance = support share − oppose share (holders other than none and unknown)."}
EMPTY = "No statement has a holder other than none or unknown."  # the one table that can be empty
STANCE_COLOURS = {"support": "#2a9d3a", "oppose": "#d1423f", "neutral": "#a8a8a8"}


def read_tagged(paths):
    """(where, record) for every line of the files (`-` is stdin). A line that is not a JSON object
    (a torn last line after a crash, say) becomes an error record rather than stopping the report."""
    for path in paths:
        f = sys.stdin if path == "-" else open(path, encoding="utf-8")
        with f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    record = None
                if not isinstance(record, dict):
                    record = {"id": f"{path}:{lineno}", "error": "not a JSON object"}
                yield f"{path}:{lineno}", record


def month_of(record) -> str | None:
    meta = record.get("meta")
    date = meta.get("date") if isinstance(meta, dict) else None
    match = MONTH.match(date) if isinstance(date, str) else None
    return match.group(0) if match else None


def _plus(total, counts):
    return counts if total is None else total.add(counts, fill_value=0)


class Totals:
    """Running counts of a collection, and the capped examples per holder × label cell."""

    def __init__(self, out: Path, examples: int):
        self.out, self.cap = out, examples
        self.docs = Counter()
        self.cells = self.month_label = self.month_holder = None  # pandas Series of counts
        self.examples = defaultdict(list)  # (holder, label) -> [(stance, statement, page, doc id)]
        self.pages = 0

    def take(self, where: str, record: dict) -> list[tuple]:
        """Count the document; return one row (holder, label, stance, month) per statement."""
        self.docs["documents"] += 1
        month = month_of(record)
        spans = record.get("spans") or []
        if "spans" not in record:  # as model/batch.py: an untagged record; its `error` says why
            self.docs["errors"] += 1
        if month is None:
            self.docs["undated documents"] += 1
            self.docs["undated statements"] += len(spans)
        if not spans:
            return []
        self.docs["with statements"] += 1
        self.docs["statements"] += len(spans)
        rows = [(s.get("holder") or "unknown", s.get("label") or "unknown", s.get("stance") or "unknown", month)
                for s in spans]
        page = f"articles/{self.pages + 1:05d}.html"
        linked = False
        for (holder, label, stance, _), s in zip(rows, spans):
            cell = self.examples[(holder, label)]
            if len(cell) < self.cap:
                text = s.get("text") or record.get("text", "")[s["start"]:s["end"]]
                cell.append((stance, text, page, str(record.get("id", where))))
                linked = True
        if linked:  # render it now: the record is not kept
            self.pages += 1
            (self.out / page).write_text(render_html([record], title=f"{record.get('id', where)} ({where})"),
                                         encoding="utf-8")
        return rows

    def add(self, rows: list[tuple]) -> None:
        """Reduce a chunk's rows to counts and add them to the totals."""
        if not rows:
            return
        df = pd.DataFrame(rows, columns=["holder", "label", "stance", "month"])
        self.cells = _plus(self.cells, df.groupby(["holder", "label", "stance"]).size())
        # groupby drops the rows whose month is None: undated statements stay out of the monthly tables
        self.month_label = _plus(self.month_label, df.groupby(["month", "label"]).size())
        self.month_holder = _plus(self.month_holder, df.groupby(["month", "holder"]).size())


# ---- tables ----------------------------------------------------------------------------------


def _with_shares(counts: pd.DataFrame) -> pd.DataFrame:
    """Stance counts (support, oppose, neutral first) with the total and each stance's share."""
    stances = STANCES + sorted(set(counts.columns) - set(STANCES))  # e.g. "unknown" in odd inputs
    t = counts.reindex(columns=stances, fill_value=0).astype(int)
    t["statements"] = t[stances].sum(axis=1)
    for s in stances:
        t[f"{s}_share"] = (t[s] / t["statements"]).round(4)
    return t


def stance_table(cells: pd.Series) -> pd.DataFrame:
    """Rows (holder, label), most frequent holders first, `none` and `unknown` last."""
    t = _with_shares(cells.unstack("stance", fill_value=0))
    per_holder = t.groupby(level="holder")["statements"].sum().sort_values(ascending=False, kind="stable")
    holders = [h for h in per_holder.index if h not in NOT_HOLDERS] + [h for h in NOT_HOLDERS if h in per_holder]
    return t.reindex(pd.MultiIndex.from_tuples([(h, l) for h in holders for l in t.loc[h].index],
                                               names=["holder", "label"]))


def balance_table(cells: pd.Series, top: int) -> pd.DataFrame:
    """The `top` holders by statements (actors only), support share minus oppose share."""
    t = _with_shares(cells.groupby(level=["holder", "stance"]).sum().unstack("stance", fill_value=0))
    t = t.drop(index=list(NOT_HOLDERS), errors="ignore").sort_values("statements", ascending=False, kind="stable")
    t = t.head(top)
    t["balance"] = (t["support_share"] - t["oppose_share"]).round(4)
    return t[["support", "oppose", "neutral", "statements", "support_share", "oppose_share", "balance"]]


def monthly_table(counts: pd.Series, column: str, columns) -> pd.DataFrame:
    """Months × `columns` (every label or holder of the collection, so that one seen only in undated
    documents is a column of 0s rather than missing). Every month between the first and the last
    is a row: a month without statements is a 0, not a gap, so the time axis is even."""
    t = counts.unstack(column, fill_value=0)
    months = pd.period_range(t.index.min(), t.index.max(), freq="M").strftime("%Y-%m")
    return t.reindex(index=months, columns=columns, fill_value=0).rename_axis("month").astype(int)


# ---- plots -----------------------------------------------------------------------------------


def plot_stance(table: pd.DataFrame, holders: list, path: Path) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    labels = sorted(table.index.get_level_values("label").unique())
    fig, axes = plt.subplots(1, len(labels), figsize=(5 * len(labels), 0.45 * len(holders) + 1.9),
                             sharey=True, squeeze=False)
    for ax, label in zip(axes[0], labels):
        rows = table.xs(label, level="label").reindex(holders, fill_value=0)[::-1]  # largest at the top
        left = pd.Series(0, index=rows.index)
        for s in STANCES:
            ax.barh(rows.index, rows[s], left=left, color=STANCE_COLOURS[s], label=s)
            left = left + rows[s]
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("statements")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle("stance by holder and label")
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=8)  # off the bars
    fig.tight_layout(rect=(0, 0.35 / fig.get_figheight(), 1, 1))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_balance(table: pd.DataFrame, path: Path) -> None:
    import matplotlib.pyplot as plt

    t = table[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(t) + 1.4))
    ax.barh(t.index, t["balance"], color=[STANCE_COLOURS["support" if b >= 0 else "oppose"] for b in t["balance"]])
    for y, r in enumerate(t.itertuples()):
        # the counts on the empty side of the axis, where they never cover a bar or a name
        ax.annotate(f" {r.support} support, {r.oppose} oppose of {r.statements} ", (0, y), va="center",
                    ha="right" if r.balance >= 0 else "left", fontsize=8)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlim(-1.05, 1.05)
    ax.set_xlabel("support share − oppose share")
    ax.set_title("support/oppose balance of the top holders")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_monthly(table: pd.DataFrame, title: str, path: Path) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(9, 4))
    for col in table.columns:
        ax.plot(table.index, table[col], "o-", label=col, markersize=3)
    ax.set_ylabel("statements")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title)
    ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ---- text ------------------------------------------------------------------------------------


def _cell(v) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def markdown_table(df: pd.DataFrame) -> str:
    df = df.reset_index()
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(_cell(v).replace("|", "\\|") for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def html_table(df: pd.DataFrame, raw: dict | None = None) -> str:
    """Every value escaped; `raw` maps a column name to cells already in HTML (the example links)."""
    df = df.reset_index()
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in list(df.columns) + list(raw or {}))
    body = []
    for i, row in enumerate(df.itertuples(index=False)):
        cells = [f"<td>{html.escape(_cell(v))}</td>" for v in row] + [f"<td>{col[i]}</td>" for col in (raw or {}).values()]
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def summary_lines(docs: Counter, monthly: bool) -> list[str]:
    lines = [f"{docs['documents']} documents: {docs['with statements']} with statements, "
             f"{docs['documents'] - docs['with statements']} without ({docs['errors']} of them errors); "
             f"{docs['statements']} statements."]
    if docs["undated documents"] == docs["documents"]:
        lines.append("No document has a date (meta.date): there are no monthly tables.")
    elif not monthly:
        lines.append("No dated document holds a statement: there are no monthly tables.")
    if docs["undated documents"] and docs["undated documents"] < docs["documents"]:
        lines.append(f"undated: {docs['undated documents']} documents without a date ({docs['undated statements']} "
                     "statements) are left out of the monthly tables.")
    return lines


PAGE_STYLE = """body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 72em; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
td:first-child, td:nth-child(2) { text-align: left; }
img { max-width: 100%; }
.support { color: #2a9d3a; } .oppose { color: #d1423f; } .neutral { color: #777; }
li { margin: 0.3em 0; }"""


def html_page(inputs, docs, tables: dict, plots: dict, examples: dict) -> str:
    def img(name):
        if name not in plots:
            return ""
        return f'<p><img src="data:image/png;base64,{base64.b64encode(plots[name].read_bytes()).decode()}" alt="{name}"></p>'

    parts = [f"<h1>diplotag report</h1><p>{html.escape(', '.join(map(str, inputs)))}</p>",
             "".join(f"<p>{html.escape(line)}</p>" for line in summary_lines(docs, "monthly_by_label" in tables))]
    sections, links = [], None
    if "stance_by_holder_label" in tables:  # absent when the whole collection holds no statement
        # one examples section per holder × label cell, linked from its row of the stance table
        cell_links = []
        for k, ((holder, label), n) in enumerate(tables["stance_by_holder_label"]["statements"].items()):
            shown = examples.get((holder, label), [])
            cell_links.append(f'<a href="#cell-{k}">{len(shown)} of {n}</a>')
            items = "".join(f'<li><span class="{html.escape(stance)}">{html.escape(stance)}</span> “{html.escape(text)}” — '
                            f'<a href="{page}">{html.escape(doc)}</a></li>' for stance, text, page, doc in shown)
            sections.append(f'<h3 id="cell-{k}">{html.escape(holder)} · {html.escape(label)}</h3>'
                            f'<p>{len(shown)} of {n} statements</p><ol>{items}</ol>')
        links = {"examples": cell_links}
    for name, title in TABLES.items():
        if name in tables:
            parts += [f"<h2>{title}</h2>" + (f"<p>{html.escape(NOTES[name])}</p>" if name in NOTES else ""),
                      html_table(tables[name], links if name == "stance_by_holder_label" else None)
                      if len(tables[name]) else f"<p>{EMPTY}</p>", img(name)]
    if sections:
        parts += ["<h2>Statements behind each cell</h2>"] + sections
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>diplotag report</title>'
            f"<style>\n{PAGE_STYLE}\n</style></head>\n<body>\n" + "\n".join(parts) + "\n</body></html>\n")


# ---- the report ------------------------------------------------------------------------------


def collection_report(inputs, out, *, examples: int = 20, top: int = 10, chunk_size: int = 5000) -> dict:
    """Write the report of the tagged JSONL files `inputs` into the folder `out`. Returns the
    document counts and the names of the files written."""
    import matplotlib

    matplotlib.use("Agg")
    for path in inputs:  # before any work, so that a typo does not leave half a report
        if path != "-" and not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such file")
    out = Path(out)
    (out / "articles").mkdir(parents=True, exist_ok=True)
    # What an earlier run wrote here would otherwise sit beside this report as if it were part of it
    # (monthly tables of a dated collection beside an undated one, article pages linked from nowhere).
    for old in [*(out / "articles").glob("*.html"), *(out / f"{n}{ext}" for n in TABLES for ext in (".csv", ".png"))]:
        old.unlink(missing_ok=True)

    totals, rows = Totals(out, examples), []
    for n, (where, record) in enumerate(read_tagged(inputs), 1):
        rows += totals.take(where, record)
        if n % chunk_size == 0:
            totals.add(rows)
            rows = []
    totals.add(rows)

    tables = {}
    if totals.cells is not None:  # None when the whole collection holds no statement
        tables["stance_by_holder_label"] = stance_table(totals.cells)
        tables["holder_balance"] = balance_table(totals.cells, top)
    if totals.month_label is not None and len(totals.month_label):  # some dated document holds a statement
        stance = tables["stance_by_holder_label"]  # for its holders and labels, in its order
        tables["monthly_by_label"] = monthly_table(totals.month_label, "label",
                                                   sorted(stance.index.get_level_values("label").unique()))
        tables["monthly_by_holder"] = monthly_table(totals.month_holder, "holder",
                                                    stance.index.get_level_values("holder").unique())
    for name, t in tables.items():
        t.to_csv(out / f"{name}.csv")
    png = {name: out / f"{name}.png" for name in TABLES}
    if tables:
        stance, balance = tables["stance_by_holder_label"], tables["holder_balance"]
        present = stance.index.get_level_values("holder")
        plot_stance(stance, list(balance.index) + [h for h in NOT_HOLDERS if h in present], png["stance_by_holder_label"])
        if len(balance):  # empty when only `none` and `unknown` hold statements
            plot_balance(balance, png["holder_balance"])
    if "monthly_by_label" in tables:
        plot_monthly(tables["monthly_by_label"], "statements per month, by label", png["monthly_by_label"])
        by_holder = tables["monthly_by_holder"]
        plot_monthly(by_holder[balance.index] if len(balance) else by_holder.iloc[:, :top],
                     "statements per month, top holders", png["monthly_by_holder"])
    plots = {name: path for name, path in png.items() if path.exists()}  # earlier runs' were removed above

    dated = "monthly_by_label" in tables
    md = ["# diplotag report", "", ", ".join(map(str, inputs)), ""] + [line + "\n" for line in summary_lines(totals.docs, dated)]
    for name, title in TABLES.items():
        if name in tables:
            md += [f"## {title}", ""] + ([NOTES[name], ""] if name in NOTES else [])
            md += [markdown_table(tables[name]) if len(tables[name]) else EMPTY, ""]
            md += [f"![{name}]({name}.png)", ""] if name in plots else []
    (out / "report.md").write_text("\n".join(md), encoding="utf-8")
    page = html_page(inputs, totals.docs, tables, plots, totals.examples)
    (out / "index.html").write_text(page, encoding="utf-8")
    files = sorted(str(p.relative_to(out)) for p in out.glob("*") if p.is_file())
    return {"documents": dict(totals.docs), "pages": totals.pages, "files": files}
