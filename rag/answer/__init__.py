"""Stage 3, answer: takes a question and the index and gives a cited `Answer`: hybrid retrieval of
passages, the extractive or LLM answerer, citation checks, confidence and answerability. The
`rag.Assistant` on top wires these together.
"""
