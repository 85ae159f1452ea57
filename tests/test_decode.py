"""Decoding a statement: whole words only, and no fragment without content."""
import numpy as np
import pytest

from diplotag.data.align import bio_labels, encode_document
from diplotag.model.tagger import decode_document, has_content, snap_to_words

TEXT = "Beijing’s opposition to the re-armed fleet was clear."


@pytest.mark.parametrize("start,end,expected", [
    (8, 20, "opposition"),             # the possessive "s" the tokenizer split off after a curly apostrophe
    (7, 20, "opposition"),             # … or its apostrophe
    (0, 5, "Beijing’s"),               # an end inside a word moves on to its last character
    (13, 20, "opposition"),            # a start inside a word moves back to its first
    (31, 36, "re-armed"),              # a hyphen joins the word
    (10, 26, "opposition to the"),     # whole words are left alone
])
def test_statements_start_and_end_on_word_edges(start, end, expected):
    a, b = snap_to_words(TEXT, start, end)
    assert TEXT[a:b] == expected


@pytest.mark.parametrize("words,content", [(["reaffirmed", "the"], False), (["has", "been"], False),
                                           (["expressed", "Japan’s"], False),
                                           (["said", "it", "would"], False), (["slammed", "the", "sale"], True)])
def test_fragments_without_a_content_word(words, content):
    assert has_content(words) is content


def test_decoding_never_returns_a_statement_that_starts_inside_a_word(default_tokenizer):
    """A tagger that puts B- on the split-off "s" of "Beijing’s": the statement starts at
    "opposition", and a fragment of function words elsewhere is dropped."""
    text = "Beijing’s opposition to the sale is firm, and it said the"
    enc = encode_document(default_tokenizer, text)
    tags = bio_labels(["EQUIPMENT_TRANSFER"])
    probs = np.full((len(enc.input_ids), len(tags)), 0.01, dtype=np.float32)
    probs[:, 0] = 0.98
    for t, (a, b) in enumerate(enc.offsets):
        if 8 <= a < 32:  # "s opposition to the sale": B on the "s", I after
            probs[t] = [0.01, 0.98, 0.01] if a == 8 else [0.01, 0.01, 0.98]
        if a >= text.index("said"):  # "said the": B then I, no content word
            probs[t] = [0.01, 0.98, 0.01] if a == text.index("said") else [0.01, 0.01, 0.98]
    index = list(range(len(enc.input_ids)))
    spans = decode_document(text, enc, [(index, probs)], dict(enumerate(tags)), min_words=2)
    assert [text[s["start"]:s["end"]] for s in spans] == ["opposition to the sale"]


def test_a_pipeline_loaded_tagger_gives_the_labels_tagger_gives(tiny_models):
    """The saved folder in transformers' own pipeline: per token, the same label as `Tagger`'s
    forward pass (the pipeline shows non-O tokens only)."""
    from transformers import pipeline

    from diplotag.model.tagger import Tagger

    text = "Japan will hand over two patrol vessels to the Philippine Navy next year."
    tagger = Tagger.from_pretrained(tiny_models / "tagger", device="cpu")
    enc = tagger.tokenizer(text, return_offsets_mapping=True)
    probs = tagger._run(tagger.model, [enc["input_ids"]], tagger.tokenizer.pad_token_id)[0]
    ours = {tuple(o): tagger.id2label[int(p.argmax())] for o, p in zip(enc["offset_mapping"], probs) if o[1] > o[0]}
    theirs = pipeline("token-classification", model=str(tiny_models / "tagger"), device="cpu")(text)
    assert theirs and all(ours[(e["start"], e["end"])] == e["entity"] for e in theirs)
    assert {k for k, v in ours.items() if v != "O"} == {(e["start"], e["end"]) for e in theirs}
