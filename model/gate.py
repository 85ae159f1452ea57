"""The relevance gate's first stage: TF-IDF over the whole document and a logistic regression
(scikit-learn), a fraction of a millisecond per article, so that the gate's transformer reads only
the documents it is unsure of. Saved beside the gate's classifier as its weights in safetensors
(idf, coefficients, intercepts; counted in the shipped budget) and the rest in JSON (vocabulary,
classes, thresholds): no pickle to load.
"""
import json
from pathlib import Path

import numpy as np

PREFILTER_FILES = ("prefilter.json", "prefilter.safetensors")
# Fixed rather than configured: what the saved vocabulary and idf were computed with. Log term
# counts, so that one word repeated does not make a document; words in two training documents or more.
VECTORIZER = {"lowercase": True, "sublinear_tf": True, "min_df": 2}
GATE_REJECTS = "offtopic"  # the gate's class for documents that skip the tagger
GATE_THRESHOLD = 0.5       # the off-topic probability from which a document skips it


class WordPrefilter:
    def __init__(self, vectorizer, labels: list[str], coef: np.ndarray, intercept: np.ndarray, threshold: float = 0.9,
                 keep_threshold: float | None = None):
        self.vectorizer, self.labels = vectorizer, list(labels)
        self.coef, self.intercept = np.asarray(coef, dtype=np.float64), np.asarray(intercept, dtype=np.float64)
        # as the gate, it decides without the transformer where the probability of the class the gate
        # skips reaches `threshold` (skipped) or is at most `keep_threshold` (kept; None: nowhere)
        self.threshold, self.keep_threshold = threshold, keep_threshold

    @classmethod
    def fit(cls, texts: list[str], labels: list[str], c: float, threshold: float = 0.9,
            keep_threshold: float | None = None) -> "WordPrefilter":
        """Fitted on `texts`; `c`: the inverse of the L2 penalty. Classes weigh alike however many
        documents each has (the gate's data holds about 3.75 beat documents for each off-topic one)."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        vectorizer = TfidfVectorizer(**VECTORIZER)
        features = vectorizer.fit_transform(texts)
        model = LogisticRegression(C=c, class_weight="balanced", max_iter=5000).fit(features, labels)
        return cls(vectorizer, model.classes_.tolist(), model.coef_, model.intercept_, threshold, keep_threshold)

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """(texts × labels) class probabilities, as the fitted LogisticRegression's predict_proba."""
        from scipy.special import expit, softmax

        if not texts:
            return np.zeros((0, len(self.labels)))
        logits = self.vectorizer.transform(texts) @ self.coef.T + self.intercept
        if len(self.labels) == 2:  # one row of weights: the second class against the first
            return np.hstack([expit(-logits), expit(logits)])
        return softmax(logits, axis=1)

    def sure(self, rejected: np.ndarray) -> np.ndarray:
        """Where, given each text's probability of the class the gate skips, the prefilter decides alone."""
        keep = -np.inf if self.keep_threshold is None else self.keep_threshold
        return (rejected >= self.threshold) | (rejected <= keep)

    def combine(self, rejected: np.ndarray, classifier: np.ndarray) -> np.ndarray:
        """The gate's score (its probability of the class it skips) from the prefilter's and the
        classifier's: the prefilter's where it is `sure`, elsewhere the mean of the two (two views of
        a document: all its words, and its lead)."""
        return np.where(self.sure(rejected), rejected, (rejected + classifier) / 2)

    def save_pretrained(self, folder: Path) -> None:
        from safetensors.numpy import save_file

        words = sorted(self.vectorizer.vocabulary_, key=self.vectorizer.vocabulary_.get)
        weights = {"idf": self.vectorizer.idf_, "coef": self.coef, "intercept": self.intercept}
        # C order: scikit-learn's multinomial coef_ is Fortran-ordered, which safetensors would store transposed
        save_file({k: np.ascontiguousarray(v) for k, v in weights.items()}, str(Path(folder, PREFILTER_FILES[1])))
        Path(folder, PREFILTER_FILES[0]).write_text(json.dumps(
            {"vectorizer": VECTORIZER, "labels": self.labels, "threshold": self.threshold,
             "keep_threshold": self.keep_threshold, "words": words}))

    @classmethod
    def from_pretrained(cls, folder: Path) -> "WordPrefilter":
        from safetensors.numpy import load_file
        from sklearn.feature_extraction.text import TfidfVectorizer

        saved, weights = json.loads(Path(folder, PREFILTER_FILES[0]).read_text()), load_file(Path(folder, PREFILTER_FILES[1]))
        vectorizer = TfidfVectorizer(**saved["vectorizer"], vocabulary=saved["words"])
        vectorizer.idf_ = weights["idf"]
        return cls(vectorizer, saved["labels"], weights["coef"], weights["intercept"], saved["threshold"],
                   saved.get("keep_threshold"))  # a prefilter saved before it had one keeps nothing alone
