"""The chat in the browser: `rag serve`, or `serve(settings, host, port)`.

It runs on the same public API as the CLI (`rag.Assistant.stream`, `rag.index.ingestor.Ingestor`).

API endpoint `/ask` (gradio_client):

    from gradio_client import Client
    answer = Client("http://127.0.0.1:7860/").predict(
        "What did EXIM approve under Project Vault?",  # question: str
        [],            # history: the previous questions, oldest first, as a list or its JSON
                       #   (strings, or {"role": "user", "content": ...} messages)
        5,             # k: passages to retrieve, 1-50
        "",            # backend: "" for the chat's (picked in its sidebar), "extractive", "auto",
                       #   or "openai" / "llamacpp" when configured
        "",            # date_from: "YYYY-MM-DD" or "" (articles published on or after)
        "",            # date_to: "YYYY-MM-DD" or "" (on or before)
        "",            # publisher: a publisher's name (any case), or "" for all
        api_name="/ask",
    )

Only the question is required; k defaults to RAG_TOP_K and backend to what the chat answers with.

`predict` returns the `rag ask --json` object (`Answer.to_dict()`): question, answer (with [n]
markers), abstained, citations (n, source, title, published, publisher, url, chunk_id, quote,
text, score, start, end, quote_spans), backend, timings, searched (the rewritten follow-up, or
""), nearest (closest passages when abstaining), confidence (the estimated chance that the answer,
or the refusal, is right), hidden_by_filter and, after a failed LLM answer, fallback. The
endpoint streams: `Client.submit(...)` yields first {"event": "sources", "searched", "passages"},
then, when a model answers, {"event": "provisional", "text", "tentative"} (the extractive answer,
shown until the model's is checked), then {"event": "token", "text": the draft so far} as the answer
is written, then that object.
A bad question or option raises an error whose message says what to fix.

API endpoint `/upload` adds articles the way the chat's upload box does (copied into
`<corpus>/uploads/` under a safe name, ingested at once, searchable by the next question):

    from gradio_client import Client, handle_file
    result = Client("http://127.0.0.1:7860/").predict([handle_file("article.md")], api_name="/upload")

It returns {"added": the number of articles added, "files": [{"name", "added", "message"}, ...]
(one per file, with the reason when a file was not added), "index": the index's size}.

With `settings.ui_auth` ("user:password") the page and the API require that login; it is
mandatory when binding an address other than localhost.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

# Set before Gradio is imported, which reads them at import time.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_OFFLINE"] = "1"

import gradio as gr  # noqa: E402
from gradio.exceptions import InvalidPathError  # noqa: E402

from rag import EXAMPLE_COUNT, SUPPORTED_SUFFIXES, IndexUnusable  # noqa: E402
from rag.assistant import QuestionError  # noqa: E402
from rag.settings import Settings  # noqa: E402
from ui import assets, render  # noqa: E402
from ui.chat import (  # noqa: E402
    ALL_PUBLISHERS,
    ARTICLE_PATH,
    ChatService,
    ChatView,
    OptionError,
    Turn,
    restored_conversation,
    saved_conversation,
    thumbs,
    with_vote,
)
from ui.local_models import RECOMMENDED, answerer_report, install_report  # noqa: E402
from ui.safety import LoginGuard, check_bind, check_port_free, parse_auth  # noqa: E402
from ui.uploads import UploadResult, discard_copies  # noqa: E402

PHONE_WIDTH = 768  # CSS pixels: narrower screens start with the sidebar closed
# Answers share two cores: a few at once keeps one slow LLM answer from blocking the rest.
ANSWER_CONCURRENCY = 4
INSTALL_POLL_S = 1.0  # how often the page asks how a model's install is going
PICKER_INFO = "Automatic: a configured model, else an installed one, else a model server found here, else quoted."
# Gradio recognises a progress parameter by this default; one instance serves every request.
PROGRESS = gr.Progress()


# -- the page ----------------------------------------------------------------------------------------


class _Blocks(gr.Blocks):
    """Gradio refuses a file path its client did not upload (a path on the server) before any
    handler of ours runs, with an error it hides from the client as {"error": null}: say why."""

    async def preprocess_data(self, *args, **kwargs):
        try:
            return await super().preprocess_data(*args, **kwargs)
        except InvalidPathError as exc:
            raise gr.Error(
                "Only files sent with the request can be added, not a path on the server: upload the "
                "file itself (gradio_client's handle_file does)."
            ) from exc


def build_app(settings: Settings, service: ChatService | None = None) -> gr.Blocks:
    service = service or ChatService(settings)
    with _Blocks(title="News QA", fill_width=True) as app:
        turns = gr.State([])
        # The conversation survives a reload: kept in the browser's storage, never on the server.
        saved = gr.BrowserState({}, storage_key="news-qa-conversation")
        controls = _sidebar(service)
        gr.HTML(
            '<div class="app-header"><h1>Ask the news</h1><p>Answers come only from the articles in the index, '
            "and every claim cites the passage it came from.</p></div>",
            js_on_load=None,
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=420):
                chat = _chat_column()
            with gr.Column(scale=2, min_width=320):
                gr.Markdown("### Sources")
                sources = gr.HTML(render.sources_panel([]), elem_id="sources", js_on_load=None)
        _wire_chat(service, chat, controls, turns, sources, saved)
        _wire_chat_tools(service, chat, turns, sources, saved)
        _wire_uploads(service, controls)
        _wire_models(service, controls)
        _wire_api(service, settings)
        app.load(lambda: _index_updates(service), None,
                 [controls["publisher"], controls["index_info"], controls["filter_note"]],
                 api_visibility="private")
        app.load(lambda: _example_updates(service), None, [*chat["examples"], chat["example_questions"]],
                 api_visibility="private")
        app.load(lambda: (*_answers_updates(service), *_install_updates(service)), None,
                 [*_answers_outputs(controls), *_install_outputs(controls)], api_visibility="private")
        app.load(_restore, [saved, turns], [chat["chatbot"], sources, turns, chat["copy_text"]],
                 api_visibility="private")
        # On a phone-sized screen the open sidebar would cover the question box.
        app.load(lambda width: gr.update(open=not width or width > PHONE_WIDTH), [controls["screen_width"]],
                 [controls["sidebar"]], js="() => window.innerWidth", api_visibility="private")
    _article_page(app, service)
    return app


def _article_page(app: gr.Blocks, service: ChatService) -> None:
    """`article?doc=<id>&at=<start>-<end>`: one indexed article from the index's own copy, its cited
    sentences highlighted and scrolled to."""

    def show(request: gr.Request) -> str:
        params = request.query_params
        found = service.article(params.get("doc", ""))
        if found is None:
            return render.missing_article()
        entry, text = found
        spans = render.parse_spans(params.getlist("at"))
        return render.article_page(entry.title, entry.publisher, entry.published, entry.url, text, spans)

    with app.route("Article", ARTICLE_PATH, show_in_navbar=False):
        page = gr.HTML(render.missing_article(), elem_id="article", js_on_load=None)
        app.load(show, None, page, api_visibility="private").then(
            None, js=assets.SCROLL_TO_CITED_JS, api_visibility="private")


def _sidebar(service: ChatService) -> dict:
    with gr.Sidebar(open=True, width=300) as sidebar:
        controls = {"sidebar": sidebar, "screen_width": gr.Number(visible=False), **_answers_section(service)}
        gr.Markdown("### Search")
        controls |= {
            "k": gr.Slider(1, 20, value=service.settings.top_k, step=1, label="Passages to retrieve (k)"),
            "date_from": gr.DateTime(include_time=False, type="string", label="Published from",
                                     elem_id="date-from"),
            "date_to": gr.DateTime(include_time=False, type="string", label="Published until",
                                   elem_id="date-to"),
            "publisher": gr.Dropdown(_publisher_choices(service), value=ALL_PUBLISHERS, label="Publisher",
                                     elem_id="publisher"),
            "filter_note": gr.Markdown(service.filter_note(), elem_id="filter-note"),
        }
        gr.Markdown("### Add articles")
        controls["files"] = gr.File(
            file_count="multiple", file_types=sorted(SUPPORTED_SUFFIXES), label="txt, md, html or pdf",
            elem_id="upload", height=180,
        )
        controls["upload_status"] = gr.HTML("", elem_id="upload-status", js_on_load=None)
        controls["index_info"] = gr.Markdown(service.index_summary(), elem_id="index-info")
    return controls


def _answers_section(service: ChatService) -> dict:
    """Who answers and why, the model picker, and installing a local model (filled when the page
    loads, since finding the model may take a moment)."""
    gr.Markdown("### Answers")
    controls = {
        "answerer": gr.HTML("", elem_id="answerer", js_on_load=None),
        "picker": gr.Dropdown([], label="Answer with", elem_id="model-picker", info=PICKER_INFO),
    }
    with gr.Accordion("Install a local model", open=True, elem_id="install") as install_box:
        controls["catalogue"] = gr.Dropdown(service.models.catalogue_choices(), value=RECOMMENDED, label="Model",
                                            info=service.models.about(RECOMMENDED), elem_id="catalogue")
        controls["install"] = gr.Button(service.models.install_label(RECOMMENDED), variant="primary",
                                        elem_id="install-model")
        controls["install_status"] = gr.HTML("", elem_id="install-status", js_on_load=None)
    controls["install_box"] = install_box
    controls["install_timer"] = gr.Timer(INSTALL_POLL_S, active=False)
    return controls


def _chat_column() -> dict:
    chat = {
        "chatbot": gr.Chatbot(
            elem_id="chat", height=560, show_label=False, render_markdown=False, sanitize_html=True,
            allow_tags=False, latex_delimiters=[], buttons=[], layout="bubble",
            placeholder="Ask about the articles in the index. Citations like [1] open their source in the Sources panel.",
        ),
        "question": gr.Textbox(
            show_label=False, placeholder="Ask a question about the articles…", elem_id="question",
            submit_btn="Ask", stop_btn=False, autofocus=True,
        ),
    }
    with gr.Row(elem_id="toolbar"):
        chat["copy"] = gr.Button("Copy answer", size="sm", elem_id="copy-answer", scale=0, min_width=0)
        chat["clear"] = gr.Button("New chat", size="sm", elem_id="new-chat", scale=0, min_width=0)
        chat["unfiltered"] = gr.Button("Ask again without the filters", size="sm", variant="primary",
                                       elem_id="ask-unfiltered", visible=False, scale=0, min_width=0)
        chat["respelled"] = gr.Button("", size="sm", variant="primary", elem_id="ask-respelled", visible=False,
                                      scale=0, min_width=0)
    chat["respelled_question"] = gr.State("")
    # Filled when the page loads, from the corpus in the index (rag/index/examples.py).
    with gr.Row(elem_id="examples"):
        chat["examples"] = [gr.Button("", size="sm", variant="secondary", scale=0, min_width=0, visible=False,
                                      elem_classes="example") for _ in range(EXAMPLE_COUNT)]
    chat["example_questions"] = gr.State([])
    chat["copy_text"] = gr.Textbox(visible="hidden", elem_id="copy-text")
    return chat


def _wire_chat(service: ChatService, chat: dict, controls: dict, turns: gr.State, sources: gr.HTML,
               saved: gr.BrowserState) -> None:
    def respond(question, messages, turns_so_far, k, date_from, date_to, publisher):
        if not (question or "").strip():
            gr.Warning("Type a question first.")
            yield (gr.skip(),) * len(outputs)
            return
        for view in service.converse(question, messages, turns_so_far, k, date_from, date_to, publisher):
            yield _chat_outputs(view)

    inputs = [chat["question"], chat["chatbot"], turns, controls["k"], controls["date_from"], controls["date_to"], controls["publisher"]]
    outputs = [chat["chatbot"], sources, turns, chat["copy_text"], chat["question"], chat["unfiltered"], saved,
               chat["respelled"], chat["respelled_question"]]
    answer = {"fn": respond, "inputs": inputs, "outputs": outputs, "show_progress": "hidden", "js": assets.TYPED_DATES_JS,
              "concurrency_id": "answer", "concurrency_limit": ANSWER_CONCURRENCY, "api_visibility": "private"}
    running = [chat["question"].submit(**answer)]
    for position, button in enumerate(chat["examples"]):
        fill = button.click(lambda questions, i=position: questions[i], [chat["example_questions"]],
                            chat["question"], queue=False, api_visibility="private")
        running.append(fill.then(**answer))
    # A refusal because the filters hid every article naming the question's subject offers the
    # same question again over the whole index.
    clear_filters = chat["unfiltered"].click(
        lambda turns_so_far: (None, None, ALL_PUBLISHERS, turns_so_far[-1].question if turns_so_far else ""),
        [turns], [controls["date_from"], controls["date_to"], controls["publisher"], chat["question"]],
        queue=False, api_visibility="private")
    running.append(clear_filters.then(**answer))
    # A refusal that suggests another spelling ("did you mean Rubio?") offers the question so spelt.
    respell = chat["respelled"].click(lambda respelled: respelled, [chat["respelled_question"]], chat["question"],
                                      queue=False, api_visibility="private")
    running.append(respell.then(**answer))
    chat["question"].stop(lambda: gr.update(submit_btn="Ask", stop_btn=False), None, chat["question"],
                          cancels=running, queue=False, api_visibility="private")


def _wire_chat_tools(service: ChatService, chat: dict, turns: gr.State, sources: gr.HTML,
                     saved: gr.BrowserState) -> None:
    """Copy, new chat (which also forgets the conversation kept in the browser), and the thumbs
    under each answer."""

    def new_chat():
        return [*_restored_outputs(restored_conversation({})), {}]

    def record_vote(turns_so_far: list[Turn], kept: dict, data: gr.LikeData) -> tuple:
        if not _record_vote(service, turns_so_far, data):
            return gr.skip(), gr.skip()
        return turns_so_far, with_vote(kept, turns_so_far)

    chat["copy"].click(None, [chat["copy_text"]], None, js=assets.COPY_JS, api_visibility="private")
    for trigger in (chat["clear"].click, chat["chatbot"].clear):
        trigger(new_chat, None, [chat["chatbot"], sources, turns, chat["copy_text"], saved], queue=False,
                api_visibility="private")
    # The vote is kept with the conversation, so that its thumb shows again after a reload.
    chat["chatbot"].like(record_vote, [turns, saved], [turns, saved], api_visibility="private")


def _chat_outputs(view: ChatView) -> tuple:
    question = gr.update(submit_btn="Ask", stop_btn=False) if view.done else gr.update(
        value="", submit_btn=False, stop_btn="Stop")
    copy_text = view.copy_text if view.done else gr.skip()
    unfiltered = gr.update(visible=view.hidden_by_filter) if view.done else gr.skip()
    saved = saved_conversation(view) if view.done else gr.skip()
    respelled = gr.update(visible=bool(view.respelled), value=f"Ask: {view.respelled}") if view.done else gr.skip()
    respelled_question = view.respelled if view.done else gr.skip()
    return view.messages, view.panel, view.turns, copy_text, question, unfiltered, saved, respelled, respelled_question


def _restore(kept: dict, turns_so_far: list[Turn]) -> tuple:
    """The kept conversation, unless a question was asked before it arrived (it is not lost)."""
    if turns_so_far:
        return (gr.skip(),) * 4
    return _restored_outputs(restored_conversation(kept))


def _restored_outputs(view: ChatView) -> tuple:
    chatbot = gr.update(value=view.messages, feedback_value=thumbs(view.turns))
    return chatbot, view.panel, view.turns, view.copy_text


def _record_vote(service: ChatService, turns: list[Turn], data: gr.LikeData) -> bool:
    """Append the vote to the feedback file and keep it on its turn; False when there is no answer."""
    index = data.index[0] if isinstance(data.index, list | tuple) else data.index
    turn = turns[index // 2] if 0 <= index // 2 < len(turns) else None
    if turn is None or turn.answer is None:
        return False
    vote = {True: "up", False: "down"}.get(data.liked, str(data.liked))
    service.record_feedback(turn, vote)
    turn.vote = vote
    gr.Info("Thanks: feedback saved.")
    return True


def _wire_uploads(service: ChatService, controls: dict) -> None:
    def add_articles(files, progress=PROGRESS):
        if not files:
            return (gr.skip(),) * 5
        progress(0, desc="Saving the upload")

        def report(done: int, total: int, source: str) -> None:
            progress((done, total), desc=f"Ingesting {Path(source).name}", unit="passages")

        paths = [Path(f) for f in files]
        try:
            result = service.library.add(paths, on_progress=report)
        except (RuntimeError, OSError) as exc:
            gr.Warning(render.esc(f"The upload failed: {exc}"))
            return render.upload_report([], f"The upload failed: {exc}"), gr.skip(), gr.skip(), gr.skip(), None
        finally:
            discard_copies(paths, Path(gr.utils.get_upload_folder()))
        _announce(result)
        outcomes = [(f.name, f.added, f.message) for f in result.files]
        summary = "Now searchable." if result.added else "Nothing was added."
        publisher, index_info, filter_note = _index_updates(service)
        return render.upload_report(outcomes, summary), publisher, index_info, filter_note, None

    controls["files"].upload(
        add_articles, [controls["files"]],
        [controls["upload_status"], controls["publisher"], controls["index_info"], controls["filter_note"],
         controls["files"]],
        concurrency_id="ingest", concurrency_limit=1, api_visibility="private",
    )


def _announce(result: UploadResult) -> None:
    """A toast as well as the sidebar's list, which may be scrolled out of view. Toasts render
    HTML, and file names are the user's: escaped."""
    if result.added:
        gr.Info(f"Added {result.added} article{'s' if result.added > 1 else ''}: searchable now.")
    for outcome in result.files:
        if not outcome.added:
            gr.Warning(render.esc(f"{outcome.name}: {outcome.message}"))


