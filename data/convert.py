"""Conversion between corpus records and CoNLL, Label Studio and doccano.

What each format can hold:
- CoNLL (`token<TAB>BIO-tag`, blank line between sentences): tokens and labels. No
  stance, no holder, no meta, and the text's own spacing is lost (tokens are rejoined with one
  space). Records read from CoNLL remember the file's line ending and sentence
  breaks, so they write back byte for byte.
- Label Studio: text, meta (in `data`), spans with label, stance and holder (stance a
  per-region choice, holder a per-region text field), prediction scores. Lossless both ways.
- doccano JSONL: text, meta, spans; stance and holder ride in the label name
  (`LABEL/stance/holder`). Lossless both ways.
"""
import json
import re

from .sentences import sentence_bounds

# ---- CoNLL -------------------------------------------------------------------------------------


def read_conll(path) -> list[dict]:
    """One record per sentence (or per `-DOCSTART-` document where the file has them).
    CRLF and LF line ends are both read; the file's own is kept in meta for writing back."""
    raw = open(path, encoding="utf-8", newline="").read()
    style = {"newline": "\r\n" if "\r\n" in raw else "\n", "final_newline": raw.endswith(("\n", "\r"))}
    stem = re.sub(r"\W+", "-", str(path).rsplit("/", 1)[-1].rsplit(".", 1)[0])
    docs, sentences, tokens = [], [], []
    has_docstart = False

    def end_sentence():
        if tokens:
            sentences.append(list(tokens))
            tokens.clear()

    def end_document():
        end_sentence()
        if sentences:
            docs.append(list(sentences))
            sentences.clear()

    for lineno, line in enumerate(raw.split("\n"), 1):
        line = line.rstrip("\r")
        if not line.strip():
            end_sentence()
            if not has_docstart:
                end_document()
            continue
        if line.startswith("-DOCSTART-"):
            has_docstart = True
            end_document()
            continue
        token, sep, tag = line.rpartition("\t")
        if not sep:
            token, _, tag = line.rpartition(" ")
        if not token or not re.fullmatch(r"O|[BI]-\S+", tag):
            raise ValueError(f"{path}:{lineno}: expected 'token<TAB>BIO-tag', got {line!r}")
        tokens.append((token, tag))
    end_document()

    records = []
    for n, doc in enumerate(docs, 1):
        text, spans, open_span = "", [], None
        for s, sentence in enumerate(doc):
            for t, (token, tag) in enumerate(sentence):
                if text:
                    text += "\n" if t == 0 else " "
                start = len(text)
                text += token
                kind, _, label = tag.partition("-")
                if kind == "I" and open_span and open_span["label"] == label and t > 0:
                    open_span["end"] = len(text)
                    continue
                open_span = {"start": start, "end": len(text), "label": label} if kind in "BI" else None
                if open_span:
                    spans.append(open_span)
            open_span = None
        records.append({"id": f"{stem}-{n:05d}", "text": text,
                        "meta": {"conll": dict(style, docstart=has_docstart)}, "spans": spans})
    return records


def word_tokens(text: str, start: int, end: int, spans) -> list[tuple[int, int]]:
    """White-space tokens of text[start:end], split again at every span edge inside one."""
    edges = sorted({p for s in spans for p in (s["start"], s["end"])})
    tokens = []
    for m in re.finditer(r"\S+", text[start:end]):
        a, b = start + m.start(), start + m.end()
        cuts = [a] + [e for e in edges if a < e < b] + [b]
        tokens += [(x, y) for x, y in zip(cuts, cuts[1:]) if text[x:y].strip()]
    return tokens


def bio_tags(tokens: list[tuple[int, int]], spans) -> list[str]:
    """IOB2 tags of (start, end) tokens: a token takes the span that holds its first character;
    it is B- where that span starts or where the token before it is outside that span."""
    tags, prev = [], None
    for a, _ in tokens:
        span = next((s for s in spans if s["start"] <= a < s["end"]), None)
        tags.append("O" if span is None else ("I-" if span is prev else "B-") + span["label"])
        prev = span
    return tags


