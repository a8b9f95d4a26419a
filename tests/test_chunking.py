from rag.ingest.chunking import chunk_text, split_sentences


def sentences(text):
    return [text[s.start : s.end] for s in split_sentences(text)]


def test_splits_on_sentence_ends_but_not_abbreviations_or_decimals():
    text = "The U.S. lent USD 1.2 billion. Dr. Rao agreed! Was it enough? Yes."
    assert sentences(text) == ["The U.S. lent USD 1.2 billion.", "Dr. Rao agreed!", "Was it enough?", "Yes."]


def test_each_line_is_split_on_its_own():
    text = "A headline without a stop\n- a list item\nA sentence. Another one."
    assert sentences(text) == ["A headline without a stop", "- a list item", "A sentence.", "Another one."]


def test_quotes_stay_with_their_sentence():
    text = 'He said, "Japan is a great partner." Then he left.'
    assert sentences(text) == ['He said, "Japan is a great partner."', "Then he left."]


def test_chunks_are_slices_of_the_text_at_sentence_boundaries():
    text = " ".join(f"Sentence number {i} says something." for i in range(40))
    chunks = chunk_text(text, max_chars=200, overlap_sentences=1)
    assert len(chunks) > 3
    for chunk in chunks:
        assert text[chunk.start : chunk.end] == chunk.text
        assert chunk.text.startswith("Sentence") and chunk.text.endswith(".")
        assert len(chunk.text) <= 200


def test_consecutive_chunks_overlap_by_one_sentence():
    text = " ".join(f"Fact {i} is here." for i in range(30))
    chunks = chunk_text(text, max_chars=120, overlap_sentences=1)
    for first, second in zip(chunks, chunks[1:], strict=False):
        last_sentence = sentences(first.text)[-1]
        assert second.text.startswith(last_sentence)


def test_every_sentence_lands_in_some_chunk():
    text = "\n".join(f"Line {i}. It continues here." for i in range(25))
    covered = set()
    for chunk in chunk_text(text, max_chars=150, overlap_sentences=0):
        covered |= set(sentences(chunk.text))
    assert covered == set(sentences(text))


def test_a_sentence_longer_than_the_chunk_size_is_kept_whole():
    long_sentence = "word " * 100 + "end."
    chunks = chunk_text(long_sentence + " Short one.", max_chars=50)
    assert chunks[0].text == long_sentence.strip()