def _wire_models(service: ChatService, controls: dict) -> None:
    """The picker, and an install running in the background that the page polls while it lasts."""
    models = service.models

    def pick(value: str) -> str:
        try:
            models.pick(value)
        except (RuntimeError, OSError) as exc:  # ModelError, or a model that cannot be loaded
            gr.Warning(render.esc(f"That model cannot answer: {exc}"))
        return answerer_report(models.sidebar().answerer)

    def choose_to_install(name: str) -> tuple:
        return gr.update(info=models.about(name)), models.install_label(name)

    def start_install(name: str) -> tuple:
        models.start_install(name)
        return _install_updates(service)

    def poll() -> tuple:
        """The install's progress; once it is over, who answers now too."""
        if models.install_state().running:
            return *_install_updates(service), *(gr.skip(),) * len(_answers_outputs(controls))
        return *_install_updates(service), *_answers_updates(service)

    controls["picker"].input(pick, controls["picker"], controls["answerer"], api_visibility="private")
    controls["catalogue"].input(choose_to_install, controls["catalogue"], [controls["catalogue"], controls["install"]],
                                queue=False, api_visibility="private")
    controls["install"].click(start_install, controls["catalogue"], _install_outputs(controls), queue=False,
                              api_visibility="private")
    controls["install_timer"].tick(poll, None, [*_install_outputs(controls), *_answers_outputs(controls)],
                                   queue=False, api_visibility="private")


