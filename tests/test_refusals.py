"""Refusals that tell the truth about the whole index, and answers that do not depend on which
unrelated articles share the index."""

from __future__ import annotations

import subprocess
import sys
from datetime import date

import pytest

from rag.answer.citations import REFUSAL
from rag.answer.retrieve import CorpusView, Filters
from rag.answer.text import KeyTerm, mentions
from rag.assistant import Assistant, QuestionError
from rag.index.ingestor import Ingestor
from tests.conftest import PROJECT_ROOT, make_project

EXIM_QUESTION = "What did EXIM approve under Project Vault?"
BLAIR_ARTICLE = (
    "Blair defends identity card plans\n\n"
    "Prime Minister Tony Blair has opened a debate on the future of public services in a speech in Leeds.\n\n"
    "Later, Mr Blair told MPs that identity cards would help to fight organised crime and illegal working. "
    "The Home Office says the cards will cost 93 pounds each.\n\n"
    "Mr Blair said the scheme would be voluntary at first and compulsory after 2010.\n"
)
UNRELATED = {
    "harbour-ferry-strike.txt": "Ferry workers strike over pay\n\nFerry crews at the harbour walked out on "
    "Monday after talks on a 4% pay rise failed. The operator approved a plan to run a reduced timetable.",
    "cup-final-report.txt": "Rovers win the cup\n\nRovers beat United 3-1 in the cup final on Saturday, "
    "their first trophy in 12 years. The board approved a bonus of 10,000 pounds per player.",
}


@pytest.fixture(scope="module")
def news_project(tmp_path_factory):
    """The bundled corpus plus an article that calls Tony Blair "Mr Blair" after his first mention,
    a few unrelated articles, and the HTML page with a prompt injection from the fixtures."""
    root = tmp_path_factory.mktemp("news")
    settings = make_project(root)
    (settings.corpus_dir / "blair-id-cards.txt").write_text(BLAIR_ARTICLE)
    for name, text in UNRELATED.items():
        (settings.corpus_dir / name).write_text(text)
    fixture = PROJECT_ROOT / "tests" / "fixtures" / "documents" / "harbour-wind-farm.html"
    (settings.corpus_dir / fixture.name).write_bytes(fixture.read_bytes())
    Ingestor(settings).run(show_progress=False)
    return Assistant.from_settings(settings)


def test_a_name_the_index_holds_is_never_said_to_be_absent(news_project):
    answer = news_project.ask("What did Tony Blair tell MPs about identity cards?")
    assert "no article mentions" not in answer.answer.lower()
    if not answer.abstained:
        assert "Mr Blair" in answer.answer


def test_a_name_no_article_holds_is_said_to_be_absent(news_project):
    answer = news_project.ask("What did Gordon Zorblax say about identity cards?")
    assert answer.abstained and answer.answer == f"{REFUSAL} No article mentions Gordon Zorblax."
    assert answer.nearest, "the closest passages are shown"


def test_the_index_is_asked_whether_any_article_mentions_a_term(news_project):
    corpus = CorpusView(news_project.retriever, Filters())
    assert corpus.mentions(KeyTerm("Tony Blair", "name"), filtered=False)
    assert not corpus.mentions(KeyTerm("Zorblax", "name"), filtered=False)
    # A year that only an article's date gives: the Greenwatch article is dated 2024-10-04.
    assert corpus.mentions(KeyTerm("2024", "number"), filtered=False)
    assert not corpus.mentions(KeyTerm("1987", "number"), filtered=False)


def test_a_filter_that_hides_the_answer_says_so(news_project):
    answer = news_project.ask(EXIM_QUESTION, filters=Filters(date_to=date(2024, 12, 31)))
    assert answer.abstained
    assert "No article within the filter (published on or before 2024-12-31) mentions EXIM" in answer.answer
    assert "ask again without the filter" in answer.answer
    unfiltered = news_project.ask(EXIM_QUESTION)
    assert not unfiltered.abstained


def test_a_date_filter_that_lets_no_article_through_says_the_filter_did_it(assistant):
    # Of the bundled articles only one is dated (2024-10-04): a date from 2025 lets none through.
    answer = assistant.ask(EXIM_QUESTION, filters=Filters(date_from=date(2025, 1, 1)))
    assert answer.abstained and answer.hidden_by_filter
    assert "No article within the filter (published on or after 2025-01-01)" in answer.answer
    assert "undated articles" in answer.answer


def test_a_filter_no_article_could_pass_is_an_error_that_says_what_to_fix(news_project):
    with pytest.raises(QuestionError, match="from 'Reuters': the publishers are ANI, Fox Business, Greenwatch"):
        news_project.ask(EXIM_QUESTION, filters=Filters(publisher="Reuters"))
    with pytest.raises(QuestionError, match=r"'from' date \(2026-01-01\) is after the 'to' date"):
        news_project.ask(EXIM_QUESTION, filters=Filters(date(2026, 1, 1), date(2025, 1, 1)))
    assert not news_project.ask(EXIM_QUESTION, filters=Filters(publisher="ani")).abstained, "any case matches"
    with pytest.raises(QuestionError) as pasted:
        news_project.ask(EXIM_QUESTION, filters=Filters(publisher="A" * 100_000))
    assert len(str(pasted.value)) < 300, "a pasted page is not echoed back whole"


def test_a_misspelt_name_in_a_full_name_is_searched_as_the_article_spells_it(news_project):
    answer = news_project.ask("What did Tony Blare tell MPs about identity cards?")
    assert answer.searched.startswith("What did Tony Blair tell MPs")
    assert "no article mentions" not in answer.answer.lower()


def test_a_refusal_for_an_absent_name_offers_the_close_one_the_index_has(news_project):
    answer = news_project.ask("What did Tony Blame say about identity cards?")  # a real word: not corrected
    assert answer.abstained
    assert answer.answer == f"{REFUSAL} No article mentions Tony Blame (did you mean Tony Blair?)."


def test_the_sample_answer_keeps_its_amount_whatever_unrelated_articles_join(news_project):
    answer = news_project.ask(EXIM_QUESTION)
    assert not answer.abstained and "10 billion" in answer.answer


def test_full_names_titles_and_aliases_mention_each_other():
    assert mentions("Later, Mr Blair told MPs", KeyTerm("Tony Blair", "name"))
    assert not mentions("Later, Blairgowrie council said", KeyTerm("Tony Blair", "name"))
    assert mentions("The UK economy grew", KeyTerm("Britain", "name"))
    assert mentions("Britain's economy grew", KeyTerm("UK", "acronym"))
    assert mentions("the United States and Japan", KeyTerm("US", "acronym"))
    assert mentions("American officials", KeyTerm("United States", "name"))


def test_an_invalid_date_is_an_error_in_one_line_not_ignored(corpus_settings):
    command = [sys.executable, "-m", "rag.cli", "ask", EXIM_QUESTION, "--date-from", "2024-13-01"]
    result = subprocess.run(command + ["--index-dir", str(corpus_settings.index_dir)], capture_output=True, text=True)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "rag ask: --date-from (RAG_DATE_FROM) '2024-13-01': should be a valid date or datetime, "
        "month value is outside expected range of 1-12"
    ]
