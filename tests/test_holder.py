"""Holders: the gazetteer's variants, the ranker's choice, `none` for statements nobody holds."""
import numpy as np
import pytest

from diplotag.model.holder import HolderRanker, candidate_features, gazetteer, nearest_preceding_actor


@pytest.mark.parametrize("text,expected", [
    ("Beijing slammed the sale.", "China"),                      # capital as metonym
    ("The Kremlin said nothing.", "Russia"),                     # seat of government
    ("A Chinese foreign ministry spokesman spoke.", "China"),    # demonym
    ("KCNA said the drills were a provocation.", "North Korea"), # state media
    ("North Korean officials denied it.", "North Korea"),        # longest variant first, not "Korean"
    ("Seoul will buy tanks.", "South Korea"),
    ("Viet Nam welcomed the grant.", "Vietnam"),
])
def test_gazetteer_finds_actors_by_their_variants(text, expected):
    assert [name for _, _, name in gazetteer().mentions(text)][:1] == [expected]


def test_gazetteer_matches_whole_words_only():
    assert gazetteer().mentions("Usually the USSR-era ships") == []


def test_places_named_after_an_actor_name_nobody_and_firms_name_their_state():
    text = "Patrols in the South China Sea angered Beijing; KAI will deliver the jets."
    assert [name for _, _, name in gazetteer().mentions(text)] == ["China", "South Korea"]


def test_a_first_person_answer_is_the_document_voice_not_the_actor_it_names():
    """In a transcript, "We urge the U.S. to …" is held by the speaker's state (the document's
    first-named actor), and the U.S. right after "urge" is its object."""
    from diplotag.model.holder import FEATURES

    text = "China's Foreign Ministry, regular press conference\nMAO NING: We urge the U.S. to stop arming Taiwan."
    start = text.index("stop")
    span = {"start": start, "end": len(text) - 1, "label": "EQUIPMENT_TRANSFER", "stance": "oppose"}
    names, rows = candidate_features(text, span, gazetteer().mentions(text), [(0, 50), (51, len(text))])
    china, us = rows[names.index("China")], rows[names.index("United States")]
    assert china[FEATURES.index("first_person_issuer")] == 1 and us[FEATURES.index("first_person_issuer")] == 0
    assert us[FEATURES.index("object_of_verb")] == 1 and china[FEATURES.index("object_of_verb")] == 0


def _ranker():
    # a hand-set ranker: the speaker after the statement, else the subject before it; neutral → none
    weights = {"same_sentence_before": 1.0, "nearest_before": 1.0, "speaker_after": 3.0, "none_bias": 0.5,
               "none_neutral": 5.0, "inside_statement": -2.0}
    from diplotag.model.holder import FEATURES

    return HolderRanker({f: weights.get(f, 0.0) for f in FEATURES})


def test_the_speaker_after_a_statement_holds_it_not_the_actor_inside_it():
    text = "The sale of radars to Taipei is a provocation, Beijing's foreign ministry said on Monday."
    span = {"start": 0, "end": 44, "label": "EQUIPMENT_TRANSFER", "stance": "oppose"}
    _ranker().predict([text], [[span]])
    assert span["holder"] == "China" and 0 < span["holder_score"] <= 1
    assert nearest_preceding_actor(text, span, gazetteer().mentions(text)) == "none"  # the baseline has nobody before


def test_a_statement_nobody_holds_gets_none():
    text = "Japan and Vietnam met. The package could include patrol vessels, analysts said."
    span = {"start": 35, "end": 64, "label": "EQUIPMENT_TRANSFER", "stance": "neutral"}
    names, rows = candidate_features(text, span, gazetteer().mentions(text), [(0, 22), (23, len(text))])
    assert names[-1] == "none" and rows.shape == (3, len(rows[0]))
    _ranker().predict([text], [[span]])
    assert span["holder"] == "none"


def test_holder_training_beats_the_baseline_on_its_own_dev(tmp_path):
    """`diplotag train holder` on a small slice of the corpus: a stamped folder whose ranker is
    at least as good as the nearest preceding actor on dev."""
    import json

    from diplotag.cli import main

    assert main(["train", "holder", "--set", f"output_dir={tmp_path / 'holder'}", "--set", "max_train_docs=60"]) == 0
    dev = json.loads((tmp_path / "holder" / "stamp.json").read_text())["dev_metrics"]
    assert dev["eval_holder_accuracy"] >= dev["eval_baseline_accuracy"] and dev["eval_statements"] > 50
    ranker = HolderRanker.from_pretrained(tmp_path / "holder")
    assert np.isfinite(ranker.w).all()
