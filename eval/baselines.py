"""Two baselines the fine-tuned models must beat, scored by the same report.

- `KeywordTagger`: trigger words and phrases from the guidelines' label table; a statement
  runs from the trigger to the end of its clause. Stance: always `support` (the majority).
- `TfidfStance`: TF-IDF of the statement in its context (the stance model's own input
  text) + logistic regression, trained on the train split's gold spans.
"""
import re

from sklearn.dummy import DummyClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from ..model.stance import stance_inputs

TRIGGERS = {
    "EQUIPMENT_TRANSFER": r"\b(transfer(?:s|red)?|deliver(?:y|ies|ed|s)?|export(?:s|ed)?|sale|sells?|sold|donat(?:e|ed|ion)"
                          r"|grant(?:ed)?|leas(?:e|ed)|hand(?:ed)?[ -]over|provi(?:de|ded|sion)|suppl(?:y|ied|ies)"
                          r"|co-develop\w*|licen[cs]ed production|arms sales?|military aid)\b",
    "FREEDOM_OF_NAVIGATION": r"\b(freedom of navigation|freedom of (?:navigation and )?overflight|innocent passage"
                             r"|transit passage|archipelagic sea lanes?|FONOPs?|navigational rights"
                             r"|unimpeded (?:lawful )?commerce)\b",
    "OPPOSITION_TO_COERCION": r"\b(coerci(?:on|ve)|intimidat\w*|(?:threat or )?use of force|unilateral(?:ly)? (?:attempts?|"
                              r"actions?|change)|status quo|gr[ae]y[- ]zone|dangerous (?:manoeuvres|maneuvers|actions?)"
                              r"|aggressive (?:behaviou?r|actions?)|bully\w*|militari[sz]ation)\b",
}
CLAUSE_END = re.compile(r"[.;:!?”\"]|, (?:and|but|while|which|the|as)\b|\n")


class KeywordTagger:
    def find(self, text: str) -> list[dict]:
        spans = []
        for label, pattern in TRIGGERS.items():
            for m in re.finditer(pattern, text, re.IGNORECASE):
                end = CLAUSE_END.search(text, m.end())
                end = end.start() if end else len(text)
                stop = text[m.start():end].rstrip()
                spans.append({"start": m.start(), "end": m.start() + len(stop), "label": label, "stance": "support",
                              "score": 1.0})
        spans.sort(key=lambda s: (s["start"], -s["end"]))
        kept = []
        for s in spans:  # no overlaps: the earlier (and longer) statement wins
            if not kept or s["start"] >= kept[-1]["end"]:
                kept.append(s)
        return kept

    def tag(self, records) -> list[dict]:
        return [dict(r, spans=self.find(r["text"])) for r in records]


def stance_texts(records, spans_per_record=None):
    rows = []
    for i, r in enumerate(records):
        spans = r["spans"] if spans_per_record is None else spans_per_record[i]
        rows += [" | ".join(pair) for pair in stance_inputs(r["text"], spans)]
    return rows


class TfidfStance:
    def __init__(self, train_records):
        self.model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
                                   LogisticRegression(max_iter=2000, class_weight="balanced"))
        stances = [s["stance"] for r in train_records for s in r["spans"]]
        if len(set(stances)) < 2:  # logistic regression needs two classes; predict the only one seen
            self.model = make_pipeline(TfidfVectorizer(), DummyClassifier(strategy="most_frequent"))
        self.model.fit(stance_texts(train_records), stances)

    def predict(self, records, spans_per_record=None):
        """(stance per span, probabilities per span in support/oppose/neutral order)."""
        texts = stance_texts(records, spans_per_record)
        if not texts:
            return [], []
        probs = self.model.predict_proba(texts)
        classes = list(self.model.classes_)
        full = [[float(p[classes.index(s)]) if s in classes else 0.0 for s in ("support", "oppose", "neutral")]
                for p in probs]  # a stance absent from the training data gets probability 0
        return [classes[i] for i in probs.argmax(1)], full
