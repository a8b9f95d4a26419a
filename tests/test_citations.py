"""The parser and validator of an LLM's answer: markers, claims, the numbers, dates and names
each claim may state, and the sentence a citation quotes for it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from rag.answer.citations import (
    CITATION_RE,
    MIN_SHARED_STEMS,
    REFUSAL,
    Claim,
    check_claims,
    cite,
    is_refusal,
    normalise_markers,
    split_claims,
    supporting_passage,
    unsupported_numbers,
)
from rag.answer.result import supporting_spans
from rag.answer.retrieve import Passage

DFC = (
    "The US International Development Finance Corporation invested USD 600 million in the Orion "
    "Critical Minerals Consortium and USD 565 million for rare earths in Brazil."
)
MOU = "Commerce Secretary Gina Raimondo and Piyush Goyal signed the MoU in Washington on 4 October 2024."
VAULT = "President Trump announced Project Vault, a USD 10 billion stockpile led by the Export-Import Bank."


def check(answer: str, *sources: str) -> str | None:
    return check_claims(split_claims(normalise_markers(answer, max_n=len(sources))), list(sources))


@pytest.mark.parametrize(
    ("written", "normal"),
    [
        ("It rose [1,2].", "It rose [1] [2]."),
        ("It rose [1, 2].", "It rose [1] [2]."),
        ("It rose [1][2].", "It rose [1] [2]."),
        ("It rose【1】.", "It rose [1]."),
        ("It rose 【2†source】.", "It rose [2]."),
        ("It rose [^1].", "It rose [1]."),
        ("It rose [Passage 1].", "It rose [1]."),
        ("It rose [passages 1 and 3].", "It rose [1] [3]."),
        ("It rose (Passage 2).", "It rose [2]."),
        ("It rose (1).", "It rose [1]."),
        ("It rose.(1)", "It rose. [1]"),
        ("It rose[1].", "It rose [1]."),
        ("It rose [1-3].", "It rose [1] [2] [3]."),
        ("Answer: It rose [1].", "It rose [1]."),
    ],
)
def test_malformed_markers_are_normalised(written, normal):
    assert normalise_markers(written, max_n=4) == normal


@pytest.mark.parametrize(
    "text",
    [
        "(1) The first step was a loan [2].",  # list numbering, not a citation
        "They shipped (1,000 tons) of copper [1].",
        "The group of seven (7) met [1].",  # beyond the passages given
    ],
)
def test_parenthesised_numbers_that_are_not_citations_stay(text):
    assert normalise_markers(text, max_n=4) == text


def test_markers_after_the_full_stop_belong_to_the_sentence_before():
    claims = split_claims("The U.S. signed it. [1] Then it paid USD 600 million. [2] [3]")
    assert claims == [Claim("The U.S. signed it.", [1]), Claim("Then it paid USD 600 million.", [2, 3])]


def test_a_correct_multi_citation_answer_passes():
    answer = "The DFC put USD 600 million into the Orion consortium [1]. Trump announced Project Vault [2]."
    assert check(answer, DFC, VAULT) is None


def test_one_sentence_citing_two_passages_may_combine_them():
    assert check("Orion got USD 600 million and Project Vault holds USD 10 billion [1][2].", DFC, VAULT) is None


def test_a_number_changed_by_one_digit_is_caught():
    problem = check("The DFC invested USD 566 million in Brazil's rare earths [1].", DFC)
    assert problem == "the number 566 million in sentence 1 is in none of the passages it cites"


def test_an_amount_with_the_wrong_scale_is_caught():
    assert "600 billion" in check("Orion received USD 600 billion [1].", DFC)


def test_the_same_amount_written_differently_passes():
    assert check("Project Vault is worth $10bn [1].", VAULT) is None
    assert check("Project Vault is worth 10,000,000,000 dollars [1].", VAULT) is None


def test_a_number_only_in_a_passage_the_sentence_does_not_cite_is_caught():
    problem = check("The Export-Import Bank leads Project Vault [1]. Orion got USD 600 million [1].", VAULT, DFC)
    assert problem == "the number 600 million in sentence 2 is in none of the passages it cites"


def test_a_date_not_in_the_cited_passage_is_caught():
    assert "2023" in check("Raimondo and Goyal signed the MoU on 4 October 2023 [1].", MOU)
    assert "date March" in check("Raimondo and Goyal signed the MoU in March [1].", MOU)


def test_a_date_in_the_cited_passage_passes():
    assert check("Raimondo and Goyal signed the MoU on 4 October 2024 [1].", MOU) is None


def test_a_name_not_in_the_cited_passage_is_caught():
    assert "Blinken" in check("The MoU was signed by Antony Blinken and Goyal [1].", MOU)


def test_a_citation_out_of_range_is_caught():
    problem = check("Trump announced Project Vault [1]. Raimondo signed the MoU [7].", VAULT, MOU)
    assert problem == "it cites [7] but only 2 passages were given"
    assert check("Trump announced Project Vault [0].", VAULT) == "it cites [0] but only 1 passage was given"


def test_an_uncited_sentence_is_caught():
    problem = check("Trump announced Project Vault [1]. It will change the market forever.", VAULT)
    assert problem == "sentence 2 cites nothing"


def test_a_sentence_sharing_no_words_with_its_passage_is_caught():
    assert check("The bananas are yellow [1].", VAULT) == "sentence 1 shares no words with the passages it cites"


@pytest.mark.parametrize("answer", ["USD 600 million [1].", "$600m [1]", "2024 [2]."])
def test_a_cited_figure_alone_passes_when_its_passage_states_it(answer):
    assert check(answer, DFC, MOU) is None


@pytest.mark.parametrize("answer", ["USD 650 million [1].", "2024 [1].", "4 [3]."])
def test_a_cited_figure_alone_is_checked_like_any_figure(answer):
    assert "is in none of the passages it cites" in (check(answer, DFC, MOU, VAULT) or "")


def test_an_empty_answer_is_a_problem():
    assert check("   ", VAULT) == "the model wrote no answer"


def test_bare_numbers_are_checked_by_value():
    assert unsupported_numbers("It covers 54 countries and 43 ministers.", "54 countries, 43 foreign ministers") == []
    assert unsupported_numbers("It covers 55 countries.", "54 countries") == ["55"]
    assert unsupported_numbers("one of the partners", "partners") == []  # "one" as a pronoun


@pytest.mark.parametrize(
    "text", [REFUSAL, f"  {REFUSAL} [1]", f'"{REFUSAL}"', f"**{REFUSAL}**", "not in these articles", f"Answer: {REFUSAL}"]
)
def test_refusals_are_recognised(text):
    assert is_refusal(text)


def test_an_answer_is_not_a_refusal():
    assert not is_refusal("Trump announced Project Vault [1].")
    assert not is_refusal(f"Trump announced Project Vault [1]. {REFUSAL}")


def test_the_citation_format_is_the_one_the_regex_reads():
    assert CITATION_RE.fullmatch(cite(12)).group(1) == "12"


# --- attributing an uncited claim after the fact ----------------------------------------------

def test_an_uncited_claim_is_attributed_to_the_passage_that_states_it():
    assert supporting_passage("Orion received USD 600 million.", [VAULT, DFC, MOU]) == 2
    assert supporting_passage("Raimondo and Goyal signed the MoU on 4 October 2024.", [VAULT, DFC, MOU]) == 3


def test_a_claim_with_a_number_in_no_passage_has_no_support():
    assert supporting_passage("Orion received USD 600 million and USD 70 million.", [VAULT, DFC, MOU]) is None


def test_a_claim_with_a_number_from_another_passage_has_no_support():
    # 600 million is in DFC, the stockpile in VAULT: no one passage states the whole sentence
    assert supporting_passage("Project Vault is a USD 600 million stockpile.", [VAULT, DFC]) is None


def test_a_claim_with_a_date_in_no_passage_has_no_support():
    assert supporting_passage("Raimondo and Goyal signed the MoU in March.", [MOU]) is None
    assert supporting_passage("Raimondo and Goyal signed the MoU on 4 October 2023.", [MOU]) is None


def test_a_claim_with_a_name_in_no_passage_has_no_support():
    assert supporting_passage("Antony Blinken and Goyal signed the MoU in Washington.", [MOU, VAULT]) is None


def test_a_claim_needs_at_least_half_of_its_content_words_in_the_passage():
    assert MIN_SHARED_STEMS == 0.5
    assert supporting_passage("The stockpile changes.", [VAULT]) == 1  # 1 of 2 stems
    assert supporting_passage("The stockpile changes markets.", [VAULT]) is None  # 1 of 3
    assert supporting_passage("Project Vault will transform the global economy.", [VAULT]) is None


def test_a_claim_of_stopwords_only_has_no_support():
    assert supporting_passage("It is.", [VAULT]) is None


def test_of_two_supporting_passages_the_one_sharing_more_words_wins():
    short = "Project Vault is a USD 10 billion stockpile."
    claim = "Project Vault is a USD 10 billion stockpile led by the bank."
    assert supporting_passage(claim, [short]) == 1  # 5 of its 7 stems: it would do on its own
    assert supporting_passage(claim, [short, VAULT]) == 2  # all 7
    assert supporting_passage(claim, [VAULT, short]) == 1


def test_a_tie_goes_to_the_stronger_passage():
    assert supporting_passage("Trump announced Project Vault.", [VAULT, VAULT]) == 1


def test_an_uncited_figure_alone_goes_to_the_best_ranked_passage_that_states_it():
    assert supporting_passage("USD 600 million", [VAULT, DFC, DFC]) == 2
    assert supporting_passage("$10bn.", [VAULT, DFC]) == 1
    assert supporting_passage("USD 70 million", [VAULT, DFC]) is None


def test_a_refusal_is_never_attributed():
    assert supporting_passage(REFUSAL, ["Not in these articles, the editors said."]) is None


@pytest.mark.parametrize(
    "claim",
    [
        "Orion received USD 600 million.",
        "The DFC invested $600m in Orion.",
        "Raimondo and Goyal signed the MoU in Washington.",
        "President Trump announced a USD 10 billion stockpile.",
    ],
)
def test_an_attributed_claim_passes_the_check_of_a_cited_one(claim):
    sources = [VAULT, DFC, MOU]
    n = supporting_passage(claim, sources)
    assert n is not None
    assert check_claims([Claim(claim, [n])], sources) is None


# --- the quote a citation highlights -------------------------------------------------------------

KSE_QUESTION = "Who is the chairman of the Karachi Stock Exchange who dismissed fears that the market's record rise was a bubble?"
KSE = Passage(chunk_id="kse", source="bbc/business/428.txt", title="Karachi stocks hit historic high", publisher="",
              published="", url="", start=0, end=0, similarity=0.5, text=(
                  "In 2002, the KSE was the world's best performing stock market, with the index rising 112%. "
                  "Others continued to warn that the \"bubble may burst any time\". "
                  "\"That's rubbish,\" KSE chairman Yaseen Lakhani told the BBC News website."))


def quoted(claim: str, passage: Passage, question: str) -> str:
    return " ".join(passage.text[a:b] for a, b in supporting_spans(claim, passage, question))


def test_the_quote_is_the_sentence_giving_the_answer_not_the_one_saying_the_question_back():
    # Qwen's answer on BBC; its words from the question match the first sentence as well as the answer's
    claim = "Yaseen Lakhani, the chairman of the Karachi Stock Exchange, dismissed fears that the market's record rise was a bubble."
    assert quoted(claim, KSE, KSE_QUESTION).endswith("KSE chairman Yaseen Lakhani told the BBC News website.")
    assert quoted(claim, KSE, "").startswith("In 2002"), "without the question, the words tie and the first wins"


def test_a_quoted_sentence_finds_itself_whatever_was_asked():
    sentence = "In 2002, the KSE was the world's best performing stock market, with the index rising 112%."
    assert quoted(sentence, KSE, KSE_QUESTION) == sentence
    assert quoted("Nothing here matches.", KSE, KSE_QUESTION) == ""


def test_a_citation_marker_is_no_number_to_quote():
    passage = replace(KSE, text="All these classes may collapse to one class. Co-NP is the class of the complement problems of NP.")
    claim = "The complement problems of NP are in co-NP. [1]"
    assert quoted(claim, passage, "In what class are the complement problems of NP?").startswith("Co-NP")
