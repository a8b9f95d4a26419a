"""The LangChain interfaces (rag/langchain.py) over the bundled corpus: the retriever, the answer
chain, and the module docstring's LCEL example run as written."""

import re
from datetime import date

import pytest
from langchain_core.documents import Document
from langchain_core.runnables import RunnableLambda

import rag.langchain
from rag.answer.citations import CITATION_RE
from rag.langchain import NewsRetriever, answer_chain

EXIM_QUESTION = "What did EXIM approve under Project Vault?"
BRAZIL_FOLLOW_UP = "And how much went to Brazil?"
PROJECT_VAULT_ARTICLE = "corpus/ani-2026-critical-minerals-ministerial-project-vault.txt"
METADATA_KEYS = {"source", "title", "published", "publisher", "chunk_id", "score", "start", "end"}


@pytest.fixture(scope="module")
def retriever(corpus_settings):
    return NewsRetriever(settings=corpus_settings)


@pytest.fixture(scope="module")
def chain(corpus_settings):
    return answer_chain(corpus_settings)


@pytest.fixture
def corpus_env(corpus_settings, monkeypatch):
    """The environment the CLI would read for the test corpus: no settings passed anywhere."""
    monkeypatch.setenv("RAG_CORPUS_DIR", str(corpus_settings.corpus_dir))
    monkeypatch.setenv("RAG_INDEX_DIR", str(corpus_settings.index_dir))


def docstring_example(index: int) -> str:
    return re.findall(r"```python\n(.*?)```", rag.langchain.__doc__, re.S)[index]


# -- NewsRetriever -------------------------------------------------------------------------------


def test_retriever_returns_documents_with_metadata(retriever, corpus_settings):
    docs = retriever.invoke(EXIM_QUESTION)
    assert len(docs) == corpus_settings.top_k
    assert all(isinstance(d, Document) for d in docs)
    for doc in docs:
        assert set(doc.metadata) >= METADATA_KEYS
        assert doc.page_content
        assert doc.id == doc.metadata["chunk_id"]
        assert isinstance(doc.metadata["score"], float) and -1 <= doc.metadata["score"] <= 1
        assert 0 <= doc.metadata["start"] < doc.metadata["end"]
    assert docs[0].metadata["source"] == PROJECT_VAULT_ARTICLE
    assert docs[0].metadata["publisher"] == "ANI"
    assert "10 billion" in " ".join(d.page_content for d in docs)


def test_retriever_respects_k(corpus_settings):
    docs = NewsRetriever(settings=corpus_settings, k=2).invoke(EXIM_QUESTION)
    assert len(docs) == 2
    assert docs[0].metadata["source"] == PROJECT_VAULT_ARTICLE


def test_retriever_publisher_filter(corpus_settings):
    docs = NewsRetriever(settings=corpus_settings, publisher="Fox Business").invoke(EXIM_QUESTION)
    assert docs
    assert {d.metadata["publisher"] for d in docs} == {"Fox Business"}


def test_retriever_date_filter(corpus_settings):
    docs = NewsRetriever(
        settings=corpus_settings, date_from=date(2024, 1, 1), date_to=date(2024, 12, 31)
    ).invoke("critical minerals agreement between the US and India")
    assert docs
    assert all(d.metadata["published"].startswith("2024-") for d in docs)


def test_retriever_batch(retriever):
    first, second = retriever.batch(
        [EXIM_QUESTION, "Which palace hosted the signing of the rare earths deal?"]
    )
    assert first[0].metadata["source"] == PROJECT_VAULT_ARTICLE
    assert second and second[0].metadata["source"] != PROJECT_VAULT_ARTICLE


def test_retriever_without_arguments_reads_the_environment(corpus_env):
    docs = NewsRetriever().invoke(EXIM_QUESTION)
    assert docs[0].metadata["source"] == PROJECT_VAULT_ARTICLE


def test_docstring_lcel_example_runs_as_written(corpus_env, capsys):
    namespace: dict = {}
    exec(docstring_example(0), namespace)
    printed = capsys.readouterr().out
    assert "10 billion" in printed
    output = namespace["chain"].invoke(EXIM_QUESTION)
    assert isinstance(output, str)
    assert "10 billion" in output and output.endswith(f"Question: {EXIM_QUESTION}")


