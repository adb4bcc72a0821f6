"""How an LM trained on the joint vocabulary places audio tokens relative to text tokens.

- nearest text tokens (cosine, input embeddings) of the most frequent codes;
- retrieval: for each code with a significant word partner, is one of that word's text tokens among the code's k
  nearest text tokens? (chance = k / text vocabulary);
- linear CKA between the embeddings of the code at each frame and of the text token(s) of the word covering it,
  beside the same CKA with the pairing shuffled:
  CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F) on column-centred X, Y.
"""

from __future__ import annotations

import numpy as np
import torch

from lm.vocabulary import AudioTokenLayout, token_text


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of two [n, d] representations of the same n items (1 = equal up to rotation and scale)."""
    x = x - x.mean(0, keepdims=True)
    y = y - y.mean(0, keepdims=True)
    cross = np.linalg.norm(y.T @ x) ** 2
    return float(cross / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def embedding_alignment(model, tokenizer, frame_pairs: list[tuple[int, str]], partners: dict[int, dict],
                        frequent_codes: list[int], k: int = 10, max_frames: int = 5000, seed: int = 0) -> dict:
    """`frame_pairs`: (code, word) per frame inside words; `partners`: code -> its significant word partner."""
    layout = AudioTokenLayout.from_tokenizer(tokenizer)
    weights = model.get_input_embeddings().weight.detach().float().cpu()
    text_ids = torch.arange(0, min(layout.marker_ids.values()))  # the text vocabulary precedes the markers
    text = torch.nn.functional.normalize(weights[text_ids], dim=-1)
    audio = torch.nn.functional.normalize(weights[layout.audio_offset: layout.audio_offset + layout.codebook_size], dim=-1)

    def word_tokens(word: str) -> list[int]:
        return [t for t in tokenizer(" " + word, add_special_tokens=False).input_ids if t < len(text_ids)]

    nearest = {}
    for code in frequent_codes:
        top = torch.topk(text @ audio[code], 5).indices
        nearest[int(code)] = [token_text(tokenizer, int(text_ids[i])) for i in top]
    hits = []
    for code, partner in partners.items():
        wanted = set(word_tokens(partner["unit"]))
        if wanted:
            top = set(text_ids[torch.topk(text @ audio[code], k).indices].tolist())
            hits.append(bool(wanted & top))
    rng = np.random.default_rng(seed)
    usable = [(z, word_tokens(w)) for z, w in frame_pairs]
    usable = [(z, t) for z, t in usable if t]
    if len(usable) > max_frames:
        usable = [usable[i] for i in rng.choice(len(usable), max_frames, replace=False)]
    x = audio[[z for z, _ in usable]].numpy()
    y = np.stack([text[t].mean(0).numpy() for _, t in usable]) if usable else np.zeros((0, text.shape[1]))
    cka = linear_cka(x, y) if len(usable) > 2 else float("nan")
    cka_shuffled = linear_cka(x, y[rng.permutation(len(y))]) if len(usable) > 2 else float("nan")
    return {"nearest_text_tokens": nearest, "retrieval_at_k": float(np.mean(hits)) if hits else float("nan"),
            "retrieval_k": k, "retrieval_codes": len(hits), "retrieval_chance": k / len(text_ids),
            "cka": cka, "cka_shuffled": cka_shuffled, "cka_frames": len(usable)}
