"""Holders: the gazetteer's variants, the ranker's choice, `none` for statements nobody holds."""
import math

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
    ("The Southern Theatre Command said it warned the ship away.", "China"),  # British spelling too
    ("The Royal Navy of Oman took delivery.", "Oman"),           # longest first, not the Royal Navy's
    ("The Chief Cabinet Secretary declined to comment.", "Japan"),  # a title only one state has
    ("WAM said the two sides agreed.", "United Arab Emirates"),  # state news agency
    ("Korea has not supplied lethal weapons.", "South Korea"),   # the short form; "North Korea" is longer
    ("Late on Monday Muizzu thanked New Delhi.", "Maldives"),    # a head of state by surname
    ("The Quai d’Orsay summoned the envoy.", "France"),          # a seat of government, curly apostrophe
    ("Port-of-Spain said it would buy boats.", "Trinidad and Tobago"),  # a capital that holds another name
])
def test_gazetteer_finds_actors_by_their_variants(text, expected):
    assert [name for _, _, name in gazetteer().mentions(text)][:1] == [expected]


def test_a_congress_by_its_long_name_is_not_the_us_congress():
    """China's legislature is China; India's Congress party, out of office, names nobody; "Congress" alone is
    still the US Congress; the acronym NPC alone is other bodies' too (Iran's petrochemical firm)."""
    text = ("The National People’s Congress approved it; the NPC Standing Committee met; the Indian National Congress "
            "did not; Congress must vote; the NPC exported less.")
    assert [name for _, _, name in gazetteer().mentions(text)] == ["China", "China", "United States"]


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


def test_the_none_candidate_reads_the_stance_models_belief_where_it_gave_one():
    """A gold stance counts as certain; a predicted one counts as sure as the stance model was."""
    from diplotag.model.holder import FEATURES

    text = "Japan and Vietnam met. The package could include patrol vessels, analysts said."
    mentions, bounds = gazetteer().mentions(text), [(0, 22), (23, len(text))]
    gold = {"start": 35, "end": 64, "label": "EQUIPMENT_TRANSFER", "stance": "neutral"}
    guessed = dict(gold, stance_scores={"support": 0.1, "oppose": 0.3, "neutral": 0.6})
    nobody = [candidate_features(text, span, mentions, bounds)[1][-1] for span in (gold, guessed)]
    assert [row[FEATURES.index("none_neutral")] for row in nobody] == pytest.approx([1.0, 0.6])
    assert [row[FEATURES.index("none_oppose")] for row in nobody] == pytest.approx([0.0, 0.3])


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


def test_the_cross_encoder_runs_only_where_the_rankers_lead_is_small():
    """Past `rerank_margin` the ranker's choice stands without the cross-encoder; below it, the
    cross-encoder's answer counts (here it overturns the ranker)."""
    text = "The sale of radars to Taipei is a provocation, Beijing's foreign ministry said on Monday."
    asked = []

    def pair_probs(pairs):  # a cross-encoder sure that nobody holds it
        asked.extend(pairs)
        return [0.999999 if first == "nobody" else 1e-6 for first, _ in pairs]

    ranker = _ranker()
    ranker.rerank_top, ranker.rerank_weight = 2, 1000.0
    for margin, runs in ((0.5, False), (100.0, True)):  # the ranker leads by 2.5
        span = {"start": 0, "end": 44, "label": "EQUIPMENT_TRANSFER", "stance": "oppose"}
        ranker.rerank_margin, asked[:] = margin, []
        ranker.predict([text], [[span]], pair_probs=pair_probs)
        assert bool(asked) == runs and span["holder"] == ("none" if runs else "China")


def test_the_margin_is_the_smallest_lead_past_which_the_cross_encoder_no_longer_pays():
    """`cheapest_margin`: the cross-encoder is asked up to the ranker's lead where dev accuracy is as
    with it asked everywhere; overturns that net nothing buy no margin."""
    from diplotag.train.holder import RERANK_MARGINS, cheapest_margin

    text = "The sale of radars to Taipei is a provocation, Beijing's foreign ministry said on Monday."

    def pair_probs(pairs):  # a cross-encoder sure that nobody holds it: it overturns the ranker's China
        return [0.999999 if first == "nobody" else 1e-6 for first, _ in pairs]

    ranker = _ranker()
    ranker.rerank_top, ranker.rerank_weight = 2, 1000.0
    docs = lambda *holders: ([text] * len(holders), [[{"start": 0, "end": 44, "label": "EQUIPMENT_TRANSFER",
                                                       "stance": "oppose", "holder": h}] for h in holders], None)
    # the ranker leads by 2.5: the first margin past it lets the cross-encoder right it
    for holders, margin in ((("none",), min(m for m in RERANK_MARGINS if m > 2.5)),
                            (("China",), RERANK_MARGINS[0]),  # it would only do harm
                            (("none", "China"), RERANK_MARGINS[0])):  # one right, one wrong: nothing gained
        ranker.rerank_margin = RERANK_MARGINS[0]  # whatever margin the ranker had, "everywhere" means everywhere
        assert cheapest_margin(ranker, docs(*holders), pair_probs) == margin


