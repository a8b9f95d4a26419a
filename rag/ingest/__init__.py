"""Stage 1, ingest: takes article files (txt, Markdown, HTML, PDF) and gives clean `Article`s and their
sentence-aware chunks. One reader per format behind `documents.load_article`; nothing here knows the index.
"""
