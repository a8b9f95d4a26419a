"""The page's CSS and JavaScript, kept as strings so they ship with the package."""

CSS = """
/* The article view is a page of its own, reached only from a source: no navigation bar (Gradio
   shows one for every multipage app, and gr.Navbar(visible=False) does not hide it in 6.31). */
.nav-holder { display: none !important; }
.app-header h1 { margin: 0; font-size: 1.45rem; }
.app-header p { margin: .2rem 0 0; color: var(--body-text-color-subdued); }

#toolbar, #examples { flex-wrap: wrap; gap: .4rem; }
#toolbar button, #examples button { flex: 0 1 auto; width: auto; white-space: normal; }
#examples::before {
  content: "Try:"; align-self: center; font-size: .85em; color: var(--body-text-color-subdued);
}
/* Room above the first message for the chat's trash button, which Gradio pins to the top right,
   where the first question's bubble would otherwise sit under it. */
#chat .bubble-wrap { padding-top: 2.4rem; }
/* Gradio floats the upload box's label over the box, across the upload icon: start below it. */
#upload .upload-container { padding-top: 2rem; }
/* On a phone an empty 560-px chat box would push the example questions off the first screen. */
@media (max-width: 768px) {
  #chat { height: 60vh !important; }
  #chat:has(.placeholder-content) { height: 9rem !important; }
}
#chat .question { white-space: pre-wrap; }
#chat .answer-text { white-space: pre-wrap; line-height: 1.55; }
#chat .answer.pending, #chat .answer.streaming .answer-text:empty { color: var(--body-text-color-subdued); }
#chat .answer.error { color: var(--error-text-color); }
#chat .searched, #chat .replaced {
  font-size: .85em; color: var(--body-text-color-subdued); margin-bottom: .4rem;
}
#chat .replaced { border-left: 3px solid #d97706; padding-left: .5rem; }
#chat .answer-meta { margin-top: .5rem; font-size: .78em; color: var(--body-text-color-subdued); }
#chat .provisional-label { font-size: .85em; color: var(--body-text-color-subdued); margin-bottom: .4rem; }
#chat .model-draft {
  margin-top: .5rem; padding-left: .5rem; border-left: 3px solid var(--border-color-primary);
  font-size: .85em; color: var(--body-text-color-subdued); white-space: pre-wrap;
}
#answerer .html-container, #install-status .html-container { padding: 0; }
/* Gradio's dropdown arrow sits over the end of its input: the text stops before it. */
input[role=combobox] { padding-right: 1.6rem !important; text-overflow: ellipsis; }
/* A date input will not shrink below its default width, which pushed the calendar button past the
   sidebar's other controls. */
.timebox input.time { min-width: 0; }
#answerer .why {
  margin-top: .2rem; font-size: .85em; color: var(--body-text-color-subdued); overflow-wrap: anywhere;
}
#install-status progress { width: 100%; }
#install-status .install-error { color: var(--error-text-color); }
#chat .cursor::after { content: "▍"; animation: blink 1s steps(2) infinite; }
@keyframes blink { 50% { opacity: 0; } }
#chat .spinner {
  display: inline-block; width: .8em; height: .8em; border-radius: 50%; vertical-align: -1px;
  border: 2px solid currentColor; border-right-color: transparent; animation: spin .8s linear infinite;
}
@keyframes spin { to { transform: rotate(360deg); } }
a.cite {
  display: inline-block; padding: 0 .3em; margin: 0 .05em; border-radius: .35em; font-size: .8em;
  font-weight: 600; text-decoration: none; vertical-align: 1px;
  background: var(--color-accent-soft); color: var(--color-accent);
}
a.cite:hover { background: var(--color-accent); color: white; }
#chat .abstain-banner {
  display: inline-block; font-weight: 700; padding: .15rem .6rem; border-radius: .4rem; margin-bottom: .4rem;
  background: #fef3c7; color: #92400e;
}
#chat .nearest { margin-top: .5rem; font-size: .9em; }
#chat .nearest ul { margin: .2rem 0 0 1rem; }

#sources { max-height: 78vh; overflow-y: auto; }
#sources .sources-empty, #sources .panel-note { color: var(--body-text-color-subdued); font-size: .9em; }
#sources .turn-question { font-weight: 600; margin-bottom: .5rem; }
#sources details.turn.earlier { margin-top: .8rem; border-top: 1px solid var(--border-color-primary); }
#sources details > summary { cursor: pointer; padding: .4rem 0; color: var(--body-text-color-subdued); }
#sources .source {
  border: 1px solid var(--border-color-primary); border-radius: .6rem; padding: .6rem .75rem;
  margin-bottom: .6rem; background: var(--background-fill-primary); scroll-margin: 2rem;
  transition: box-shadow .3s, border-color .3s;
}
#sources .source.focused, #sources .source:target {
  border-color: var(--color-accent); box-shadow: 0 0 0 3px var(--color-accent-soft); outline: none;
}
#sources .source-head { display: flex; gap: .5rem; align-items: baseline; }
#sources .source-n {
  flex: none; min-width: 1.4em; text-align: center; border-radius: .35em; font-size: .8em; font-weight: 700;
  background: var(--color-accent-soft); color: var(--color-accent);
}
#sources .source-title { font-weight: 600; }
#sources .source-label {
  margin-left: auto; font-size: .72em; text-transform: uppercase; letter-spacing: .04em;
  color: var(--body-text-color-subdued);
}
#sources .source-meta { font-size: .8em; color: var(--body-text-color-subdued); margin: .15rem 0 .35rem 1.9em; }
#sources .passage {
  white-space: pre-wrap; margin: 0 0 .35rem; padding: .4rem .6rem; font-size: .9em; line-height: 1.5;
  border-left: 3px solid var(--border-color-primary); background: var(--background-fill-secondary);
}
#sources mark { background: #fde68a; color: inherit; padding: 0 .1em; border-radius: .15em; }
#sources .source-links { font-size: .8em; color: var(--body-text-color-subdued); }
#sources .source-file { font-family: var(--font-mono); }
.whole-article { max-width: 46rem; margin: 0 auto; padding: 1rem; }
.whole-article h1 { font-size: 1.6rem; line-height: 1.25; margin: 0 0 .4rem; }
.whole-article .article-meta, .whole-article .article-note { color: var(--body-text-color-subdued); font-size: .9em; }
.whole-article .article-text { white-space: pre-wrap; line-height: 1.65; margin-top: 1rem; }
.whole-article mark { background: #fde68a; color: inherit; padding: 0 .1em; border-radius: .15em; scroll-margin: 30vh; }
#upload-status ul { margin: .3rem 0 0 1rem; }
#upload-status .ok { color: #15803d; }
#upload-status .bad { color: var(--error-text-color); }
"""