def write_conll(records, path) -> list[str]:
    """Write records as CoNLL; returns warnings for what the format cannot hold."""
    style = records[0].get("meta", {}).get("conll", {}) if records else {}
    nl = style.get("newline", "\n")
    blocks = []
    for r in records:
        text, spans = r["text"], sorted(r.get("spans", []), key=lambda s: s["start"])
        if style.get("docstart"):
            blocks.append(["-DOCSTART-\tO"])
        from_conll = "conll" in r.get("meta", {})
        bounds = ([(m.start(), m.end()) for m in re.finditer(r"[^\n]+", text)] if from_conll
                  else sentence_bounds(text))
        for a, b in bounds:
            tokens = word_tokens(text, a, b, spans)
            lines = [f"{text[x:y]}\t{tag}" for (x, y), tag in zip(tokens, bio_tags(tokens, spans))]
            if lines:
                blocks.append(lines)
    out = (nl + nl).join(nl.join(block) for block in blocks)
    if style.get("final_newline", True) and out:
        out += nl
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(out)
    dropped = sum(1 for r in records for s in r.get("spans", []) if s.get("stance") or s.get("holder"))
    return [f"CoNLL holds no stance or holder: those of {dropped} spans were not written"] if dropped else []


# ---- Label Studio ------------------------------------------------------------------------------

LABEL_STUDIO_CONFIG = """<View>
  <Labels name="label" toName="text">
    <Label value="EQUIPMENT_TRANSFER"/><Label value="FREEDOM_OF_NAVIGATION"/><Label value="OPPOSITION_TO_COERCION"/>
  </Labels>
  <Text name="text" value="$text"/>
  <Choices name="stance" toName="text" perRegion="true" choice="single">
    <Choice value="support"/><Choice value="oppose"/><Choice value="neutral"/>
  </Choices>
  <TextArea name="holder" toName="text" perRegion="true" maxSubmissions="1" placeholder="holder (canonical name or none)"/>
</View>"""


def _label_studio_result(text, spans) -> list[dict]:
    result = []
    for i, s in enumerate(spans):
        region = {"start": s["start"], "end": s["end"], "text": text[s["start"]:s["end"]]}
        rid = f"r{i}"
        item = {"id": rid, "from_name": "label", "to_name": "text", "type": "labels",
                "value": dict(region, labels=[s["label"]])}
        if "score" in s:
            item["score"] = s["score"]
        result.append(item)
        if s.get("stance"):
            result.append({"id": rid, "from_name": "stance", "to_name": "text", "type": "choices",
                           "value": dict(region, choices=[s["stance"]])})
        if s.get("holder"):
            result.append({"id": rid, "from_name": "holder", "to_name": "text", "type": "textarea",
                           "value": dict(region, text=[s["holder"]])})
    return result


def to_label_studio(records, model_version="diplotag") -> list[dict]:
    """Tasks for import; spans go in as predictions, for pre-annotation and correction."""
    tasks = []
    for r in records:
        spans = r.get("spans", [])
        prediction = {"model_version": model_version, "result": _label_studio_result(r["text"], spans)}
        scores = [s["score"] for s in spans if "score" in s]
        if scores:
            prediction["score"] = min(scores)
        tasks.append({"data": {"id": r["id"], "text": r["text"], "meta": r.get("meta", {})},
                      "predictions": [prediction]})
    return tasks


def _label_studio_regions(task: dict, where: str) -> dict:
    data = task.get("data", {})
    if not isinstance(data.get("text"), str):
        raise ValueError(f"{where}: no data.text")
    done = [a for a in task.get("annotations", []) if not a.get("was_cancelled")]
    source = (done[-1] if done else (task.get("predictions") or [{}])[-1]).get("result", [])
    regions = {}
    for item in source:
        v = item.get("value", {})
        if item.get("type") in ("labels", "choices", "textarea") and not (isinstance(v.get("start"), int)
                                                               and isinstance(v.get("end"), int)):
            raise ValueError(f"{where}: a region without integer start/end")
        region = regions.setdefault(item.get("id") or (v.get("start"), v.get("end")),
                                    {"start": v.get("start"), "end": v.get("end")})
        if item.get("type") == "labels":
            region["label"] = v["labels"][0]
            if "score" in item:
                region["score"] = item["score"]
        elif item.get("type") == "choices" and item.get("from_name") == "stance":
            region["stance"] = v["choices"][0]
        elif item.get("type") == "textarea" and item.get("from_name") == "holder":
            region["holder"] = str(v["text"][0]).strip()
    return regions


def from_label_studio(tasks, path="<label studio>") -> list[dict]:
    """Records from a Label Studio JSON export: the latest non-cancelled annotation of each task
    (its predictions when it has none)."""
    records = []
    for n, task in enumerate(tasks):
        where = f"{path}: task {n} ({task.get('id') if isinstance(task, dict) else task!r})"
        try:
            regions = _label_studio_regions(task, where)
        except (AttributeError, IndexError, KeyError, TypeError) as err:
            raise ValueError(f"{where}: malformed task: {type(err).__name__} {err}") from None
        data = task["data"]
        spans = sorted((r for r in regions.values() if "label" in r), key=lambda s: s["start"])
        records.append({"id": str(data.get("id", task.get("id", n))), "text": data["text"],
                        "meta": data.get("meta", {}), "spans": spans})
    return records


