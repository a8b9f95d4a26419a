# The two commands a fresh machine needs:
#   make chat   installs, builds the index over corpus/ and opens the chat on http://127.0.0.1:7860
#   make test   installs the test tools, chromium and the llama.cpp server, then runs the whole test suite
VENV := .venv/bin

.PHONY: chat test setup index eval bench lint

setup:
	scripts/setup

chat: setup
	$(VENV)/rag ingest
	$(VENV)/rag serve

index: setup
	$(VENV)/rag ingest

test:
	scripts/setup --test --llm
	$(VENV)/ruff check .
	$(VENV)/pytest -q

eval: setup
	$(VENV)/rag eval --suite all --llm extractive --out evals/runs/latest

bench: setup
	$(VENV)/python -m bench.run

lint: setup
	$(VENV)/ruff check .