# -- answer_chain --------------------------------------------------------------------------------


def test_answer_chain_invoke(chain):
    answer = chain.invoke(EXIM_QUESTION)
    assert isinstance(answer, dict)
    assert "10 billion" in answer["answer"]
    assert answer["citations"]
    assert answer["citations"][0]["source"] == PROJECT_VAULT_ARTICLE
    assert answer["abstained"] is False
    assert 0 < answer["confidence"] < 1
    assert answer["question"] == EXIM_QUESTION


def test_answer_chain_follow_up_with_history(chain):
    answer = chain.invoke({"question": BRAZIL_FOLLOW_UP, "history": [EXIM_QUESTION]})
    # The extractive backend rewrites the follow-up with the question before it...
    assert (
        answer["searched"]
        == "How much went to Brazil? (following: What did EXIM approve under Project Vault)"
    )
    # ...and answers from the article's list of deals.
    assert answer["abstained"] is False
    assert "Brazil" in answer["answer"] and "565 million" in answer["answer"]
    assert answer["citations"][0]["source"] == PROJECT_VAULT_ARTICLE


def test_answer_chain_dict_options(chain):
    answer = chain.invoke({"question": EXIM_QUESTION, "k": 2, "publisher": "Fox Business"})
    sources = {c["source"] for c in answer["citations"] + answer["nearest"]}
    assert sources and all("foxbusiness" in s for s in sources)
    with pytest.raises(ValueError, match="unknown input keys"):
        chain.invoke({"question": EXIM_QUESTION, "top_k": 2})
    with pytest.raises(ValueError, match="date_from"):
        chain.invoke({"question": EXIM_QUESTION, "date_from": "last week"})


def test_answer_chain_batch(chain):
    answers = chain.batch([EXIM_QUESTION, {"question": BRAZIL_FOLLOW_UP, "history": [EXIM_QUESTION]}])
    assert [a["question"] for a in answers] == [EXIM_QUESTION, BRAZIL_FOLLOW_UP]
    assert "10 billion" in answers[0]["answer"]
    assert "Brazil" in answers[1]["answer"]


def test_answer_chain_streams_tokens_then_the_answer(chain):
    chunks = list(chain.stream(EXIM_QUESTION))
    *tokens, final = chunks
    assert len(tokens) >= 5
    assert all(set(c) == {"token"} for c in tokens)
    expected = chain.invoke(EXIM_QUESTION)
    assert set(final) == set(expected)
    assert final["answer"] == expected["answer"]
    assert final["citations"] == expected["citations"]
    # The tokens are the answer as it was written; the final answer numbers its citations in
    # order of first use, so the two agree once the markers are set aside.
    streamed = "".join(c["token"] for c in tokens)
    assert "10 billion" in streamed
    assert CITATION_RE.sub("[]", streamed) == CITATION_RE.sub("[]", final["answer"])


def test_answer_chain_streams_inside_an_lcel_chain(chain):
    """A chain ending with the answer chain streams its tokens; a step after it receives the
    answer object (plus "token", the whole streamed text)."""
    chunks = list((RunnableLambda(str.strip) | chain).stream(f"  {EXIM_QUESTION}  "))
    assert len(chunks) > 5 and "token" in chunks[0] and "10 billion" in chunks[-1]["answer"]
    text = chain | (lambda answer: answer["answer"])
    assert "10 billion" in text.invoke(EXIM_QUESTION)
    assert "10 billion" in list(text.stream(EXIM_QUESTION))[-1]


def test_answer_chain_without_arguments_reads_the_environment(corpus_env):
    answer = answer_chain().invoke(EXIM_QUESTION)
    assert "10 billion" in answer["answer"]
    assert answer["citations"][0]["source"] == PROJECT_VAULT_ARTICLE


def test_docstring_answer_example_runs_as_written(corpus_env, capsys):
    exec(docstring_example(1), {})
    printed = capsys.readouterr().out
    assert "10 billion" in printed
    assert printed.count("565 million") == 2  # streamed, then the final answer
    assert PROJECT_VAULT_ARTICLE in printed