# ---- doccano -----------------------------------------------------------------------------------


def to_doccano(records) -> list[dict]:
    return [{"id": r["id"], "text": r["text"], "meta": r.get("meta", {}),
             "label": [[s["start"], s["end"], "/".join([s["label"]] + [s[k] for k in ("stance", "holder") if s.get(k)])]
                       for s in r.get("spans", [])]}
            for r in records]


def from_doccano(rows, path="<doccano>") -> list[dict]:
    """doccano's sequence-labelling JSONL: `label: [[start, end, name]]`, or the newer
    `entities: [{start_offset, end_offset, label}]`."""
    records = []
    for n, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise ValueError(f"{path}: row {n + 1}: not an object with a string `text`")
        try:
            triples = row.get("label") or [(e["start_offset"], e["end_offset"], e["label"])
                                           for e in row.get("entities", [])]
            triples = [(int(a), int(b), str(name)) for a, b, name in triples]
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path}: row {n + 1} ({row.get('id')}): malformed label or entity: {err!r}") from None
        spans = []
        for start, end, name in triples:
            label, _, rest = name.partition("/")
            stance, _, holder = rest.partition("/")
            spans.append({"start": start, "end": end, "label": label, **({"stance": stance} if stance else {}),
                          **({"holder": holder} if holder else {})})
        records.append({"id": str(row.get("id", n)), "text": row.get("text"),
                        "meta": row.get("meta", {}), "spans": sorted(spans, key=lambda s: s["start"])})
    return records


def read_records(path, fmt: str) -> list[dict]:
    """Records from any supported format: jsonl (corpus records, any label, stance optional),
    conll, label-studio or doccano."""
    from .schema import load_corpus

    if fmt == "jsonl":
        return load_corpus(path, labels=None, require_stance=False)
    if fmt == "conll":
        return read_conll(path)
    if fmt == "label-studio":
        return from_label_studio(read_json_or_jsonl(path), str(path))
    if fmt == "doccano":
        return from_doccano(read_json_or_jsonl(path), str(path))
    raise ValueError(f"unknown format {fmt!r}")


def write_records(records, path, fmt: str) -> list[str]:
    """Write records in any supported format; returns warnings for what the format cannot hold."""
    from .schema import write_jsonl

    if fmt == "conll":
        return write_conll(records, path)
    if fmt == "label-studio":
        with open(path, "w", encoding="utf-8") as f:
            json.dump(to_label_studio(records), f, ensure_ascii=False, indent=1)
        return []
    write_jsonl(to_doccano(records) if fmt == "doccano" else records, path)
    return []


def read_json_or_jsonl(path):
    raw = open(path, encoding="utf-8").read()
    if raw.lstrip().startswith("["):
        try:
            return json.loads(raw)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{err.lineno}: not JSON: {err.msg}") from None
    rows = []
    for lineno, line in enumerate(raw.split("\n"), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{lineno}: not JSON: {err.msg}") from None
    return rows


# ---- labelled texts (document classifiers) -----------------------------------------------------


def read_labelled_texts(path) -> list[dict]:
    """`{"text", "label"}` records (an `id` is kept where given) from JSONL, or from TSV with a
    header row naming `text` and `label` columns. A record without both, as strings, is an
    error naming its line."""
    import csv

    path = str(path)
    if path.endswith((".tsv", ".tab")):
        csv.field_size_limit(2 ** 31 - 1)  # a whole article in one cell
        with open(path, encoding="utf-8-sig", newline="") as f:  # -sig: a BOM is not part of the header
            reader = csv.DictReader(f, delimiter="\t")  # quoted cells as pandas and Excel write them
            missing = {"text", "label"} - set(reader.fieldnames or [])
            if missing:
                raise ValueError(f"{path}:1: the header has no {' or '.join(sorted(missing))} column")
            rows = [(reader.line_num, row) for row in reader]
    else:
        rows = []
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    try:
                        rows.append((lineno, json.loads(line)))
                    except json.JSONDecodeError as err:
                        raise ValueError(f"{path}:{lineno}: not JSON: {err.msg}") from None
    records = []
    for lineno, row in rows:
        if not isinstance(row, dict) or not all(isinstance(row.get(k), str) and row[k] for k in ("text", "label")):
            raise ValueError(f"{path}:{lineno}: record {len(records) + 1} needs a non-empty string `text` and `label`")
        records.append({"id": str(row.get("id") or f"{len(records) + 1}"), "text": row["text"], "label": row["label"]})
    return records
