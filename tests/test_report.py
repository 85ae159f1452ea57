"""`diplotag report` on hand-written tagged files: counts and shares in the CSV, the page and its
links to the articles behind each cell, the plots; an input without dates; flat memory on a
collection much larger than one chunk."""
import csv
import json
import re
import tracemalloc

from diplotag.cli import main
from diplotag.eval.collection import collection_report


def span(text, phrase, label, stance, holder=None):
    start = text.index(phrase)
    s = {"start": start, "end": start + len(phrase), "label": label, "stance": stance, "score": 0.9,
         "stance_scores": {stance: 0.8}, "text": phrase}
    if holder is not None:  # an output from before holders has no such field
        s.update(holder=holder, holder_score=0.7)
    return s


def tagged(rid, text, date, *spans):
    return {"id": rid, "text": text, "meta": {"date": date} if date else {}, "spans": list(spans)}


T1 = "Japan will hand over two patrol vessels to Manila. Beijing slammed the sale as provocative."
T2 = "Tokyo pledged to sell radars to Hanoi. The talks on the straits went on, officials said."
T3 = "Japan vowed to uphold freedom of navigation in the South China Sea."
T4 = "China rejected the transfer of the frigates outright."
RECORDS = [
    tagged("d1", T1, "2024-03-05", span(T1, "hand over two patrol vessels to Manila", "EQUIPMENT_TRANSFER", "support", "Japan"),
           span(T1, "slammed the sale as provocative", "EQUIPMENT_TRANSFER", "oppose", "China")),
    tagged("d2", T2, "2024-03-28", span(T2, "pledged to sell radars to Hanoi", "EQUIPMENT_TRANSFER", "support", "Japan"),
           span(T2, "talks on the straits went on", "FREEDOM_OF_NAVIGATION", "neutral", "none")),
    tagged("d3", T3, "2024-04-02", span(T3, "uphold freedom of navigation", "FREEDOM_OF_NAVIGATION", "support", "Japan")),
    tagged("d4", T4, None, span(T4, "rejected the transfer of the frigates", "EQUIPMENT_TRANSFER", "oppose", "China")),
    {"id": "in.jsonl:5", "error": "'text' is empty", "source": "in.jsonl:5"},   # as `diplotag tag` writes a bad input
    tagged("d6", "Nothing to see.", "2024-04-09"),                                # no statement
]


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def read_csv(path):
    return list(csv.DictReader(open(path, encoding="utf-8")))