def test_holder_training_beats_the_baseline_on_its_own_dev(tmp_path):
    """`diplotag train holder` on a small slice of the corpus: a stamped folder whose ranker is
    at least as good as the nearest preceding actor on dev."""
    import json

    from diplotag.cli import main

    assert main(["train", "holder", "--set", f"output_dir={tmp_path / 'holder'}", "--set", "max_train_docs=60",
                 "--set", "rerank_top=0"]) == 0  # the ranker alone; its cross-encoder is tested below
    dev = json.loads((tmp_path / "holder" / "stamp.json").read_text())["dev_metrics"]
    assert dev["eval_holder_accuracy"] >= dev["eval_baseline_accuracy"] and dev["eval_statements"] > 50
    ranker = HolderRanker.from_pretrained(tmp_path / "holder")
    assert np.isfinite(ranker.w).all() and ranker.hidden is not None  # configs/holder.yaml: ranker_hidden
    # the ranker's own L2 penalty, apart from the cross-encoder's decay: a huge one leaves it all but unfitted
    assert main(["train", "holder", "--set", f"output_dir={tmp_path / 'flat'}", "--set", "max_train_docs=60",
                 "--set", "rerank_top=0", "--set", "ranker_weight_decay=1000"]) == 0
    flat = HolderRanker.from_pretrained(tmp_path / "flat")
    assert np.abs(flat.w).max() < 0.05 < np.abs(ranker.w).max()


def test_the_rankers_hidden_units_learn_what_a_linear_score_cannot():
    """Three kinds of statement whose holder no linear score picks out (it would need a and b each
    to count against a candidate, and both together for it): the tanh units get all three, and
    read back from JSON they score as fitted."""
    import json

    from diplotag.model.holder import FEATURES
    from diplotag.train.holder import fit_ranker

    def row(a, b):
        r = np.zeros(len(FEATURES), dtype=np.float32)
        r[FEATURES.index("subject_position")], r[FEATURES.index("speaker_after")] = a, b
        return r

    kinds = [((1, 0), (1, 1), "x"), ((0, 1), (1, 1), "x"), ((0, 0), (1, 1), "y")]
    rows = [(["x", "y"], np.stack([row(*x), row(*y)]), gold, None) for x, y, gold in kinds] * 20

    def right(fitted):
        ranker = HolderRanker(**json.loads(json.dumps(fitted)))
        return sum(names[int(np.argmax(ranker.scores(x)))] == gold for names, x, gold, _ in rows[:3])

    assert right(fit_ranker(rows, 1e-4)) < 3
    assert right(fit_ranker(rows, 1e-4, hidden_units=4)) == 3


def test_the_cross_encoder_reads_the_statement_and_the_candidates_mentions_marked():
    from diplotag.data.sentences import sentence_bounds
    from diplotag.model.holder import rerank_input

    text = "Talks ended. Beijing said China opposed the sale of jets to Taiwan, its envoy added."
    span = {"start": text.index("opposed"), "end": text.index(", its")}
    mentions = gazetteer().mentions(text)
    first, second = rerank_input(text, sentence_bounds(text), span, "China", mentions)
    assert (first, second) == ("China", "Talks ended. [ Beijing ] said [ China ] « opposed the sale of jets to Taiwan », "
                                        "its envoy added.")
    assert rerank_input(text, sentence_bounds(text), span, "Taiwan", mentions)[1].endswith("to [ Taiwan ] », its envoy added.")
    assert rerank_input(text, sentence_bounds(text), span, "none", mentions)[0] == "nobody"