def _answers_outputs(controls: dict) -> list:
    return [controls["answerer"], controls["picker"], controls["install_box"]]


def _install_outputs(controls: dict) -> list:
    return [controls["install_status"], controls["install_timer"], controls["install"]]


def _install_updates(service: ChatService) -> tuple:
    """The install's progress, polled while it runs (a page opened meanwhile polls it too)."""
    state = service.models.install_state()
    return install_report(state), gr.Timer(active=state.running), gr.update(interactive=not state.running)


def _answers_updates(service: ChatService) -> tuple:
    """Who answers, what the picker offers, and the install section open when no model is here."""
    sidebar = service.models.sidebar()
    return (answerer_report(sidebar.answerer), gr.update(choices=sidebar.choices, value=sidebar.picked),
            gr.update(open=sidebar.offer_install))


def _wire_api(service: ChatService, settings: Settings) -> None:
    def ask(question: str, history: list | str | None = None, k: int = settings.top_k,
            backend: str = "", date_from: str = "", date_to: str = "",
            publisher: str = "") -> Iterator[dict]:
        """Answer a question from the indexed articles, with citations (see the module docstring)."""
        try:
            yield from service.ask(question, history, k, backend, date_from, date_to, publisher)
        except (QuestionError, OptionError, IndexUnusable) as exc:
            raise gr.Error(str(exc)) from exc

    gr.api(ask, api_name="ask", concurrency_id="answer", concurrency_limit=ANSWER_CONCURRENCY)

    def upload(files: list[gr.FileData]) -> dict:
        """Add articles (txt, md, html or pdf) to the index (see the module docstring)."""
        if not files:
            raise gr.Error("Attach at least one file (txt, md, html or pdf).")
        # Gradio has already moved each file into its upload cache, under a name it sanitised.
        paths = [Path(f["path"] if isinstance(f, dict) else f.path) for f in files]
        try:
            result = service.library.add(paths)
        except (RuntimeError, OSError) as exc:
            raise gr.Error(f"The upload failed: {exc}") from exc
        finally:
            discard_copies(paths, Path(gr.utils.get_upload_folder()))
        outcomes = [{"name": f.name, "added": f.added, "message": f.message} for f in result.files]
        return {"added": result.added, "files": outcomes, "index": service.index_summary()}

    # One ingest at a time, shared with the upload box: the two queue behind each other.
    gr.api(upload, api_name="upload", concurrency_id="ingest", concurrency_limit=1)


