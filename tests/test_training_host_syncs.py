"""A training step keeps its numbers on the device: on a GPU every value the host reads waits for the device, and the
tiny codec's steps are short enough for such waits to bound its speed. Counted on the CPU by recording every read
(`item`, `float`, `int`, `bool`, `tolist`, boolean-mask indexing, `unique`) that this package's code makes."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

import wavtokenizer_hf
from wavtokenizer_hf.training import Trainer, load_train_config
from wavtokenizer_hf.training.trainer import as_numbers

from conftest import MICRO

PACKAGE = str(Path(wavtokenizer_hf.__file__).parent)


def _record_reads(monkeypatch) -> list[str]:
    reads: list[str] = []

    def ours() -> str | None:
        frame = sys._getframe(2)
        return f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno}" if frame.f_code.co_filename.startswith(PACKAGE) else None

    def counting(name):
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, **kwargs):
            if (where := ours()) is not None:
                reads.append(f"{name} at {where}")
            return original(self, *args, **kwargs)
        return wrapper

    def is_mask(index) -> bool:
        parts = index if isinstance(index, tuple) else (index,)
        return any(isinstance(p, torch.Tensor) and p.dtype == torch.bool for p in parts)

    def masked(name):
        original = getattr(torch.Tensor, name)

        def wrapper(self, index, *args):
            if is_mask(index) and (where := ours()) is not None:
                reads.append(f"boolean mask at {where}")
            return original(self, index, *args)
        return wrapper

    for name in ("item", "tolist", "__float__", "__int__", "__bool__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, counting(name))
    for name in ("__getitem__", "__setitem__"):
        monkeypatch.setattr(torch.Tensor, name, masked(name))
    unique = torch.unique

    def counting_unique(*args, **kwargs):
        if (where := ours()) is not None:
            reads.append(f"unique at {where}")
        return unique(*args, **kwargs)
    monkeypatch.setattr(torch, "unique", counting_unique)
    return reads


def test_a_training_step_reads_the_device_only_to_decide_whether_to_keep_it(small_corpus, tmp_path, monkeypatch):
    # every loss term on, the GAN from the first step, and every code dead so that re-seeding runs each step
    config = load_train_config("tiny", [f"data.train={small_corpus}", *MICRO, "loss.gan_start_step=0",
                                        "loss.phones=1.0", "loss.multiscale_mel=1.0", "loss.phase=1.0",
                                        "quantizer.dead_code_threshold=1e9"])
    trainer = Trainer(config, tmp_path)
    batches = iter(trainer.loader)
    trainer._maybe_initialize_codebook()
    trainer.train_step(*next(batches))  # the first step may ask whether the codebook is initialised
    batch = next(batches)  # the loader works on the host: not counted
    reads = _record_reads(monkeypatch)
    logs = trainer.train_step(*batch)
    # two reads: whether the discriminators' loss and the generator's are finite, which decides whether to step
    assert len(reads) == 2, reads
    monkeypatch.undo()
    numbers = as_numbers(logs)
    assert numbers["codes_reseeded"] > 0 and 0 < numbers["batch_code_usage"] <= 1
    assert {"d_loss", "phone_ce", "phase", "multiscale_mel", "grad_norm_g", "mel"} <= set(numbers)
    assert all(isinstance(value, float) for value in numbers.values())


def test_the_logs_read_back_as_the_numbers_the_device_holds():
    logs = {"mel": torch.tensor(0.25), "used": torch.tensor(3), "lr": 1e-3, "codes": torch.tensor([2.0])}
    assert as_numbers(logs) == {"mel": 0.25, "used": 3.0, "lr": 1e-3, "codes": 2.0}
    assert list(as_numbers(logs)) == ["mel", "used", "lr", "codes"]
    assert as_numbers({"lr": 0.5}) == {"lr": 0.5}


def test_a_codebook_loaded_uninitialised_is_seen_as_uninitialised_again():
    from transformers import WavTokenizerConfig, WavTokenizerModel

    from wavtokenizer_hf.training.vq import EMAQuantizer

    model = WavTokenizerModel(WavTokenizerConfig(codebook_size=16, codebook_dim=8, hidden_size=8, num_filters=4,
                                                 decoder_hidden_size=32, decoder_num_layers=1))
    book = model.encoder_model.quantizer.codebook
    quantizer = EMAQuantizer(book)
    blank = {name: value.clone() for name, value in book.state_dict().items()}
    blank["inited"].zero_()
    quantizer.initialize(torch.randn(64, book.embed.shape[1]), iterations=2)
    assert quantizer.initialized
    book.load_state_dict(blank)
    assert not quantizer.initialized
    quantizer.initialize(torch.randn(64, book.embed.shape[1]), iterations=2)
    assert quantizer.initialized
    state = model.state_dict()
    state["encoder_model.quantizer.codebook.inited"] = torch.zeros_like(book.inited)
    model.load_state_dict(state)  # loading through the whole model is seen too
    assert not quantizer.initialized