def test_report_counts_shares_page_links_and_plots(tmp_path):
    src = write_jsonl(tmp_path / "tagged.jsonl", RECORDS)
    out = tmp_path / "report"
    assert main(["report", str(src), "-o", str(out)]) == 0

    cells = {(r["holder"], r["label"]): r for r in read_csv(out / "stance_by_holder_label.csv")}
    assert set(cells) == {("Japan", "EQUIPMENT_TRANSFER"), ("Japan", "FREEDOM_OF_NAVIGATION"),
                          ("China", "EQUIPMENT_TRANSFER"), ("none", "FREEDOM_OF_NAVIGATION")}
    japan = cells[("Japan", "EQUIPMENT_TRANSFER")]
    assert (japan["support"], japan["oppose"], japan["neutral"], japan["statements"]) == ("2", "0", "0", "2")
    china = cells[("China", "EQUIPMENT_TRANSFER")]
    assert (china["oppose"], china["statements"], float(china["oppose_share"])) == ("2", "2", 1.0)
    assert float(cells[("none", "FREEDOM_OF_NAVIGATION")]["neutral_share"]) == 1.0
    assert list(cells)[-1] == ("none", "FREEDOM_OF_NAVIGATION")  # `none` after the actors

    balance = {r["holder"]: r for r in read_csv(out / "holder_balance.csv")}
    assert set(balance) == {"Japan", "China"}  # `none` holds nothing to balance
    assert (balance["Japan"]["support"], balance["Japan"]["statements"], float(balance["Japan"]["balance"])) == ("3", "3", 1.0)
    assert float(balance["China"]["balance"]) == -1.0

    # d4 is undated: its statement is in the cells above but in no month
    by_label = {r["month"]: r for r in read_csv(out / "monthly_by_label.csv")}
    assert list(by_label) == ["2024-03", "2024-04"]
    assert by_label["2024-03"]["EQUIPMENT_TRANSFER"] == "3" and by_label["2024-03"]["FREEDOM_OF_NAVIGATION"] == "1"
    assert by_label["2024-04"]["EQUIPMENT_TRANSFER"] == "0" and by_label["2024-04"]["FREEDOM_OF_NAVIGATION"] == "1"
    by_holder = {r["month"]: r for r in read_csv(out / "monthly_by_holder.csv")}
    assert (by_holder["2024-03"]["Japan"], by_holder["2024-03"]["China"], by_holder["2024-03"]["none"]) == ("2", "1", "1")
    assert (by_holder["2024-04"]["Japan"], by_holder["2024-04"]["China"]) == ("1", "0")

    md = (out / "report.md").read_text(encoding="utf-8")
    assert "6 documents: 4 with statements, 2 without (1 of them errors); 6 statements." in md
    assert "undated: 2 documents without a date (1 statements)" in md  # d4, and the error record
    assert "| Japan | EQUIPMENT_TRANSFER | 2 | 0 | 0 | 2 | 1.000 | 0.000 | 0.000 |" in md
    for name in ("stance_by_holder_label", "holder_balance", "monthly_by_label", "monthly_by_holder"):
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    page = (out / "index.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 4  # self-contained: the plots are in the page
    cell = re.search(r'<h3 id="(cell-\d+)">China · EQUIPMENT_TRANSFER</h3>(.*?)</ol>', page).group(1, 2)
    assert f'href="#{cell[0]}">2 of 2</a>' in page  # the table cell links to its statements
    assert "slammed the sale as provocative" in cell[1]
    article = re.search(r'“slammed the sale as provocative” — <a href="(articles/[^"]+)">d1</a>', page).group(1)
    shown = (out / article).read_text(encoding="utf-8")
    assert "slammed the sale as provocative" in shown and "<mark" in shown
    # a page for each linked document only: not for the error record nor the one without statements
    assert len(list((out / "articles").glob("*.html"))) == 4


def test_examples_are_capped_per_cell(tmp_path):
    records = [tagged(f"d{i}", T3, "2024-05-01", span(T3, "uphold freedom of navigation", "FREEDOM_OF_NAVIGATION",
                                                       "support", "Japan")) for i in range(7)]
    out = tmp_path / "report"
    collection_report([write_jsonl(tmp_path / "t.jsonl", records)], out, examples=3)
    assert len(list((out / "articles").glob("*.html"))) == 3
    assert 'href="#cell-0">3 of 7</a>' in (out / "index.html").read_text(encoding="utf-8")


def test_no_dates_and_no_holders(tmp_path):
    """An older output: no dates anywhere, spans without a holder field. Every table but the
    monthly ones is written, and the report says why those are missing."""
    records = [{**r, "meta": {}, "spans": [{k: v for k, v in s.items() if k not in ("holder", "holder_score")}
                                           for s in r.get("spans", [])]} for r in RECORDS if "spans" in r]
    out = tmp_path / "report"
    r = collection_report([write_jsonl(tmp_path / "old.jsonl", records)], out)
    assert r["documents"]["statements"] == 6
    for name in ("stance_by_holder_label.csv", "stance_by_holder_label.png", "holder_balance.csv", "report.md", "index.html"):
        assert (out / name).exists(), name
    assert not list(out.glob("monthly_*"))
    cells = read_csv(out / "stance_by_holder_label.csv")
    assert {c["holder"] for c in cells} == {"unknown"}
    assert sum(int(c["statements"]) for c in cells) == 6
    for text in ((out / "report.md").read_text(encoding="utf-8"), (out / "index.html").read_text(encoding="utf-8")):
        assert "No document has a date (meta.date): there are no monthly tables." in text


def test_streams_in_flat_memory(tmp_path):
    """20,000 records, four chunks: the report's peak memory stays far below what holding the
    records would take, and only the capped examples' articles are written."""
    holders, labels, stances = ["Japan", "China", "United States", "none"], ["EQUIPMENT_TRANSFER", "FREEDOM_OF_NAVIGATION"], \
        ["support", "oppose", "neutral"]
    text = "Officials said the deal would go ahead despite the protest lodged on Monday. " * 3
    path = tmp_path / "big.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for i in range(20_000):
            spans = [span(text, "the deal would go ahead", labels[i % 2], stances[i % 3], holders[i % 4]),
                     span(text, "the protest lodged on Monday", labels[(i + 1) % 2], stances[(i + 1) % 3], holders[(i + 1) % 4])]
            f.write(json.dumps(tagged(f"doc-{i}", text, f"2023-{1 + i % 12:02d}-15" if i % 10 else None, *spans)) + "\n")
    collection_report([path], tmp_path / "warm-up", examples=1)  # imports, fonts: not the report's own memory

    tracemalloc.start()
    held = [json.loads(line) for line in open(path, encoding="utf-8")]
    holding = tracemalloc.get_traced_memory()[0]
    del held
    tracemalloc.stop()

    tracemalloc.start()
    r = collection_report([path], tmp_path / "report", examples=5, chunk_size=5000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert r["documents"]["statements"] == 40_000
    assert peak < holding / 4, f"peak {peak / 1e6:.1f} MB against {holding / 1e6:.1f} MB for holding the records"
    cells = read_csv(tmp_path / "report" / "stance_by_holder_label.csv")
    assert sum(int(c["statements"]) for c in cells) == 40_000
    assert len(list((tmp_path / "report" / "articles").glob("*.html"))) <= 5 * len(cells)