# Citation links point at panel entries by id. Handled here rather than by plain fragment
# navigation so that an earlier answer's sources, folded away, open before scrolling.
HEAD = """
<script>
(() => {
  function focusSource(id) {
    const target = document.getElementById(id);
    if (!target) return false;
    for (let node = target.parentElement; node; node = node.parentElement) {
      if (node.tagName === "DETAILS") node.open = true;
    }
    document.querySelectorAll(".source.focused").forEach((el) => el.classList.remove("focused"));
    target.classList.add("focused");
    target.scrollIntoView({behavior: "smooth", block: "center"});
    target.focus({preventScroll: true});
    return true;
  }
  document.addEventListener("click", (event) => {
    const link = event.target.closest ? event.target.closest("a.cite") : null;
    if (!link) return;
    if (focusSource((link.getAttribute("href") || "").slice(1))) event.preventDefault();
  }, true);
})();
</script>
"""

# Clipboard access needs a secure context (localhost is one); elsewhere fall back to execCommand.
COPY_JS = """
(text) => {
  const button = document.getElementById("copy-answer");
  const show = (label) => {
    if (!button) return;
    const before = button.dataset.label || button.textContent;
    button.dataset.label = before;
    button.textContent = label;
    setTimeout(() => { button.textContent = before; }, 1500);
  };
  if (!text) { show("Nothing to copy yet"); return; }
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(() => show("Copied ✓"), () => show("Copy failed"));
    return;
  }
  const area = document.createElement("textarea");
  area.value = text;
  document.body.appendChild(area);
  area.select();
  show(document.execCommand("copy") ? "Copied ✓" : "Copy failed");
  area.remove();
}
"""

# The article view opens at its first cited sentence.
SCROLL_TO_CITED_JS = """
() => { document.getElementById("cited")?.scrollIntoView({block: "center"}); }
"""

# Gradio's date box keeps its last valid value when the text typed is no date ("last year"), so
# the question would be filtered by a date the user no longer sees. The answer is given the text
# as typed instead, which the server refuses with a message when it is no date. The arguments are
# the answer event's inputs, in order; the dates are the fifth and sixth.
TYPED_DATES_JS = """
(...inputs) => {
  const typed = (id, value) => document.querySelector(`#${id} input`)?.value ?? value;
  inputs[4] = typed("date-from", inputs[4]);
  inputs[5] = typed("date-to", inputs[5]);
  return inputs;
}
"""