def test_the_cross_encoder_can_read_the_documents_head_where_the_issuer_is_named():
    """With `head_words`, the document's first words (its headline or dateline, which name a
    briefing's issuer) follow the context, the candidate marked there too; never twice; last, so
    that truncation takes them before the statement's closing mark; never half a word."""
    from diplotag.data.sentences import sentence_bounds
    from diplotag.model.holder import rerank_input

    text = "Japan MOFA press release, Tokyo\n\nAnswer to question 2.\n\nIt met. The Government opposes the use of water cannon."
    span = {"start": text.index("opposes"), "end": len(text) - 1}
    mentions, bounds = gazetteer().mentions(text), sentence_bounds(text)
    assert rerank_input(text, bounds, span, "Japan", mentions, head_words=3)[1] == (
        "It met. The Government « opposes the use of water cannon ». … [ Japan ] MOFA press")
    assert rerank_input(text, bounds, span, "Japan", mentions)[1] == "It met. The Government « opposes the use of water cannon »."
    early = {"start": text.index("MOFA"), "end": text.index(", Tokyo")}  # no head before a statement in the head
    assert rerank_input(text, bounds, early, "Japan", mentions, head_words=3)[1] == "[ Japan ] « MOFA press release », [ Tokyo ]"
    from diplotag.model.stance import CONTEXT_CHARS

    long = "Briefing " + "x" * (CONTEXT_CHARS - 12) + " Manila" + " filler." * 100 + " The Government opposes it."
    span = {"start": long.index("opposes"), "end": len(long) - 1}
    assert rerank_input(long, sentence_bounds(long), span, "Japan", [], head_words=5)[1].endswith("». … Briefing " + "x" * (CONTEXT_CHARS - 12))
    one_sentence = "abcdefghij " * 91 + "The Government opposes it."  # the context starts inside a word of the head
    span = {"start": one_sentence.index("opposes"), "end": len(one_sentence) - 1}
    head = rerank_input(one_sentence, sentence_bounds(one_sentence), span, "Japan", [], head_words=100)[1].split(" … ")[1]
    assert set(head.split()) == {"abcdefghij"}


def test_the_agent_of_a_passive_inside_a_statement_is_told_from_its_object():
    """In "boats « sold by China to Bangladesh »" China acts; Bangladesh, named inside too, does not."""
    from diplotag.model.holder import FEATURES

    text = "The navy commissioned refurbished boats sold by China to Bangladesh last year."
    span = {"start": text.index("sold"), "end": text.index(" last"), "label": "EQUIPMENT_TRANSFER", "stance": "support"}
    names, rows = candidate_features(text, span, gazetteer().mentions(text), [(0, len(text))])
    agent = FEATURES.index("agent_inside_statement")
    assert rows[names.index("China")][agent] == 1 and rows[names.index("Bangladesh")][agent] == 0


@pytest.mark.parametrize("text,statement,supplier", [
    ("Last year the navy bought four aircraft sold by Norway to patrol its coast.", "sold by Norway", "Norway"),
    ("Seychelles still flies the Dornier aircraft gifted by India in 2018.", "the Dornier aircraft gifted by India in 2018",
     "India"),
    ("The navy commissioned refurbished patrol boats donated by Japan.", "refurbished patrol boats donated by Japan", "Japan"),
    ("The army fields torpedoes supplied by Germany.", "torpedoes supplied by Germany", "Germany"),  # "to…" is no auxiliary
])
def test_a_statement_that_is_a_transfers_participle_phrase_marks_its_agent_the_supplier(text, statement, supplier):
    """"aircraft « sold by Norway »": the supplier holds it; "Moldova « received carriers donated by
    Romania »": the recipient's own verb opens it, so the agent is not marked."""
    from diplotag.model.holder import FEATURES

    feature = FEATURES.index("supplier_postmodifier")

    def marked(text, statement):
        span = {"start": text.index(statement), "end": text.index(statement) + len(statement), "stance": "support"}
        names, rows = candidate_features(text, span, gazetteer().mentions(text), [(0, len(text))])
        return {n for n, row in zip(names, rows) if row[feature]}
    assert marked(text, statement) == {supplier}
    for text, statement in (("Moldova received 16 armoured personnel carriers donated by Romania.",
                             "received 16 armoured personnel carriers donated by Romania"),
                            ("Jordan receives 12 helicopters paid for by the United States.",
                             "receives 12 helicopters paid for by the United States"),
                            ("China opposed the deal financed by Japan.", "opposed the deal financed by Japan"),
                            ("The aircraft was handed over for use by the Sri Lanka Air Force.",
                             "handed over for use by the Sri Lanka Air Force")):  # the recipient
        assert marked(text, statement) == set()


