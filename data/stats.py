"""Corpus statistics and the data card (data/README.md)."""
import json
import re
import statistics
from collections import Counter
from itertools import combinations
from pathlib import Path

from .build import BEAT_DIR, CORPUS_DIR, OFFTOPIC_DIR, SPLITS, compile_split, load_splits
from .markup import FORMS, LABELS, STANCES
from .sentences import sentence_bounds

AGREEMENT_FILE = CORPUS_DIR / "agreement.json"

# Hard negatives of the guidelines, found by keyword in sentences that hold no statement.
HARD_NEGATIVES = {
    "technical navigation": r"\b(GPS|satellite navigation|navigation (system|radar|error|equipment|aid|suite|light)s?|navigational (error|system|hazard|aid)s?|navigator|GNSS|BeiDou|GLONASS|Galileo|inertial navigation)\b",
    "civilian technology transfer": r"\b(civilian|civil|commercial|dual[- ]use)\b.{0,60}\b(technology|technologies|satellite|reactor|airliner|rail|telecom|5G|ferry|ferries|license|licence)\b|\b(technology|technologies)\b.{0,40}\b(civilian|commercial)\b",
    "own-industry purchase": r"\b(domestic(ally)?|home-grown|homegrown|indigenous(ly)?|local(ly)?[- ]built|own (industry|shipyard|shipyards)|national industry|Make in India|state-owned (shipyard|manufacturer))\b",
    "criminal or workplace coercion": r"\b(extort\w*|blackmail\w*|harass\w* (at work|in the workplace)|workplace|bribe\w*|court|prosecutor\w*|convicted|fraud|smuggl\w*|kidnap\w*|ransom)\b",
    "exercises": r"\b(exercise|exercises|drill|drills|wargame|war games?|manoeuvres|maneuvers)\b",
    "port calls": r"\b(port call|port calls|port visit|goodwill visit|docked|berthed|called at)\b",
    "training": r"\b(train|training|trained|instructors?|courses?|cadets?)\b",
    "intelligence sharing": r"\b(intelligence|information[- ]sharing|GSOMIA)\b",
    "dialogues": r"\b(dialogue|dialogues|2\+2|consultations|talks|summit|meeting)\b",
}


def _grams(text: str) -> set:
    return {text[i:i + 5] for i in range(len(text) - 4)}


def pairwise_5gram_jaccard(records):
    """(id, id, character 5-gram Jaccard similarity) for every pair of records."""
    grams = [(r["id"], _grams(r["text"])) for r in records]
    for (ia, ga), (ib, gb) in combinations(grams, 2):
        yield ia, ib, len(ga & gb) / max(1, len(ga | gb))


def near_copies(records, threshold=0.5) -> list[tuple[str, str, float]]:
    return [(a, b, round(j, 3)) for a, b, j in pairwise_5gram_jaccard(records) if j >= threshold]


