import pytest

from rag.answer.text import KeyTerm, key_terms, mentions, numbers


def terms(question):
    return [(t.text, t.kind) for t in key_terms(question)]


def test_key_terms_group_capitalised_runs_and_skip_the_question_word():
    assert terms("What loan did the World Bank approve for Project Vault?") == [
        ("World Bank", "name"),
        ("Project Vault", "name"),
    ]


def test_key_terms_keep_acronyms_numbers_and_split_possessives():
    found = terms("How much did the DFC invest in 2025 under India's National Mission?")
    assert ("DFC", "acronym") in found
    assert ("2025", "number") in found
    assert ("India", "name") in found and ("National Mission", "name") in found


def test_demonyms_are_descriptors_that_need_not_match():
    found = key_terms("Which Asian nation chairs the forum?")
    assert [(t.text, t.required) for t in found] == [("Asian", False)]


@pytest.mark.parametrize(
    ("text", "term", "kind"),
    [
        ("The US International Development Finance Corporation invested", "DFC", "acronym"),
        ("a Memorandum of Understanding was signed", "MoU", "acronym"),
        ("The United States said on Monday", "US", "acronym"),
        ("Washington and Tokyo agreed", "Japan", "name"),
        ("Japanese officials said", "Japan", "name"),
        ("Chinese export limits", "China", "name"),
        ("the Minerals Security Partnership (MSP) ended", "Minerals Security Partnership", "name"),
        ("Secretary of State Marco Rubio hosted", "Secretary Rubio", "name"),
    ],
)
def test_mentions_accepts_the_forms_news_text_uses(text, term, kind):
    assert mentions(text, KeyTerm(term, kind))


@pytest.mark.parametrize(
    ("text", "term"),
    [
        ("Australia signed", "Austria"),
        ("Chile exports copper", "China"),
        ("the world's largest bank", "World Bank"),
    ],
)
def test_mentions_rejects_different_names(text, term):
    assert not mentions(text, KeyTerm(term, "name"))


def test_a_name_with_punctuation_is_looked_up_as_text():
    # A model's claim may open with an entity like "Orion (CMC" (spaCy's span); its initials are
    # text, not a regex.
    assert not mentions("The DFC gave the consortium money.", KeyTerm("Orion Critical (Mineral Consortium", "name"))


def test_numbers_agree_across_formats():
    assert 10e9 in numbers("up to USD 10 billion")
    assert 10e9 in numbers("a $10bn loan")
    assert 100000.0 in numbers("1,00,000 tons")
    assert 11.0 in numbers("eleven new agreements")
    assert 70.0 in numbers("about 70% of production")
    assert mentions("USD 565 million for rare earths", KeyTerm("565", "number"))
    assert not mentions("USD 565 million for rare earths", KeyTerm("566", "number"))