def test_a_wire_credit_names_no_actor_but_the_armed_forces_abbreviation_does():
    text = ("JAKARTA, Oct 19 (AFP) - Indonesia bought boats, an official told AFP. The AFP chief said so.\n"
            "AFP: Will Jakarta buy more? (Photo: Bay Ismoyo / AFP)")
    assert [name for _, _, name in gazetteer().mentions(text)] == ["Indonesia", "Indonesia", "Philippines", "Indonesia"]


@pytest.mark.parametrize("text,actor,is_object", [
    ("Astudillo thanked the Korean people for the gift of two patrol boats.", "South Korea", 1),
    ("The minister met Japanese officials and welcomed the gift of two patrol boats.", "Japan", 1),
    ("The 44-metre Philippine patrol ship took delivery of two patrol boats.", "Philippines", 0),  # "metre" is no verb
    ("The visiting Chinese premier welcomed the gift of two patrol boats.", "China", 0),
    ("The minister is expected to visit China to discuss the gift of two patrol boats.", "China", 1),
    ("The minister will meet the Russian envoy to discuss the gift of two patrol boats.", "Russia", 1),
])
def test_the_actor_thanked_or_met_is_the_object_not_the_holder(text, actor, is_object):
    from diplotag.model.holder import FEATURES

    span = {"start": text.index("two patrol"), "end": len(text) - 1, "stance": "support"}
    names, rows = candidate_features(text, span, gazetteer().mentions(text), [(0, len(text))])
    assert rows[names.index(actor)][FEATURES.index("object_of_verb")] == is_object


