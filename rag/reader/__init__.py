"""The reader: a small model, trained by the project, that reads a question and a sentence together.

Takes a question and candidate sentences; gives each the logit that it answers the question.
`questions` makes the training pairs from article text, `training` fine-tunes and exports the
model (`rag train-reader`), `model` runs it with onnxruntime. Not in the answer path yet: no reader
trained here has beaten the answerer's ranking on every suite (evals/reader_check.py measures it).
"""
