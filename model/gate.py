"""The relevance gate's first stage: TF-IDF over the whole document and a logistic regression
(scikit-learn), a fraction of a millisecond per article, so that the gate's transformer reads only
the documents it is unsure of. Saved as plain JSON (vocabulary, idf, weights) beside the gate's
classifier: no pickle to load.
"""
import json
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

PREFILTER_FILE = "prefilter.json"
# Fixed rather than configured: what the saved vocabulary and idf were computed with. Log term
# counts, so that one word repeated does not make a document; words in two training documents or more.
VECTORIZER = {"lowercase": True, "sublinear_tf": True, "min_df": 2}


class WordPrefilter:
    def __init__(self, vectorizer: TfidfVectorizer, labels: list[str], coef: np.ndarray, intercept: np.ndarray,
                 threshold: float = 0.5):
        self.vectorizer, self.labels = vectorizer, list(labels)
        self.coef, self.intercept = np.asarray(coef, dtype=np.float64), np.asarray(intercept, dtype=np.float64)
        self.threshold = threshold  # as the gate: the probability at which it decides without the transformer

    @classmethod
    def fit(cls, texts: list[str], labels: list[str], c: float, threshold: float = 0.5) -> "WordPrefilter":
        """Fitted on `texts`; `c`: the inverse of the L2 penalty. Classes weigh alike however many
        documents each has (the gate's data holds 3.6 beat documents for each off-topic one)."""
        vectorizer = TfidfVectorizer(**VECTORIZER)
        features = vectorizer.fit_transform(texts)
        model = LogisticRegression(C=c, class_weight="balanced", max_iter=5000).fit(features, labels)
        return cls(vectorizer, model.classes_.tolist(), model.coef_, model.intercept_, threshold)

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """(texts × labels) class probabilities, as the fitted LogisticRegression's predict_proba."""
        logits = self.vectorizer.transform(texts) @ self.coef.T + self.intercept
        if len(self.labels) == 2:  # one row of weights: the second class against the first
            return np.hstack([1 / (1 + np.exp(logits)), 1 / (1 + np.exp(-logits))])
        logits = logits - logits.max(axis=1, keepdims=True)
        return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)

    def save_pretrained(self, folder: Path) -> None:
        words = sorted(self.vectorizer.vocabulary_, key=self.vectorizer.vocabulary_.get)
        Path(folder, PREFILTER_FILE).write_text(json.dumps({
            "vectorizer": VECTORIZER, "labels": self.labels, "threshold": self.threshold, "intercept": self.intercept.tolist(),
            "words": words, "idf": self.vectorizer.idf_.tolist(), "coef": self.coef.tolist()}))

    @classmethod
    def from_pretrained(cls, folder: Path) -> "WordPrefilter":
        saved = json.loads(Path(folder, PREFILTER_FILE).read_text())
        vectorizer = TfidfVectorizer(**saved["vectorizer"], vocabulary=saved["words"])
        vectorizer.idf_ = np.asarray(saved["idf"])
        return cls(vectorizer, saved["labels"], saved["coef"], saved["intercept"], saved["threshold"])