def test_a_trained_cross_encoder_ships_and_rescores_the_rankers_top_candidates(tmp_path, tiny_base, tiny_models):
    """`train holder` with `rerank_top`: the cross-encoder trains (on a tiny random base here), its
    weight is fitted on dev, it ships as an adapter beside the ranker, and `diplotag tag` runs it."""
    import json
    import shutil

    from diplotag.cli import main
    from diplotag.model.tagger import Tagger
    from diplotag.train.common import ship_as_default

    run = tmp_path / "holder"
    tiny = ["--set", "max_train_docs=15", "--set", f"base_model={tiny_base}", "--set", "encoder_layers=2",
            "--set", "rerank_top=2", "--set", "reranker_from=null"]  # configs/holder.yaml keeps the shipped one
    assert main(["train", "holder", "--set", f"output_dir={run}", *tiny]) == 0
    dev = json.loads((run / "stamp.json").read_text())["dev_metrics"]
    from diplotag.train.holder import RERANK_MARGINS, RERANK_WEIGHTS

    saved = json.loads((run / "holder_ranker.json").read_text())  # the weight dev chose, saved for `tag`
    assert saved["rerank_weight"] == dev["eval_rerank_weight"] in RERANK_WEIGHTS and saved["rerank_top"] == 2
    margin = math.inf if saved["rerank_margin"] is None else saved["rerank_margin"]  # JSON has no infinity
    assert margin in RERANK_MARGINS and HolderRanker.from_pretrained(run).rerank_margin == margin
    models = tmp_path / "models"
    for name in ("tagger", "stance"):
        shutil.copytree(tiny_models / name, models / name)
    ship_as_default(run, models / "holder")
    assert (models / "holder" / "reranker" / "adapter_model.safetensors").exists()
    assert not list((models / "holder").rglob("checkpoint-*")) and not (models / "holder" / "reranker" / "model.safetensors").exists()
    tagger = Tagger.from_pretrained(models)
    assert tagger.holder_reranker is not None and tagger.holder_ranker.rerank_top == 2
    asked = []
    real = tagger._pair_probs
    tagger._pair_probs = lambda model, *a: asked.append(model) or real(model, *a)
    # the cross-encoder decides among the ranker's top two, however far the ranker leads
    tagger.holder_ranker.rerank_weight, tagger.holder_ranker.rerank_margin = 1000.0, float("inf")
    text = "Beijing said China opposed the sale of jets to Taiwan by the United States, its envoy added."
    spans = [{"start": text.index("opposed"), "end": text.index(", its"), "label": "EQUIPMENT_TRANSFER", "stance": "oppose"}]
    tagger.predict_holders([text], [spans])
    names, rows = candidate_features(text, spans[0], gazetteer().mentions(text), [(0, len(text))])
    top_two = {names[i] for i in np.argsort(-tagger.holder_ranker.scores(rows), kind="stable")[:2]}
    assert tagger.holder_reranker in asked and spans[0]["holder"] in top_two and 0 < spans[0]["holder_score"] <= 1
    shutil.rmtree(models / "holder" / "reranker")  # a ranker that expects its cross-encoder does not run without it
    with pytest.raises(FileNotFoundError, match="cross-encoder"):
        Tagger.from_pretrained(models)
    # a run's holder model beside the folder's tagger and stance model (`--holder`: the accurate preset's
    # runs/base/holder), its cross-encoder read from the run as trained; a folder with none is named
    beside = Tagger.from_pretrained(models, holder_path=run)
    assert beside.holder_reranker is not None and beside.holder_ranker.rerank_weight == saved["rerank_weight"]
    spans = [{k: s[k] for k in ("start", "end", "label", "stance")} for s in spans]
    beside.predict_holders([text], [spans])
    assert spans[0]["holder"] in names and 0 < spans[0]["holder_score"] <= 1
    with pytest.raises(FileNotFoundError, match="no holder model at .*nowhere"):
        Tagger.from_pretrained(models, holder_path=tmp_path / "nowhere")
    # scoring predictions alone, no model is loaded: a holder model would be named in the report, unused
    assert main(["eval", "--data", str(tmp_path / "gold.jsonl"), "--pred", str(tmp_path / "pred.jsonl"),
                 "--holder", str(run)]) == 2

    # kept, not trained again (`reranker_from`): the same weights in the new run, stamped by those weights,
    # wherever they lie; one trained with other settings, or not by `train holder`, refused
    import yaml

    from diplotag.train.config import load_config

    moved = tmp_path / "elsewhere"
    ship_as_default(run / "reranker", moved)  # kept in its shipped form, as configs/holder.yaml keeps it
    assert main(["train", "holder", "--set", f"output_dir={tmp_path / 'kept'}", *tiny[:-2], "--set", f"reranker_from={moved}"]) == 0
    kept = json.loads((tmp_path / "kept" / "stamp.json").read_text())
    weights = (run / "reranker" / "adapter" / "adapter_model.safetensors").read_bytes()
    assert (tmp_path / "kept" / "reranker" / "adapter_model.safetensors").read_bytes() == weights
    assert not (tmp_path / "kept" / "reranker" / "checkpoints").exists()
    ship_as_default(tmp_path / "kept", tmp_path / "shipped")  # and ships as it came
    assert (tmp_path / "shipped" / "reranker" / "adapter_model.safetensors").read_bytes() == weights
    assert not (tmp_path / "shipped" / "reranker" / "model.safetensors").exists()
    config = lambda where: load_config("configs/holder.yaml", [v for v in tiny[:-2] if v != "--set"] + [f"reranker_from={where}"])
    assert config(moved).sha256() == config(run / "reranker").sha256() == kept["config_sha256"]
    with pytest.raises(ValueError, match="max_length"):
        load_config("configs/holder.yaml", [f"base_model={tiny_base}", "max_length=64", f"reranker_from={moved}"])
    for other in (tmp_path, "model/default/gate"):  # not a model, and a model of another task
        with pytest.raises(ValueError, match="no cross-encoder"):
            load_config("configs/holder.yaml", [f"reranker_from={other}"])
    with pytest.raises(ValueError, match="output_dir"):
        load_config("configs/holder.yaml", [f"output_dir={tmp_path / 'kept'}", f"reranker_from={tmp_path / 'kept' / 'reranker'}"])
    assert load_config("configs/holder.yaml", ["rerank_top=0", f"reranker_from={tmp_path}"]).rerank_top == 0  # unused: unchecked
    older = tmp_path / "older"  # kept from before `head_words` existed: read as its default, 0
    shutil.copytree(moved, older)
    settings = yaml.safe_load((older / "diplotag_config.yaml").read_text())
    (older / "diplotag_config.yaml").write_text(yaml.safe_dump({k: v for k, v in settings.items() if k != "head_words"}))
    assert config(older).sha256() == config(moved).sha256()
    with pytest.raises(ValueError, match="head_words: 0"):
        load_config("configs/holder.yaml", [v for v in tiny[:-2] if v != "--set"] + ["head_words=5", f"reranker_from={older}"])


