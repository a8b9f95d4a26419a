"""Question answering over news articles, with every claim cited to the passage it came from.

from rag import Assistant, Settings
answer = Assistant.from_settings(Settings()).ask("What did EXIM approve under Project Vault?")
"""

from rag.settings import PRESETS, Settings, preset

__all__ = ["Assistant", "Answer", "Ingestor", "Settings", "PRESETS", "preset"]


def __getattr__(name: str):
    # Imported on first use: loading torch and Chroma takes seconds that `rag --help` should not pay.
    if name == "Assistant":
        from rag.assistant import Assistant

        return Assistant
    if name == "Answer":
        from rag.answer.result import Answer

        return Answer
    if name == "Ingestor":
        from rag.index.ingestor import Ingestor

        return Ingestor
    raise AttributeError(name)
