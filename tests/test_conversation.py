"""Follow-ups: which questions lean on the one before, and what is searched for them."""

from __future__ import annotations

import pytest

from rag.answer.conversation import is_follow_up, rewrite_follow_up

TAKEOVER = "What did Glazer offer for Manchester United?"


@pytest.mark.parametrize(
    "question",
    [
        "How much per share?",  # ellipsis: short, naming nothing
        "When?",
        "Who else is running in that race?",  # a reference
        "Who else is standing?",  # "else" leans on whoever was named before
        "And how much went to Brazil?",
    ],
)
def test_a_question_that_leans_on_the_one_before_is_a_follow_up(question):
    assert is_follow_up(question)


@pytest.mark.parametrize(
    "question",
    [
        "What is the inflation rate?",  # short, but says what it is about
        "How many jobs will go?",
        "Who won the Oscar?",  # names its subject
        "What did EXIM approve under Project Vault?",
    ],
)
def test_a_question_that_stands_alone_is_not(question):
    assert not is_follow_up(question)


def test_a_follow_up_is_searched_with_the_previous_question():
    assert rewrite_follow_up("How much per share?", [TAKEOVER]) == (
        "How much per share? (following: What did Glazer offer for Manchester United)")
    assert rewrite_follow_up("How much per share?", []) == "How much per share?"