def test_the_cross_encoders_probabilities_go_back_to_their_own_statements():
    """Pairs of several documents go to the cross-encoder in one call; each probability must come
    back to its (statement, candidate): here it favours the ranker's second, third and first
    candidate of the three statements, and with a large weight those must win."""
    from diplotag.data.sentences import sentence_bounds

    ranker = _ranker()
    ranker.rerank_top, ranker.rerank_weight = 3, 1000.0
    texts = ["Japan said it welcomed the transfer of radars by the United States to the Philippines.",
             "China warned Vietnam. Beijing opposed the patrols, Hanoi said, while Tokyo said nothing.",
             "Russia said it rejected the sale of jets to India by France, the Kremlin added."]
    spans = [[{"start": texts[0].index("welcomed"), "end": texts[0].index(" by the"), "label": "EQUIPMENT_TRANSFER",
               "stance": "support"}],
             [{"start": texts[1].index("opposed"), "end": texts[1].index(", Hanoi"), "label": "FREEDOM_OF_NAVIGATION",
               "stance": "oppose"}],
             [{"start": texts[2].index("rejected"), "end": texts[2].index(", the"), "label": "EQUIPMENT_TRANSFER",
               "stance": "oppose"}]]
    favoured = []
    for text, doc, rank in zip(texts, spans, (1, 2, 0)):
        names, rows = candidate_features(text, doc[0], gazetteer().mentions(text), sentence_bounds(text))
        favoured.append(names[np.argsort(-ranker.scores(rows), kind="stable")[rank]])
    calls = []

    marked = [f"« {t[d[0]['start']:d[0]['end']].split()[0]} " for t, d in zip(texts, spans)]  # its first word

    def favour(pairs):  # which statement a pair is about, from its marked context
        calls.append(len(pairs))
        return [0.99 if first == ("nobody" if favoured[k] == "none" else favoured[k]) else 0.01
                for first, context in pairs for k in [next(k for k, m in enumerate(marked) if m in context)]]

    ranker.predict(texts, spans, [sentence_bounds(t) for t in texts], favour)
    assert calls == [9] and [doc[0]["holder"] for doc in spans] == favoured
    # the ranker leads by 1.5, 0 and 4.5: past a margin of 1, the first and last statements keep
    # its choice unasked, and the middle one's three pairs still come back to it
    ranker.rerank_margin, calls[:] = 1.0, []
    ranker.predict(texts, spans, [sentence_bounds(t) for t in texts], favour)
    assert calls == [3] and [doc[0]["holder"] for doc in spans] == ["Japan", favoured[1], "Russia"]


def test_a_stance_model_that_reads_the_holder_reads_it_once_the_holder_is_found(tmp_path, tiny_models):
    """`holder_in_input`: `tag` reads each statement with "unknown" first (the ranker needs its
    stance), then again with the holder the ranker found; eval scores the stance with each holder."""
    import shutil

    import yaml

    from diplotag.eval.report import model_predictions
    from diplotag.model.tagger import Tagger

    models = tmp_path / "models"
    shutil.copytree(tiny_models, models)
    (models / "stance" / "diplotag_config.yaml").write_text(yaml.safe_dump({"holder_in_input": True, "max_length": 160}))
    tagger = Tagger.from_pretrained(models)
    assert tagger.stance_reads_holder
    tagger.holder_ranker = _ranker()
    firsts = []
    real = tagger._pair_probs
    tagger._pair_probs = lambda model, tok, pairs, n: firsts.append([a for a, _ in pairs]) or real(model, tok, pairs, n)
    text = "The sale of radars to Taipei is a provocation, Beijing's foreign ministry said on Monday."
    spans = [{"start": 0, "end": 44, "label": "EQUIPMENT_TRANSFER", "holder": "Japan"}]  # an earlier run's holder
    tagger.predict_stance_and_holders([text], [spans])
    assert firsts == [["equipment transfer by unknown"], [f"equipment transfer by {spans[0]['holder']}"]]

    firsts.clear()
    gold = [{"id": "d", "text": text, "spans": [dict(spans[0], stance="oppose", holder="Taiwan")]}]
    _, stance, holders, by_holder = model_predictions(tagger, gold)
    assert firsts[-3:] == [["equipment transfer by unknown"], [f"equipment transfer by {holders[0][0]}"],
                           ["equipment transfer by Taiwan"]]  # without, with the predicted and with the gold holder
    assert set(by_holder) == {"unknown", "predicted", "gold"}


