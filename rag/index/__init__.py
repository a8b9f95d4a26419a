"""Stage 2, index: takes articles and chunks and gives the persisted, searchable index: embeddings,
the Chroma vector store, the BM25 keyword index and per-sentence vectors, committed together by the
manifest. `ingestor.Ingestor` keeps it in step with the corpus folder.
"""
