"""Who holds each statement: the actors a document names (found by the gazetteer in
data/holders.tsv, with their demonyms, capitals, ministries and state media), plus `none`, ranked
for each statement by a logistic model (linear, with a few tanh units where fitted with them)
over where each candidate stands relative to it —
the subject just before it, the speaker of a "…, the ministry said" after it, a name inside
it (usually the object, not the holder, as after "warned …" or "to …"), the dateline, how often
the document names it, the actor a pronoun subject ("It warned …") points back to, the document's
own voice for "We urge …" — and the statement's stance (the stance model's probabilities, where it
gave them) and setting (a neutral statement, or advice in an opinion piece, is mostly nobody's).

Where the ranker ships a cross-encoder (`reranker/`, trained by `diplotag train holder` with
`rerank_top`), it re-scores the ranker's top candidates: it reads the candidate's name beside the
statement marked « » in its context, with that candidate's mentions marked [ ] (entity markers
as in relation extraction), and says whether the candidate holds the statement; its log-odds,
weighted as fitted on dev, are added to the ranker's score.

The baseline it is measured against is the nearest actor mention before the statement.
"""
import json
import math
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..data.markup import HOLDERS_FILE, NO_HOLDER, load_gazetteer
from ..data.sentences import sentence_bounds, sentence_of
from .stance import marked_context

REPORTING = re.compile(r"\b(said|says|told|stated|announced|added|warned|insisted|noted|stressed|wrote|posted|"
                       r"according to|spokes(?:man|woman|person))\b", re.IGNORECASE)
NOBODY = re.compile(r"\b(analysts?|experts?|observers?|think[- ]tank|researchers?|commentators?|scholars?|"
                    r"critics|reportedly|unclear|remains? to be seen|could|might|may)\b", re.IGNORECASE)
ACTOR_FEATURES = ("same_sentence_before", "nearest_before", "subject_position", "closeness_before",
                  "same_sentence_after", "speaker_after", "closeness_after", "inside_statement",
                  "previous_sentence", "in_dateline", "first_named", "mentions_log", "first_in_sentence",
                  "object_of_preposition", "followed_by_reporting", "possessive_before",
                  "first_person_issuer", "first_person_dateline", "first_person_most_named",
                  "pronoun_previous_first", "definite_previous_first", "object_of_verb", "clause_first",
                  "passive_agent", "joint_first_named", "agent_inside_statement", "supplier_postmodifier")
# "We urge …", "The Government condemns …": the document's own voice, i.e. its issuing actor.
FIRST_PERSON = re.compile(r"(?<![\w’'])(We|we|Our|our|I)\b|\b[Tt]he (Government|Ministry|Opposition)\b")
# A subject that names nobody ("Its foreign ministry …", "The embassy …", "It …") points back to the
# actor the previous sentence led with.
ANAPHOR = re.compile(r"^\W*(\d[\d:.]*\W+)?((It|Its|They|Their|He|She|His|Her)|We|Our|The|This|These|Both|Officials)\b")
# "Both sides underlined …", "The two leaders …": a joint statement is held by the first actor named.
JOINT = re.compile(r"\b([Bb]oth|[Tt]he two) (sides|governments|leaders|ministers|prime ministers|countries)\b|"
                   r"\bThe [Mm]inisters\b")
# "… sold by China", "built jointly by China and Pakistan": the agent of a passive acts.
AGENT = re.compile(r"\bby\s+(the\s+)?(same\s+)?$")
# "gifted by Australia", "frigates sold by the United States": a statement that is a transfer's
# participle phrase is held by its agent, the supplier ("received … donated by Romania" is the
# recipient's: a verb of its own opens it, told by a list of a recipient's verbs and auxiliaries, or by
# an -ed word, not the phrase's own participle, before a determiner).
TRANSFERRED = (r"gifted|donated|sold|supplied|delivered|handed over|transferred|provided|financed|funded|built|offered|"
               r"made available|leased|lent|granted|given|paid for|extended|backed")
