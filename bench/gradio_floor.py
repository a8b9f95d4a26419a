"""`python -m bench.gradio_floor PORT`: the floor under the chat's API. A Gradio app with an `/ask`
endpoint of the same shape as ui/app.py's, whose generator yields a sources event, a token and a
final answer at once, served the same way (queue, concurrency). What the chat measures above this
is the assistant's own time."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import gradio as gr


def ask(question: str, history: list | str | None = None, k: int = 5, backend: str = "extractive",
        date_from: str = "", date_to: str = "", publisher: str = "") -> Iterator[dict]:
    """Yields what the real endpoint yields, with nothing computed."""
    yield {"event": "sources", "searched": question, "passages": []}
    yield {"event": "token", "text": "An answer."}
    yield {"question": question, "answer": "An answer.", "abstained": False, "citations": []}


def main(port: int) -> None:
    with gr.Blocks() as app:
        gr.api(ask, api_name="ask", concurrency_id="answer", concurrency_limit=4)
    app.queue(default_concurrency_limit=1)
    app.launch(server_name="127.0.0.1", server_port=port, ssr_mode=False, quiet=True)


if __name__ == "__main__":
    main(int(sys.argv[1]))