def _publisher_choices(service: ChatService) -> list[tuple[str, str]]:
    return [("All publishers", ALL_PUBLISHERS)] + [(p, p) for p in service.publishers()]


def _example_updates(service: ChatService) -> list:
    examples = service.examples()
    buttons = [gr.update(value=e.label, visible=True) for e in examples]
    buttons += [gr.update(visible=False)] * (EXAMPLE_COUNT - len(examples))
    return [*buttons, [e.question for e in examples]]


def _index_updates(service: ChatService) -> tuple:
    return gr.update(choices=_publisher_choices(service)), service.index_summary(), service.filter_note()


# -- serving -----------------------------------------------------------------------------------------


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 7860) -> None:
    auth = parse_auth(settings.ui_auth)
    check_bind(host, auth)
    check_port_free(host, port)
    service = ChatService(settings)
    threading.Thread(target=service.warm_up, name="warm-up", daemon=True).start()
    app = build_app(settings, service)
    app.queue(default_concurrency_limit=1)
    app.launch(
        server_name=host,
        server_port=port,
        auth=LoginGuard(*auth).check if auth else None,
        auth_message="Log in with the RAG_UI_AUTH user and password." if auth else None,
        max_file_size=settings.max_file_bytes,
        theme=gr.themes.Soft(primary_hue="indigo", font=["ui-sans-serif", "system-ui", "sans-serif"],
                             font_mono=["ui-monospace", "monospace"]),
        css=assets.CSS,
        head=assets.HEAD,
        footer_links=["api"],
        ssr_mode=False,
        quiet=False,
    )