def test_holder_reading_stance_examples_name_the_holder_half_the_time_and_dev_always(small_corpus, tiny_base):
    from diplotag.data.schema import load_corpus
    from diplotag.train.config import load_config
    from diplotag.train.stance import stance_examples

    cfg = load_config("configs/stance.yaml", [f"train_file={small_corpus / 'train.jsonl'}", "holder_in_input=true",
                                              f"dev_file={small_corpus / 'dev.jsonl'}", f"base_model={tiny_base}"])
    records = [dict(r, spans=[dict(s, holder="Japan") for s in r["spans"]]) for r in load_corpus(cfg.train_file)]
    label2id = {s: i for i, s in enumerate(cfg.labels)}
    firsts = [row["first"] for row in stance_examples(records, cfg, label2id, jitter=True)]
    named = sum(f.endswith(" by Japan") for f in firsts)
    assert sum(f.endswith(" by unknown") for f in firsts) + named == len(firsts) and 0.3 < named / len(firsts) < 0.7
    assert all(row["first"].endswith(" by Japan") for row in stance_examples(records, cfg, label2id, jitter=False))
    plain = load_config("configs/stance.yaml", [f"train_file={small_corpus / 'train.jsonl'}"])
    assert all(" by " not in row["first"] for row in stance_examples(records, plain, label2id, jitter=True))


def test_stance_training_reads_the_holders_a_ranker_gives_out_of_fold():
    """`predicted_holders`: each statement's holder replaced by a ranker's guess (fitted on other
    documents); the gold records untouched; a statement that records no holder keeps none."""
    from diplotag.train.holder import predicted_holders

    pairs = [("Beijing", "China", "Taipei"), ("Moscow", "Russia", "Kyiv"), ("Tokyo", "Japan", "Manila"),
             ("Seoul", "South Korea", "Hanoi"), ("Paris", "France", "Canberra")] * 2
    records = []
    for i, (speaker, holder, other) in enumerate(pairs):
        text = f"The sale of jets to {other} is a provocation, {speaker} said on Monday."
        span = {"start": 0, "end": text.index(","), "label": "EQUIPMENT_TRANSFER", "stance": "oppose", "holder": holder}
        records.append({"id": str(i), "text": text, "spans": [span, dict(span, holder=None)]})
    records[0]["spans"][0]["holder"] = "Germany"  # a holder its text never names: no ranker can give it
    guessed = predicted_holders(records, folds=5)
    assert [r["spans"][0]["holder"] for r in guessed] == [h for _, h, _ in pairs]  # the speaker, learnt from other folds
    assert all(r["spans"][1]["holder"] is None for r in guessed)
    assert [r["spans"][0]["holder"] for r in records][:2] == ["Germany", "Russia"]  # the gold stays
    moved = [dict(r, text=r["text"].replace("is a provocation", "is welcome")) for r in records[:2]]
    assert [r["spans"][0]["holder"] for r in predicted_holders(moved, fitted_on=records)] == ["China", "Russia"]


def test_eval_scores_the_holders_again_given_the_gold_stance(tiny_models):
    """The report shows what the stance model's errors cost the holders: a statement the stance
    model calls support gets its speaker, and `none` once it is given its gold stance, neutral."""
    from diplotag.eval import metrics
    from diplotag.eval.report import model_predictions
    from diplotag.model.tagger import Tagger

    tagger = Tagger.from_pretrained(tiny_models)
    tagger.holder_ranker, tagger.holder_reranker = _ranker(), None

    def support(texts, spans_per_doc, bounds_per_doc=None):
        for doc in spans_per_doc:
            for s in doc:
                s["stance"], s["stance_scores"] = "support", {"support": 0.9, "oppose": 0.05, "neutral": 0.05}

    tagger.predict_stance = support
    text = "The sale of radars to Taipei is a provocation, Beijing's foreign ministry said on Monday."
    gold = [{"id": "d", "text": text,
             "spans": [{"start": 0, "end": 44, "label": "EQUIPMENT_TRANSFER", "stance": "neutral", "holder": "none"}]}]
    _, _, holders, _ = model_predictions(tagger, gold)
    assert holders == (["China"], ["none"], ["none"])
    scores = metrics.holder_scores(["none"], *holders)
    assert scores["accuracy"] == 0.0 and scores["accuracy_with_gold_stance"] == 1.0
