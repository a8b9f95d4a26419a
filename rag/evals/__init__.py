"""Stage 4, evals: takes question suites (evals/) and runs them through `rag.Assistant`, giving
predictions, metrics, reports and plots, and the fitted confidence and answerability files.
"""
