"""Retrieval and answers over the bundled corpus, through the public API and the CLI."""

import json
import os
import subprocess
import sys
from datetime import date

import pytest

from rag.answer.citations import REFUSAL
from rag.answer.retrieve import Filters
from rag.assistant import Final, QuestionError, Sources, Token

EXIM_QUESTION = "What did EXIM approve under Project Vault?"
PROJECT_VAULT_ARTICLE = "corpus/ani-2026-critical-minerals-ministerial-project-vault.txt"


@pytest.mark.parametrize(
    ("question", "article"),
    [
        (
            "How big was the credit line the American export bank okayed for a national mineral stockpile?",
            "ani-2026-critical-minerals-ministerial-project-vault.txt",
        ),
        (
            "Which palace hosted the signing of the Tokyo accord on rare earths?",
            "foxbusiness-us-japan-critical-minerals-rare-earths-deal.txt",
        ),
        (
            "Who put pen to paper for Washington and New Delhi on the minerals memorandum in 2024?",
            "greenwatch-2024-10-04-us-india-critical-minerals-mou.txt",
        ),
        (
            "What body replaced the older minerals security club?",
            "us-launches-global-critical-minerals-initiative-forge.txt",
        ),
        (
            "Why did India's foreign minister travel to see the US top diplomat ahead of the minerals summit?",
            "jaishankar-rubio-meeting-before-critical-minerals-ministerial.txt",
        ),
    ],
)
def test_hybrid_retrieval_finds_the_article_for_a_paraphrase(assistant, question, article):
    sources = [p.source for p in assistant.search(question, k=3).passages]
    assert f"corpus/{article}" in sources


def test_each_retrieval_mode_ranks_the_obvious_article_first(assistant):
    for mode in ("dense", "keyword", "hybrid"):
        passages = assistant.search(EXIM_QUESTION, k=3, mode=mode).passages
        assert passages[0].source == PROJECT_VAULT_ARTICLE, mode


def test_filters_by_publisher_and_date(assistant):
    fox = assistant.search("rare earths deal", k=5, filters=Filters(publisher="fox business")).passages
    assert fox and {p.publisher for p in fox} == {"Fox Business"}
    dated = assistant.search(
        "critical minerals", k=5, filters=Filters(date_from=date(2024, 1, 1), date_to=date(2024, 12, 31))
    ).passages
    assert dated and {p.published for p in dated} == {"2024-10-04"}
    assert not assistant.search("critical minerals", filters=Filters(date_from=date(2030, 1, 1))).passages


def test_the_sample_question_is_answered_with_a_citation(assistant):
    answer = assistant.ask(EXIM_QUESTION)
    assert not answer.abstained
    assert "10 billion" in answer.answer and "[1]" in answer.answer
    cited = {c.source for c in answer.citations}
    assert cited == {PROJECT_VAULT_ARTICLE}
    assert any("Direct Loan of up to USD 10 billion" in c.quote for c in answer.citations)


def test_citation_quotes_point_at_their_text_and_the_article(assistant, corpus_settings):
    from rag.index.manifest import Manifest

    manifest = Manifest.load(corpus_settings.index_dir)
    answer = assistant.ask("How much did the DFC commit to tungsten in Kazakhstan?")
    assert "700 million" in answer.answer
    for citation in answer.citations:
        assert citation.quote == " ".join(citation.text[a:b] for a, b in citation.quote_spans)
        article = (corpus_settings.index_dir / manifest.documents[citation.source].text_file).read_text()
        assert article[citation.start : citation.end] == citation.text


@pytest.mark.parametrize(
    "question",
    [
        "What did Germany's critical minerals fund invest in?",
        "How much did EXIM lend for lithium in Chile?",
        "What loan did the World Bank approve for Project Vault?",
        "Who won the 2022 football World Cup?",
    ],
)
def test_questions_the_corpus_does_not_answer_are_declined(assistant, question):
    answer = assistant.ask(question)
    assert answer.abstained
    assert answer.answer.startswith(REFUSAL)
    assert answer.citations == []
    assert answer.nearest, "the closest passages are offered, labelled as such"
    for passage in answer.nearest:  # each marks one of its sentences, the one nearest the question
        assert len(passage.quote_spans) == 1 and passage.quote == passage.text[slice(*passage.quote_spans[0])]


def test_a_refusal_marks_the_sentence_that_would_settle_it(assistant):
    # EXIM, not the World Bank, approved Project Vault's loan: the reader of the refusal sees that sentence marked
    answer = assistant.ask("What loan did the World Bank approve for Project Vault?")
    assert answer.abstained
    assert any("EXIM" in passage.quote for passage in answer.nearest), [p.quote for p in answer.nearest]


def test_stream_yields_sources_before_the_answer(assistant):
    events = list(assistant.stream(EXIM_QUESTION))
    kinds = [type(e) for e in events]
    assert kinds[0] is Sources and kinds[-1] is Final
    assert Token in kinds
    assert "".join(e.text for e in events if isinstance(e, Token)) == events[-1].answer.answer


def test_a_follow_up_is_searched_with_the_previous_question(assistant):
    answer = assistant.ask("And how much went to Brazil?", history=["What has the DFC invested in?"])
    assert "DFC" in answer.searched
    assert "565 million" in answer.answer


@pytest.mark.parametrize("question", ["", "   \n\t ", "x" * 100_000])
def test_empty_or_huge_questions_get_a_message(assistant, question):
    with pytest.raises(QuestionError):
        assistant.ask(question)


def rag_cli(settings, *args):
    env = {**os.environ, "RAG_CORPUS_DIR": str(settings.corpus_dir), "RAG_INDEX_DIR": str(settings.index_dir)}
    return subprocess.run(
        [sys.executable, "-m", "rag.cli", *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_ask_json_matches_the_design_format(corpus_settings):
    result = rag_cli(corpus_settings, "ask", EXIM_QUESTION, "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert {"question", "answer", "abstained", "citations", "backend", "timings"} <= set(answer)
    assert answer["question"] == EXIM_QUESTION and answer["backend"] == "extractive"
    assert answer["abstained"] is False
    assert {"retrieve_ms", "generate_ms", "total_ms"} <= set(answer["timings"])
    citation = answer["citations"][0]
    assert {"n", "source", "title", "published", "chunk_id", "quote", "text", "score"} <= set(citation)
    assert citation["n"] == 1 and citation["source"] == PROJECT_VAULT_ARTICLE
    assert isinstance(citation["score"], float) and citation["quote"] in citation["text"]


def test_a_refusal_in_the_terminal_quotes_each_closest_passages_sentence_nearest_the_question(corpus_settings):
    result = rag_cli(corpus_settings, "ask", "What loan did the World Bank approve for Project Vault?")
    assert result.returncode == 0, result.stderr
    shown = result.stdout
    assert shown.startswith(REFUSAL) and "Nearest passages, judged not to answer it" in shown
    assert "“" in shown.split("Nearest passages")[1] and "EXIM" in shown.split("Nearest passages")[1]


def test_cli_rejects_an_empty_question_with_one_line(corpus_settings):
    result = rag_cli(corpus_settings, "ask", "  ")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "empty" in result.stderr