SUPPLIER = re.compile(r"^(?!(?:(?:receiv|took|take|welcom|accept|acquir|bought|buy|purchas|order|commission|get|got)\w*|"
                      r"sign(s|ed|ing)?|will|would|has|have|had|is|are|was|were|to|can|could)\b)"
                      # "opposed the deal financed by …": an -ed verb of the statement's own, with its object
                      rf"(?!(?!(?:{TRANSFERRED})\b)\w+ed\s+(the|a|an|its|their|this|that|these|those|his|her|our)\b)"
                      rf"(\S+\s+){{0,6}}?({TRANSFERRED})\s+(\S+\s+){{0,4}}?"
                      r"(?<!use )by\s+(the\s+)?$", re.IGNORECASE)  # "for use by the navy" names the recipient
# "… warned Japan", "urge the U.S.": the actor right after such a verb is its object, not the holder.
OBJECT_VERB = re.compile(r"\b((warn|urg|accus|call(ed|s)? on|told|tell|criticis|criticiz|condemn|slam|blam|ask|"
                         r"press|sold|sell|suppl|deliver|help|support|st(ood|ands?) with|threaten|join|order|thank|prais|"
                         r"commend|hail|summon|receiv)\w*|met|meets?|host(s|ed|ing)?|visit(s|ed)?|(?<![Tt]he )(?<!\ba )visiting)"
                         # whole words: not "metre", "hostile", "the visiting premier"
                         r"\s+(the\s+)?$")
QUOTES = re.compile("[“”\"]")
# In a transcript an answer after a speaker label ("MAO NING: …", "A: …") is the document's own voice.
SPEAKER_LABEL = re.compile(r"([A-Z][^\n:]{0,60}):\s")
QUESTION = re.compile(r"Q\b|QUESTION|Question")
# "Minsk shows off …; Vilnius calls it …": the subject of the statement's own clause.
CLAUSE_BREAK = re.compile(r"[;:—–]|\b(but|while|whereas)\b|, and\b")
PREPOSITION = re.compile(r"\b(to|from|of|with|for|against|on|by|into|toward|towards|between|and)\s+(the\s+)?$", re.IGNORECASE)
NONE_FEATURES = ("none_bias", "none_neutral", "none_oppose", "none_nobody_words", "none_no_actor_in_sentence",
                 "none_advice", "none_opinion_piece")
# "Seoul must not let …", "Australia should use …": advice is the writer's own view, above all in an
# opinion piece or analysis (told by its header).
ADVICE = re.compile(r"\b(should|must|ought to|needs? to|I would argue)\b")
OPINION = re.compile(r"\b(OPINION|Opinion|VIEWPOINT|Viewpoint|COMMENTARY|Commentary|ANALYSIS|Analysis|EDITORIAL|"
                     r"Editorial|[Oo]p-[Ee]d|ISSUE BRIEF|[Pp]odcast|Episode)\b")
FEATURES = ACTOR_FEATURES + NONE_FEATURES


# Seas, straits and wars named after an actor are places, not the actor: matched (longest first)
# so as to hide the name inside them ("the South China Sea" names no Chinese holder).
PLACES = ("South China Sea", "East China Sea", "Sea of Japan", "Taiwan Strait", "Indian Ocean", "Korean Peninsula",
          "Korean peninsula", "Korean War", "Gulf of Aden", "Gulf of Oman", "Gulf of Finland", "Gulf of Mexico",
          "Philippine Sea", "Gulf of Guinea", "Arabian Gulf", "Gulf of Thailand", "Gulf of Riga", "Irish Sea",
          "Timor Sea", "Java Sea", "Sea of Azov", "Norwegian Sea", "Turkish Straits", "Danish straits",
          "Singapore Strait", "Strait of Singapore", "Lake Victoria")
# A wire's credit names the agency, not an actor: "AFP" alone is the Armed Forces of the Philippines,
# but in a dateline "(AFP)", a questioner's label "AFP:", a photo credit "/ AFP" it is Agence France-Presse
# ("Armed Forces of the Philippines (AFP)" still names the Philippines, by its long name).
WIRE_CREDITS = ("(AFP)", "Agence France-Presse", "told AFP", "— AFP", "AFP:", "/ AFP", "AFP/File", "AFP/Getty")
# India's Congress party is not the US Congress, and, in opposition since 2014, holds no office (a ruling
# party, the Communist Party of China or the Workers' Party of Korea, is its state: data/holders.tsv).
# ("Congress party" alone is left out: "a Congress party-line vote" is the US one.)
PARTIES = ("Indian National Congress",)


