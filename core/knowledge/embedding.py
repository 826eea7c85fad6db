"""Chunk embeddings, offline: wordllama's 256-dimension static model, which ships inside its wheel.

The model is loaded from the installed package folder with ``disable_download=True`` (and the
Hugging Face hub told it is offline), so no code path can try to fetch a model. Vectors are
L2-normalised float32, stored as 1 KiB blobs; cosine similarity is then a dot product.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Any, Iterator

from tessera.core.errors import TesseraError

DIMENSIONS = 256
MODEL = "l2_supercat"  # the weights file wordllama's wheel carries: weights/l2_supercat_256.safetensors
_lock = threading.Lock()
_model: Any = None


class EmbeddingUnavailable(TesseraError):
    """The bundled model cannot be loaded (a broken install): exit 3."""

    exit_code = 3


def model() -> Any:
    """The loaded model (once per process)."""
    global _model
    with _lock:
        if _model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            try:
                with _root_logging_kept():
                    import wordllama
                from wordllama import WordLlama

                folder = Path(wordllama.__file__).parent
                _model = WordLlama.load(config=MODEL, dim=DIMENSIONS, cache_dir=folder, disable_download=True)
            except Exception as exc:  # noqa: BLE001 - any failure of the library is the same fault for the user
                raise EmbeddingUnavailable(f"cannot load the bundled embedding model: {exc}",
                                           hint="reinstall tessera (make setup); semantic search needs wordllama's wheel") from None
        return _model


@contextlib.contextmanager
def _root_logging_kept() -> Iterator[None]:
    """Undo what importing wordllama does to logging: it calls ``logging.basicConfig(level=INFO)``,
    which would print every library's INFO records (watchfiles' "2 changes detected") on stderr
    for the rest of the process, breaking the JSON lines commands write there."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)


def embed(texts: list[str]) -> Any:
    """A (len(texts), DIMENSIONS) float32 array of unit vectors (a zero row for an empty text).

    The same vectors as ``model().embed(texts, norm=True)`` (the mean of the texts' token
    vectors, normalised), computed text by text from an unpadded tokenizer: wordllama pads each
    batch of 64 texts to its longest and pools the padded tensor, which for chunks of mixed
    length (ingesting the KEP corpus) cost 4-5 times as long and hundreds of MB.
    """
    import numpy as np

    out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
    if not texts:
        return out
    table = model().embedding
    last = table.shape[0] - 1
    for i, encoded in enumerate(_unpadded_tokenizer().encode_batch(list(texts), add_special_tokens=False)):
        ids = encoded.ids
        if ids:
            out[i] = table[np.clip(np.asarray(ids, dtype=np.int64), 0, last)].sum(axis=0, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    out /= np.where(norms == 0, 1, norms)
    return np.nan_to_num(out, copy=False)


_tokenizer: Any = None


def _unpadded_tokenizer() -> Any:
    """A copy of the model's tokenizer without padding or truncation (the model's own keeps its
    settings for wordllama's calls)."""
    global _tokenizer
    loaded = model()  # before taking the lock: model() takes it too
    with _lock:
        if _tokenizer is None:
            from tokenizers import Tokenizer

            copy = Tokenizer.from_str(loaded.tokenizer.to_str())
            copy.no_padding()
            copy.no_truncation()
            _tokenizer = copy
        return _tokenizer


def to_blob(vector: Any) -> bytes:
    """One vector as the bytes stored in knowledge_chunks.embedding."""
    import numpy as np

    return np.asarray(vector, dtype="<f4").tobytes()


def from_blobs(blobs: list[bytes]) -> Any:
    """Stored vectors as one (n, DIMENSIONS) array; a blob of the wrong size becomes a zero row."""
    import numpy as np

    out = np.zeros((len(blobs), DIMENSIONS), dtype=np.float32)
    for i, blob in enumerate(blobs):
        if blob is not None and len(blob) == DIMENSIONS * 4:
            out[i] = np.frombuffer(blob, dtype="<f4")
    return out