def corpus_stats(corpus_dir: Path = CORPUS_DIR, count_tokens=None, offtopic_dir: Path = OFFTOPIC_DIR,
                 beat_dir: Path = BEAT_DIR) -> dict:
    """Every figure of the data card. `count_tokens` (text → number of tokens of the default
    base's tokenizer, given by the caller: data/ knows no model) adds the train split's size."""
    splits = load_splits(corpus_dir)
    everything = [dict(r, _split=split) for split, recs in splits.items() for r in recs]
    spans = [s for r in everything for s in r["spans"]]
    per_label = {lab: Counter(s["stance"] for s in spans if s["label"] == lab) for lab in LABELS}

    sentence_words, negatives, hard = [], 0, Counter()
    for r in everything:
        for a, b in sentence_bounds(r["text"]):
            sentence_words.append(len(r["text"][a:b].split()))
            if not any(s["start"] < b and s["end"] > a for s in r["spans"]):
                negatives += 1
                for kind, pattern in HARD_NEGATIVES.items():
                    hard[kind] += bool(re.search(pattern, r["text"][a:b], re.IGNORECASE))

    def inventory(field):
        return Counter(x for r in everything for x in r["meta"].get(field, []))

    dates = sorted(r["meta"]["date"] for r in everything if r["meta"].get("date"))
    similarities = list(pairwise_5gram_jaccard(everything))
    doc_words = [len(r["text"].split()) for r in everything]
    holders = Counter(s.get("holder", "?") for s in spans)
    by_holder = {h: {st: sum(s["stance"] == st for s in spans if s.get("holder", "?") == h) for st in STANCES}
                 for h, _ in holders.most_common()}
    train = splits.get("train", [])
    return {
        "documents": {s: len(recs) for s, recs in splits.items()},
        "documents_without_statement": {s: sum(not r["spans"] for r in recs) for s, recs in splits.items()},
        "train_tokens": sum(count_tokens(r["text"]) for r in train) if count_tokens else None,
        "stance": {st: sum(s["stance"] == st for s in spans) for st in STANCES},
        "forms_in_train": {f: sum(f in s.get("forms", []) for r in train for s in r["spans"]) for f in FORMS},
        "stance_by_holder": by_holder,
        "spans": {s: sum(len(r["spans"]) for r in recs) for s, recs in splits.items()},
        "spans_per_label": {lab: sum(c.values()) for lab, c in per_label.items()},
        "stance_per_label": {lab: {st: c[st] for st in STANCES} for lab, c in per_label.items()},
        "per_split_label": {s: dict(Counter(x["label"] for r in recs for x in r["spans"])) for s, recs in splits.items()},
        "sentences": len(sentence_words),
        "sentences_without_statement": negatives,
        "hard_negative_sentences": dict(hard),
        "sentence_words": {"min": min(sentence_words), "median": statistics.median(sentence_words),
                           "max": max(sentence_words)},
        "document_words": {"min": min(doc_words), "median": statistics.median(doc_words), "max": max(doc_words)},
        "voices": dict(Counter(r["meta"].get("voice", "?") for r in everything)),
        "dates": {"first": dates[0], "last": dates[-1]} if dates else {},
        "years": dict(sorted(Counter(d[:4] for d in dates).items())),
        "actors": dict(inventory("actors").most_common()),
        "equipment": dict(inventory("equipment").most_common()),
        "seas": dict(inventory("seas").most_common()),
        "crlf_documents": sum("\r\n" in r["text"] for r in everything),
        "near_copies": [(a, b, round(j, 3)) for a, b, j in similarities if j >= 0.5],
        "max_5gram_jaccard": round(max((j for _, _, j in similarities), default=0.0), 4),
        "agreement": json.loads(AGREEMENT_FILE.read_text()) if AGREEMENT_FILE.exists() else None,
        "offtopic": gate_article_stats(offtopic_dir),
        "beat": gate_article_stats(beat_dir),
    }


def gate_article_stats(folder: Path) -> dict | None:
    """The relevance gate's articles outside the corpus (off-topic ones, or beat news in business
    register): per split, their statements, topics and voices."""
    splits = {s: compile_split(folder / "src" / s) for s in SPLITS if (folder / "src" / s).is_dir()}
    if not splits:
        return None
    everything = [r for recs in splits.values() for r in recs]
    return {"documents": {s: len(recs) for s, recs in splits.items()},
            "statements": sum(len(r["spans"]) for r in everything),
            "documents_without_statement": sum(not r["spans"] for r in everything),
            "median_words": statistics.median(len(r["text"].split()) for r in everything),
            "topics": dict(Counter(r["meta"].get("topic", "?") for r in everything).most_common()),
            "voices": dict(Counter(r["meta"].get("voice", "?") for r in everything).most_common())}


def _pct(n, d):
    return f"{100 * n / d:.1f}%" if d else "–"


