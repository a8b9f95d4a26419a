"""Names typed slightly wrong are matched to the index's spelling before the question is searched;
real names the index lacks, and ambiguous typos, are left as typed."""

from __future__ import annotations

import pytest

from rag.answer.spelling import NameSpeller, max_edits
from rag.index.keyword import KeywordIndex, tokenize

CHUNKS = {
    "c1": "Japan and the US signed a deal on rare earths in Tokyo.",
    "c2": "Officials in Japan said the deal covers processing.",
    "c3": "Envoys from Iran met in Vienna.",
    "c4": "Bids came from Marka Holdings and Marki Group for the mine.",
    "c5": "Minister Jaishankar met Secretary Rubio in Washington.",
    "c6": "The prime minister, Tony Blair, defended the plan.",
    "c7": "An exhibition by the painter Peter Blake opened.",
    "c8": "The aid worker Margaret Hassan was kidnapped in Baghdad.",
}
KNOWN_WORDS = frozenset({"iraq", "iran", "japan", "tokyo", "vienna"})  # as a WordPiece vocabulary would


@pytest.fixture(scope="module")
def speller() -> NameSpeller:
    ids = list(CHUNKS)
    index = KeywordIndex.build(ids, tokenize([CHUNKS[i] for i in ids]), {})
    return NameSpeller(index, CHUNKS.__getitem__, KNOWN_WORDS)


@pytest.mark.parametrize(
    ("typed", "corrected"),
    [
        ("What did Japn sign?", "What did Japan sign?"),  # a letter missing
        ("What did Jpaan sign?", "What did Japan sign?"),  # two letters swapped
        ("Who did Jaishanker meet?", "Who did Jaishankar meet?"),  # a letter wrong in a long name
        ("Who did Jiashankr meet?", "Who did Jaishankar meet?"),  # two typos in a name of ten letters
        ("What did Tony Blare say?", "What did Tony Blair say?"),  # the name the whole phrase has
        ("What did Blare say?", "What did Blake say?"),  # alone, the closest name wins
        ("what did japn sign?", "what did Japan sign?"),  # a name typed in lower case
        ("what did tony blare say?", "what did tony Blair say?"),  # the name the lower-case pair has
        ("Who kidnapped Margret Hasan?", "Who kidnapped Margaret Hassan?"),  # a typo in each word
    ],
)
def test_a_misspelt_name_takes_the_index_spelling(speller, typed, corrected):
    assert speller.correct(typed) == corrected


@pytest.mark.parametrize(
    "question",
    [
        "What did Iraq sign?",  # a real name, one letter from Iran: its absence is the answer
        "What did Marko bid?",  # as close to Marka as to Marki, both as common: a guess either way
        "What did Jxpxn sign?",  # too many typos for a name of five letters
        "What did Japan sign?",  # spelt as the index spells it
        "what did the deel cover?",  # close to "deal", which articles do not write as a name
        "Who kidnapped Margret Blake?",  # each word has a close name, but no article names them together
    ],
)
def test_real_ambiguous_or_distant_names_stay_as_typed(speller, question):
    assert speller.correct(question) == question


def test_a_refusal_may_suggest_a_close_name_even_for_a_real_word(speller):
    assert speller.suggest("Iraq") == "Iran"  # offered as "did you mean", never answered with
    assert speller.suggest("Japan") is None


def test_a_short_name_allows_one_typo_and_a_long_one_two():
    assert max_edits("Japn") == 1 and max_edits("Jaishanker") == 2


def test_the_assistant_answers_a_misspelt_name_and_says_how_it_searched(assistant):
    answer = assistant.ask("What did the US and Japn agree on rare earths?", backend="extractive")
    assert "Japan" in answer.searched
    assert not answer.abstained
    assert any("Japan" in c.title for c in answer.citations)


def test_a_real_name_absent_from_the_index_is_still_refused_as_absent(assistant):
    answer = assistant.ask("What did Iraq agree on rare earths?", backend="extractive")
    assert answer.abstained and "No article mentions Iraq" in answer.answer