class Gazetteer:
    """Every variant of every canonical actor name, matched whole-word and case-sensitive,
    longest first ("North Korean" before "Korean"); `PLACES`, `WIRE_CREDITS` and `PARTIES` match too,
    but name nobody."""

    def __init__(self, entries: dict[str, list[str]]):
        pairs = sorted([(v, name) for name, variants in entries.items() for v in {name, *variants}]
                       + [(place, None) for place in PLACES + WIRE_CREDITS + PARTIES], key=lambda p: -len(p[0]))
        self.canonical = dict(pairs)
        self.pattern = re.compile(r"(?<![\w’'])(" + "|".join(re.escape(v) for v, _ in pairs) + r")(?![\w])")

    def mentions(self, text: str) -> list[tuple[int, int, str]]:
        found = ((m.start(), m.end(), self.canonical[m.group(1)]) for m in self.pattern.finditer(text))
        return [m for m in found if m[2]]


@lru_cache(maxsize=4)
def gazetteer(path: str = str(HOLDERS_FILE)) -> Gazetteer:
    return Gazetteer(load_gazetteer(Path(path)))


def candidate_features(text: str, span: dict, mentions, bounds) -> tuple[list[str], np.ndarray]:
    """(candidates, one feature row per candidate) for one statement; `none` is always a candidate."""
    start, end = span["start"], span["end"]
    a, b = sentence_of(bounds, start, end) if bounds else (0, len(text))
    first_sentence = next((i for i, (s, _) in enumerate(bounds) if s == a), 0)
    prev_a = bounds[first_sentence - 1][0] if first_sentence > 0 else a
    mentions_of = {}  # each name's own (start, end) mentions, names in order of first mention
    for s, e, name in mentions:
        mentions_of.setdefault(name, []).append((s, e))
    names = list(mentions_of)
    most_named = max(names, key=lambda name: len(mentions_of[name]), default=None)
    in_sentence = [name for s, e, name in mentions if a <= s and e <= b and not (start <= s and e <= end)]
    before = [(s, name) for s, e, name in mentions if e <= start]
    nearest = before[-1][1] if before else None
    lead = text[a:start]
    in_lead = [name for s, e, name in mentions if a <= s and e <= start]
    # The document's own voice: a first-person subject (no actor named before it, no quotes around
    # it: a quote is its speaker's), or an answer after a speaker label.
    voice = FIRST_PERSON.search(lead)
    label = SPEAKER_LABEL.match(text, text.rfind("\n", 0, start) + 1, start)
    first_person = (bool(voice) and not any(a <= s < a + voice.start() for s, _, _ in mentions)
                    and not QUOTES.search(text[a:b])) or bool(label) and not QUESTION.match(label.group(1))
    in_previous = [name for s, e, name in mentions if prev_a <= s < a]
    anaphor = None if in_lead or not in_previous else ANAPHOR.match(lead)
    pronoun = anaphor and anaphor.group(3) and in_previous[0]
    definite = anaphor and not anaphor.group(3) and in_previous[0]
    joint = bool(JOINT.search(text[a:b]))
    breaks = [m.end() for m in CLAUSE_BREAK.finditer(lead)]
    clause = [name for s, e, name in mentions if a + (breaks[-1] if breaks else 0) <= s and e <= start]
    rows = []
    for name in names:
        own = mentions_of[name]
        in_sentence_before = [e for s, e in own if a <= s and e <= start]
        in_sentence_after = [s for s, e in own if s >= end and e <= b]
        gap_before = min((start - e for s, e in own if e <= start), default=10_000)
        gap_after = min((s - end for s, e in own if s >= end), default=10_000)
        speaker = any(REPORTING.search(text[s:min(b, s + 80)]) or REPORTING.search(text[max(a, s - 40):s])
                      for s in in_sentence_after)
        rows.append([bool(in_sentence_before), name == nearest and bool(in_sentence_before),
                     bool(in_sentence_before) and start - max(in_sentence_before) < 60,
                     math.exp(-gap_before / 200), bool(in_sentence_after), speaker, math.exp(-gap_after / 200),
                     any(start <= s and e <= end for s, e in own), any(prev_a <= s < a for s, e in own),
                     own[0][0] < 120, name == names[0], math.log1p(len(own)),
                     bool(in_sentence) and in_sentence[0] == name,
                     any(PREPOSITION.search(text[max(a, s - 14):s]) for s, e in own if a <= s and e <= start),
                     any(REPORTING.search(text[e:e + 60]) for s, e in own if prev_a <= s < b),
                     # "Russia's embassy rejected …", "Türkiye's Eximbank financed …": the owner speaks or acts
                     any(text[e:e + 2] in ("'s", "’s") for s, e in own if a <= s and e <= start),
                     first_person and name == names[0], first_person and own[0][0] < 120,
                     first_person and name == most_named,
                     pronoun == name, definite == name,
                     any(OBJECT_VERB.search(text[max(a, s - 30):s]) for s, e in own if a <= s and e <= b),
                     bool(clause) and clause[0] == name,
                     any(AGENT.search(text[max(a, s - 15):s]) for s, e in own if a <= s and e <= b),
                     joint and name == names[0],
                     any(AGENT.search(text[max(start, s - 15):s]) for s, e in own if start <= s and e <= end),
                     any(SUPPLIER.match(text[start:s]) for s, e in own if start <= s and e <= end)]
                    + [0] * len(NONE_FEATURES))
    # the stance model's belief where it gave one (the ranker was fitted on gold stances): a stance it
    # was unsure of then sways the holder less than a hard label would (dev, the model's own stance:
    # 0.854 → 0.863 for the ranker alone)
    scores = span.get("stance_scores")
    neutral, oppose = (scores.get(k, 0.0) if scores else float(span.get("stance") == k) for k in ("neutral", "oppose"))
    actor_in_sentence = bool(in_sentence)
    rows.append([0] * len(ACTOR_FEATURES) + [1, neutral, oppose,
                                             bool(NOBODY.search(text[a:b])), not actor_in_sentence,
                                             bool(ADVICE.search(text[a:b])), bool(OPINION.search(text[:300]))])
    return names + [NO_HOLDER], np.asarray(rows, dtype=np.float32)