def render_data_card(st: dict) -> str:
    docs, spans = st["documents"], st["spans"]
    out = ["# The diplotag corpus", "",
           "Generated by `diplotag data stats --write data/README.md` from the compiled splits; do not edit by hand.",
           "", "## Size", "", "| split | documents | spans | " + " | ".join(LABELS) + " |", "|---|---|---|---|---|---|"]
    for s in docs:
        out.append(f"| {s} | {docs[s]} | {spans[s]} | " + " | ".join(str(st["per_split_label"][s].get(l, 0)) for l in LABELS) + " |")
    out.append(f"| **all** | {sum(docs.values())} | {sum(spans.values())} | "
               + " | ".join(str(st["spans_per_label"][l]) for l in LABELS) + " |")
    no_statement, n_docs = st["documents_without_statement"], sum(docs.values())
    stance_total = sum(st["stance"].values())
    out += ["", "## Density, length and stance as in real news", "",
            f"- Documents with no statement: {sum(no_statement.values())} of {n_docs} "
            f"({_pct(sum(no_statement.values()), n_docs)}); per split: "
            + ", ".join(f"{k} {v} of {docs[k]}" for k, v in no_statement.items()) + ".",
            f"- Sentences that carry a statement: {st['sentences'] - st['sentences_without_statement']} of "
            f"{st['sentences']} ({_pct(st['sentences'] - st['sentences_without_statement'], st['sentences'])}).",
            f"- Document length in words: min {st['document_words']['min']}, median {st['document_words']['median']}, "
            f"max {st['document_words']['max']}.",
            f"- Training text: {st['train_tokens'] if st['train_tokens'] is not None else '?'} tokens "
            f"(the default base's tokenizer).",
            "- Stance over all statements: " + ", ".join(f"{k} {v} ({_pct(v, stance_total)})" for k, v in st["stance"].items()) + ".",
            "- Statement forms in train (tagged in the markup): " + ", ".join(f"{k} {v}" for k, v in st["forms_in_train"].items()) + ".",
            "", "## Stance by holder", "", "| holder | statements | support | oppose | neutral |", "|---|---|---|---|---|"]
    for holder, c in st["stance_by_holder"].items():
        total = sum(c.values())
        out.append(f"| {holder} | {total} | " + " | ".join(f"{c[x]} ({_pct(c[x], total)})" for x in STANCES) + " |")
    out += ["", "## Stance per label", "", "| label | support | oppose | neutral |", "|---|---|---|---|"]
    for lab, c in st["stance_per_label"].items():
        total = sum(c.values())
        out.append(f"| {lab} | " + " | ".join(f"{c[x]} ({_pct(c[x], total)})" for x in STANCES) + " |")
    neg, sents = st["sentences_without_statement"], st["sentences"]
    out += ["", "## Sentences and negatives", "",
            f"- {sents} sentences (pysbd), of which {neg} ({_pct(neg, sents)}) hold no statement.",
            f"- Sentence length in words: min {st['sentence_words']['min']}, median {st['sentence_words']['median']}, "
            f"max {st['sentence_words']['max']}; document length: min {st['document_words']['min']}, "
            f"median {st['document_words']['median']}, max {st['document_words']['max']}.",
            f"- Documents stored with CRLF line ends: {st['crlf_documents']}.",
            f"- Largest character 5-gram Jaccard similarity between any two documents: {st['max_5gram_jaccard']:.3f}.",
            "", "Hard negatives (sentences with no statement that match each kind's keywords):", ""]
    out += [f"- {kind}: {n}" for kind, n in st["hard_negative_sentences"].items()]
    out += ["", "## Variety", "",
            f"- Voices: " + ", ".join(f"{k} {v}" for k, v in st["voices"].items()),
            f"- Dates: {st['dates'].get('first')} to {st['dates'].get('last')}; per year: "
            + ", ".join(f"{y} {n}" for y, n in st["years"].items())]
    for field in ("actors", "equipment", "seas"):
        inv = st[field]
        out.append(f"- {len(inv)} {field}: " + ", ".join(f"{k} ({v})" for k, v in inv.items()))
    out += ["", "## Agreement", ""]
    agr = st["agreement"]
    if agr:
        out += ["Documents annotated a second time, blind, from their plain text, one round a folder of "
                "`data/agreement/` (`plain` before corpus v2, `plain-v2` from its new documents):", "",
                "| round | documents | span F1, exact (label and offsets) | span F1, overlap (label) | "
                "stance kappa (pairs) | holder accuracy on matched spans (pairs) |", "|---|---|---|---|---|---|"]
        for name, r in agr["rounds"].items():
            kappa = "undefined" if r["stance_kappa"] is None else format(r["stance_kappa"], ".3f")
            holder = "–" if r.get("holder_accuracy") is None else format(r["holder_accuracy"], ".3f")
            out.append(f"| {name} | {r['documents']} | {r['span_f1_exact']:.3f} | {r['span_f1_overlap']:.3f} | "
                       f"{kappa} ({r['stance_pairs']}) | {holder} ({r.get('holder_pairs', 0)}) |")
        out += ["", agr.get("notes", "")]
    else:
        out.append("No second annotation yet.")
    off = st.get("offtopic")
    if off:
        out += ["", "## Off-topic articles (the relevance gate's negatives)", "",
                f"- {sum(off['documents'].values())} articles with no place in the beat ("
                + ", ".join(f"{k} {v}" for k, v in off["documents"].items()) + f"), median {off['median_words']} words, "
                "in `data/offtopic/src/<split>/`; `diplotag data build` writes `data/gate/<split>.jsonl`: every corpus "
                "document and every held-out beat article (below) `relevant`, every off-topic article `offtopic`.",
                "- Topics: " + ", ".join(f"{k} {v}" for k, v in off["topics"].items()),
                "- Voices: " + ", ".join(f"{k} {v}" for k, v in off["voices"].items())]
    beat = st.get("beat")
    if beat:
        out += ["", "## Held-out beat news in business register", "",
                f"- {sum(beat['documents'].values())} articles ("
                + ", ".join(f"{k} {v}" for k, v in beat["documents"].items()) + f"), median {beat['median_words']} words, "
                f"{beat['statements']} statements, {beat['documents_without_statement']} articles with none, in "
                "`data/beat/src/test/`, annotated like the corpus: shareholder letters, business TV, shipping and "
                "markets commentary, exchange filings. The gate's off-topic articles include business news, and the "
                "corpus held almost no beat news in that register, so the gate learnt the register as off-topic. 60 "
                "articles in the register (earnings calls, markets copy, investor notes, business pages; files "
                "`beat*-NNN`, 48 train, 12 dev) were written for the gate and then joined the corpus; these 12, by a "
                "writer who saw none of them, are kept apart to measure the register: compiled to "
                "`data/beat/test.jsonl`, and `relevant` in `data/gate/test.jsonl`.",
                "- Voices: " + ", ".join(f"{k} {v}" for k, v in beat["voices"].items())]
    out += ["", "## How it was made", "",
            "Documents were written to the brief in `data/AUTHORING.md`, by voice, in separate batches: train and "
                "dev first, then the test split in voices and phrasings of its own, by writers who never saw the "
                "train and dev documents. Each file is `data/corpus/src/<split>/<id>.txt` with inline "
                "`[[LABEL/stance/Holder: …]]` markup, compiled by `diplotag data build`. The test split is never used to "
                "choose anything (models, thresholds, configs are chosen on dev).",
            "", "After the blind second annotation of corpus v2 found the writers' first pass short of about one "
                "statement in three, every new document not in that sample was read again for unmarked statements "
                "(guidelines case 28; text left byte-identical): 1,041 statements were added to the 680 train and dev "
                "documents, and the held-out test documents had the same pass by an annotator who saw neither train "
                "nor dev nor any model output.",
            "", "That pass left 17% of sentences with a statement, denser than news. Whole-article negatives were "
                "then written for train and dev (files `neg*-NNN`: 144 train, 24 dev, in six voices — wire, ministry "
                "transcripts and readouts, state media, regional papers, trade press and think-tank notes, roundups "
                "and op-eds): beat news built around the no-statement kinds of `data/AUTHORING.md`, 10 of them with "
                "one or two marked statements. Four second annotators read every one of them for unmarked "
                "statements (none found). The test split was left as it was, so that the models before and after "
                "are scored on the same documents.",
            "", "Then came 60 beat articles in business register (files `beat*-NNN`: earnings calls, markets copy, "
                "investor notes, business pages; 48 train, 12 dev), written for the relevance gate, whose off-topic "
                "business news had taught it the register as off-topic, and annotated like the rest; 12 more, by a "
                "writer who saw none of them, are held out in `data/beat/` (below).",
            "", "Last came 84 documents in seven voices, each batch by a writer of its own, so that dev, like test, "
                "is written apart from train: in train, legislative hearings and written parliamentary answers "
                "(`hearing-`), live blogs (`liveblog-`), broadcast transcripts (`broadcast-`), embassies' and small "
                "states' statements (`embassy-`); in dev, long Q&A interviews (`interview-`), newsletters and press "
                "reviews (`digest-`), foreign-language press as monitoring services translate it (`monitor-`). A "
                "second annotator read each batch and changed 10 marks (6 statements added, 4 spans moved; a "
                "reading pass, not a scored agreement round)."]
    return "\n".join(out) + "\n"