def nearest_preceding_actor(text: str, span: dict, mentions) -> str:
    """The baseline: the last actor named before the statement starts, else `none`."""
    before = [name for s, e, name in mentions if e <= span["start"]]
    return before[-1] if before else NO_HOLDER


RERANKER_DIR = "reranker"  # the cross-encoder's folder inside the holder model's
HOLDS = "holder"            # the cross-encoder's class for "this candidate holds the statement"


def rerank_input(text: str, bounds, span: dict, name: str, mentions, context_sentences=1, head_words=0) -> tuple[str, str]:
    """What the cross-encoder reads for one (statement, candidate): the candidate in words, then
    the statement marked « » in its context (then the document's first `head_words` words) with
    the candidate's own mentions marked [ ]."""
    marks = [(s, e) for s, e, n in mentions if n == name]
    return ("nobody" if name == NO_HOLDER else name), marked_context(text, bounds, span["start"], span["end"],
                                                                     context_sentences, also=marks, head_words=head_words)


class HolderRanker:
    """A scorer over `FEATURES`: linear, plus, where it was fitted with one, a hidden layer of tanh
    units (`hidden`: each feature's weights into the units, their biases, their output weights),
    which lets a feature weigh differently beside another (a name inside an oppose statement …);
    softmax over a statement's candidates gives the score.
    With `rerank_top`, only its top candidates stay, their scores raised by `rerank_weight` times
    the cross-encoder's log-odds that each holds the statement, unless the ranker's first candidate
    leads its second by more than `rerank_margin`."""

    def __init__(self, weights: dict, bias: float = 0.0, gazetteer_path: str = str(HOLDERS_FILE),
                 rerank_top: int = 0, rerank_weight: float = 1.0, context_sentences: int = 1, head_words: int = 0,
                 rerank_margin: float = math.inf, hidden: dict | None = None):
        # a feature added after a ranker was fitted weighs nothing in it, as when it was fitted
        self.w = np.asarray([weights.get(f, 0.0) for f in FEATURES], dtype=np.float32)
        self.hidden = None
        if hidden:
            units = len(hidden["bias"])
            self.hidden = (np.asarray([hidden["features"].get(f, [0.0] * units) for f in FEATURES], dtype=np.float32),
                           np.asarray(hidden["bias"], dtype=np.float32), np.asarray(hidden["out"], dtype=np.float32))
        self.bias, self.gazetteer = bias, gazetteer(gazetteer_path)
        self.rerank_top, self.rerank_weight, self.context_sentences = rerank_top, rerank_weight, context_sentences
        self.head_words, self.rerank_margin = head_words, rerank_margin

    @classmethod
    def from_pretrained(cls, path) -> "HolderRanker":
        saved = json.loads((Path(path) / "holder_ranker.json").read_text())
        return cls(saved["weights"], saved["bias"], rerank_top=saved.get("rerank_top", 0),
                   rerank_weight=saved.get("rerank_weight", 1.0), context_sentences=saved.get("context_sentences", 1),
                   head_words=saved.get("head_words", 0),
                   rerank_margin=math.inf if saved.get("rerank_margin") is None else saved["rerank_margin"],
                   hidden=saved.get("hidden"))

    def scores(self, rows: np.ndarray) -> np.ndarray:
        """Each candidate's score (a logit) from its feature row."""
        logits = rows @ self.w + self.bias
        if self.hidden is not None:
            into, bias, out = self.hidden
            logits = logits + np.tanh(rows @ into + bias) @ out
        return logits

    def candidates(self, texts, spans_per_doc, bounds_per_doc=None, top_n=0):
        """Per statement: (span, candidate names, ranker scores, the pairs the cross-encoder reads
        for the ranker's `top_n` candidates, their indices)."""
        for text, spans, bounds in zip(texts, spans_per_doc, bounds_per_doc or [None] * len(texts)):
            if not spans:
                continue
            mentions = self.gazetteer.mentions(text)
            if bounds is None:
                bounds = sentence_bounds(text, near=[(s["start"], s["end"]) for s in spans],
                                         lines_before=max(self.context_sentences, 1))
            for s in spans:
                names, rows = candidate_features(text, s, mentions, bounds)
                logits = self.scores(rows)
                top = np.argsort(-logits, kind="stable")[:top_n]
                pairs = [rerank_input(text, bounds, s, names[i], mentions, self.context_sentences, self.head_words)
                         for i in top]
                yield s, names, logits, pairs, top

    def predict(self, texts: list[str], spans_per_doc: list[list[dict]], bounds_per_doc=None, pair_probs=None) -> None:
        """Add `holder` and `holder_score` to every span, in place. `bounds_per_doc`: each text's
        sentences around its spans (and one line before), where the caller has them. `pair_probs`:
        the cross-encoder, (candidate, context) pairs → the probability that each candidate holds
        its statement; without it (or `rerank_top`), the ranker decides alone."""
        rerank = pair_probs is not None and self.rerank_top > 0 and self.rerank_weight > 0
        found = list(self.candidates(texts, spans_per_doc, bounds_per_doc, self.rerank_top if rerank else 0))
        # where the ranker leads by more than `rerank_margin` (fitted on dev: the smallest lead past which
        # asking the cross-encoder gained nothing there), its choice stands and the cross-encoder is not run
        # (a statement with one candidate, `none`, has nothing to re-score)
        asked = [rerank and len(top) > 1 and not logits[top[0]] - logits[top[1]] > self.rerank_margin
                 for _, _, logits, _, top in found]
        probs = iter(pair_probs([p for (*_, pairs, _), ask in zip(found, asked) if ask for p in pairs]) if any(asked) else [])
        for (s, names, logits, pairs, top), ask in zip(found, asked):
            if rerank:  # the ranker's top candidates only (so that every score is over the same few), raised where asked
                kept = np.full(len(names), -np.inf)
                kept[top] = logits[top]
                if ask:
                    p = np.clip(np.fromiter((next(probs) for _ in pairs), dtype=np.float64, count=len(pairs)), 1e-6, 1 - 1e-6)
                    kept[top] += self.rerank_weight * np.log(p / (1 - p))
                logits = kept
            p = np.exp(logits - logits.max())
            p /= p.sum()
            s["holder"], s["holder_score"] = names[int(p.argmax())], round(float(p.max()), 4)
