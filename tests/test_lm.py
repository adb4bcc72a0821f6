"""lm: token streams, joint vocabulary, training, baselines, TTS formats and generation."""

from __future__ import annotations

import json
import os
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lm.ngram import NgramBaselines
from lm.sampling import CachedSampler, SamplingConfig, filter_logits, id_mask
from lm.streams import IGNORE_INDEX, Utterance, block_pieces, pack_blocks, split_by_utterance
from lm.trainer import LMTrainConfig, train_lm
from lm.tts_sequences import TTSFormatter, word_code_spans
from lm.vocabulary import (AUDIO_END, AUDIO_START, BOS, EOS, PAD, WORD_END, AudioTokenLayout, audio_token,
                           build_joint_tokenizer, duration_token, extend_text_lm, extend_tokenizer)
from wavtokenizer_hf.errors import WavTokenizerError

ROOT = Path(__file__).resolve().parents[1]
CODEC = ROOT / "wavtokenizer_hf" / "default_codec"
TINY_LM = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2)


def tiny_llama(vocab_size: int, **overrides):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=vocab_size,
                                        **{**TINY_LM, "max_position_embeddings": 512, **overrides})).eval()


def utterance(uid: str, ids) -> Utterance:
    ids = np.asarray(ids, dtype=np.int64)
    return Utterance(uid, ids, np.ones(len(ids), dtype=bool), seconds=len(ids) / 75)


# --- vocabulary -----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def joint_tokenizer():
    return build_joint_tokenizer(4096, ["the cat sat on the mat", "a dog ran in the park"] * 20, text_vocab_size=300)


def test_code_id_round_trip_is_exact_for_all_codes(joint_tokenizer, tmp_path):
    joint_tokenizer.save_pretrained(tmp_path)
    from transformers import AutoTokenizer

    loaded = AutoTokenizer.from_pretrained(tmp_path)
    layout = AudioTokenLayout.from_tokenizer(loaded)
    assert layout == AudioTokenLayout.from_tokenizer(joint_tokenizer)
    codes = np.arange(4096)
    ids = layout.codes_to_ids(codes)
    assert np.array_equal(layout.ids_to_codes(ids), codes)
    assert np.array_equal(layout.ids_to_codes(torch.from_numpy(ids)).numpy(), codes)
    # the strings sit at exactly those ids, both ways
    assert loaded.convert_ids_to_tokens(ids.tolist()) == [audio_token(c) for c in codes]
    assert loaded("<|a_0|><|a_4095|><|a_17|>", add_special_tokens=False).input_ids == ids[[0, 4095, 17]].tolist()
    with pytest.raises(WavTokenizerError, match="lie in"):
        layout.codes_to_ids(np.array([0, 4096]))
    with pytest.raises(WavTokenizerError, match="not audio tokens"):
        layout.ids_to_codes(np.array([layout[BOS]]))
    assert layout.ids_to_codes(np.array([layout[BOS], ids[5]]), drop_other=True).tolist() == [5]


def test_text_still_tokenizes_and_decodes(joint_tokenizer):
    ids = joint_tokenizer("the cat sat", add_special_tokens=False).input_ids
    assert joint_tokenizer.decode(ids) == "the cat sat"
    assert max(ids) < AudioTokenLayout.from_tokenizer(joint_tokenizer)[BOS]


def _text_tokenizer(text: str = "some text to learn from"):
    from transformers import PreTrainedTokenizerFast

    from lm.vocabulary import train_text_bpe

    return PreTrainedTokenizerFast(tokenizer_object=train_text_bpe([text] * 10, 280))


def _text_lm(rows: int, tied: bool):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    if tied:
        return GPT2LMHeadModel(GPT2Config(vocab_size=rows, n_embd=32, n_layer=1, n_head=2, bos_token_id=0,
                                          eos_token_id=0))
    return LlamaForCausalLM(LlamaConfig(vocab_size=rows, tie_word_embeddings=False, **TINY_LM))


@pytest.mark.parametrize("tied", [True, False], ids=["tied-head", "untied-head"])
@pytest.mark.parametrize("explicit", [True, False], ids=["given-text-size", "inferred-text-size"])
def test_extending_a_text_lm_with_spare_embedding_rows_initialises_every_new_token(tied, explicit):
    text_tokenizer = _text_tokenizer()
    text_tokens = len(text_tokenizer)
    model = _text_lm(text_tokens + 10, tied)  # spare rows past the tokenizer, as Pythia's and Qwen's
    old_in = model.get_input_embeddings().weight.detach().clone()
    old_out = model.get_output_embeddings().weight.detach().clone()
    tokenizer = extend_tokenizer(text_tokenizer, 64)
    layout = AudioTokenLayout.from_tokenizer(tokenizer)
    assert layout.codebook_size == 64 and layout.audio_offset >= text_tokens
    added = extend_text_lm(model, tokenizer, text_vocab_size=text_tokens if explicit else None)
    new_in, new_out = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert added == len(tokenizer) - text_tokens and new_in.shape[0] == len(tokenizer)
    assert torch.equal(new_in[:text_tokens], old_in[:text_tokens])
    # the spare rows now belong to markers: they are set like every other new row, not kept as untrained rows
    assert torch.allclose(new_in[text_tokens:], old_in[:text_tokens].mean(0).expand(added, -1), atol=1e-6)
    assert torch.allclose(new_out[text_tokens:], old_out[:text_tokens].mean(0).expand(added, -1), atol=1e-6)
    assert (new_out.data_ptr() == new_in.data_ptr()) == tied


def test_duration_token_names_the_token_that_duration_id_gives(joint_tokenizer):
    layout = AudioTokenLayout.from_tokenizer(joint_tokenizer)
    for seconds in (-1.0, 0.0, 0.004, 0.17, 1.234, 3.0, 7.5):
        assert joint_tokenizer.convert_tokens_to_ids(duration_token(seconds)) == layout.duration_id(seconds)


def test_audio_only_tokenizer_and_model_load_with_stock_transformers(tmp_path):
    tokenizer = build_joint_tokenizer(64, durations=False)
    model = tiny_llama(len(tokenizer))
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    layout = AudioTokenLayout.from_tokenizer(tokenizer)
    # a separate interpreter that never imports this package
    code = (
        "import sys; from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        f"t = AutoTokenizer.from_pretrained({str(tmp_path)!r}); m = AutoModelForCausalLM.from_pretrained({str(tmp_path)!r})\n"
        "assert 'wavtokenizer_hf' not in sys.modules and 'lm' not in sys.modules\n"
        f"assert t.convert_tokens_to_ids('<|a_63|>') == {layout.audio_offset + 63}\n"
        "print(type(m).__name__, len(t))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["LlamaForCausalLM", str(len(tokenizer))]


# --- streams --------------------------------------------------------------------------------------------------

def _segments(packed: dict, pad_id: int) -> list[tuple[list[int], list[int]]]:
    """(ids, labels) of every segment of packed blocks (a segment starts where positions restart), padding dropped."""
    segments = []
    for ids, labels, positions in zip(packed["input_ids"], packed["labels"], packed["position_ids"]):
        starts = np.flatnonzero(positions == 0).tolist() + [len(ids)]
        for start, stop in zip(starts, starts[1:]):
            keep = ids[start:stop] != pad_id
            segments.append((ids[start:stop][keep].tolist(), labels[start:stop][keep].tolist()))
    return segments


def test_utterances_are_never_cut_at_block_edges():
    rng = np.random.default_rng(1)
    utterances = [utterance(str(i), rng.integers(2, 50, rng.integers(2, 11))) for i in range(40)]
    packed = pack_blocks(utterances, block_size=10, pad_id=99)
    segments = _segments(packed, pad_id=99)
    assert sorted(ids for ids, _ in segments) == sorted(u.input_ids.tolist() for u in utterances)
    for ids, labels in segments:  # every token after an utterance's first is a target, the first is not
        assert labels == [IGNORE_INDEX] + ids[1:]
    assert (packed["labels"][packed["input_ids"] == 99] == IGNORE_INDEX).all()
    total = sum(len(u.input_ids) for u in utterances)
    assert len(packed["input_ids"]) <= -(-total // 10) + 2  # whole utterances cost little padding (best fit)


def test_an_utterance_longer_than_a_block_is_split_with_its_prompt_repeated():
    # a TTS-like example: three prompt tokens (not scored), then nine targets
    long = Utterance("long", np.arange(100, 112), np.array([False] * 3 + [True] * 9))
    pieces = block_pieces(long, 6)
    assert [p.input_ids.tolist() for p in pieces] == [[100, 101, 102, 103, 104, 105], [100, 101, 102, 106, 107, 108],
                                                      [100, 101, 102, 109, 110, 111]]
    assert all(p.scored.tolist() == [False] * 3 + [True] * 3 for p in pieces)
    # an audio stream: <bos> is its prompt
    assert [p.input_ids.tolist() for p in block_pieces(utterance("a", [1, 5, 6, 7, 8, 9, 2]), 4)] == [[1, 5, 6, 7],
                                                                                                     [1, 8, 9, 2]]
    packed = pack_blocks([long, utterance("short", [7, 8, 9])], block_size=6, pad_id=0)
    labels = packed["labels"]
    assert sorted(labels[labels != IGNORE_INDEX].tolist()) == [8, 9, *range(103, 112)]  # every target once
    assert packed["position_ids"].max() < 6
    assert sum(row[:3].tolist() == [100, 101, 102] for row in packed["input_ids"]) == 3


def test_a_training_step_scores_packed_utterances_as_if_each_were_alone(tmp_path):
    from lm.evaluate import utterance_nats

    utterances = [utterance(str(i), (np.arange(9 + 2 * i) * (i + 3)) % 9 + 1) for i in range(6)]
    blocks = pack_blocks(utterances, 32)
    model = tiny_llama(10)
    alone = utterance_nats(model, utterances)
    cfg = LMTrainConfig(block_size=32, batch_size=len(blocks["input_ids"]), max_steps=1, warmup_steps=1,
                        eval_every=0, log_every=1)
    summary = train_lm(model, blocks, cfg, tmp_path)
    logged = next(r["train_loss"] for r in summary["history"] if "train_loss" in r)
    assert logged == pytest.approx(alone["nats"] / alone["tokens"], abs=2e-4)  # one block row never sees another


def test_a_long_interleaved_example_repeats_only_its_text_prompt_not_its_first_word(joint_tokenizer):
    formatter = TTSFormatter(joint_tokenizer, "interleaved")
    words = [{"word": w, "start": 0.0, "end": 0.5 * (i + 1)} for i, w in enumerate(["the", "cat", "sat", "down"])]
    example = formatter.example("long", words, np.arange(150) % 4096, 75.0)
    prompt = formatter.prompt(["the", "cat", "sat", "down"])
    first_word = formatter.word_ids("the")
    pieces = block_pieces(example, 64)
    assert len(pieces) > 2
    for index, piece in enumerate(pieces):
        assert piece.input_ids[:len(prompt)].tolist() == prompt
        follows = piece.input_ids[len(prompt):len(prompt) + len(first_word)].tolist()
        assert (follows == first_word) == (index == 0)  # a later stretch goes on where the last one stopped
    stretches = np.concatenate([p.input_ids[len(prompt):] for p in pieces])
    assert stretches.tolist() == example.input_ids[len(prompt):].tolist()  # every token once, in order


def test_an_audio_bpe_is_fitted_on_no_utterance_the_tts_or_audio_lm_holds_out():
    import inspect

    from lm.audio_lm import train_audio_lm
    from lm.experiment import split_utterances, training_rows
    from lm.tts_training import finetune_tts

    rows = [{"id": f"train-speech-{i:06d}"} for i in range(400)]
    kept = {row["id"] for row in training_rows(rows, validation_share=0.1, selection_share=0.05)}  # as the demo
    for run in (finetune_tts, train_audio_lm):
        defaults = {k: v.default for k, v in inspect.signature(run).parameters.items()}
        splits = split_utterances([utterance(r["id"], [1, 2]) for r in rows], defaults["validation_share"],
                                  defaults["selection_share"])
        held_out = {u.id for u in splits.validation + splits.selection}
        assert held_out and not held_out & kept
        assert kept <= {u.id for u in splits.train}


def test_a_prompt_that_leaves_no_room_in_a_block_is_refused():
    long = Utterance("p", np.arange(10), np.array([False] * 6 + [True] * 4))
    with pytest.raises(WavTokenizerError, match="its prompt has 6 tokens"):
        pack_blocks([long], block_size=6)


def test_stream_packing_for_comparison_cuts_at_block_edges():
    a, b = utterance("a", [10, 11, 12]), utterance("b", [20, 21, 22, 23, 24])
    joined = pack_blocks([a, b], block_size=3, separate=False, pad_id=0)
    assert joined["input_ids"].tolist() == [[10, 11, 12], [20, 21, 22], [23, 24, 0]]
    assert joined["labels"].tolist()[2] == [23, 24, IGNORE_INDEX]
    assert joined["position_ids"].tolist() == [[0, 1, 2], [0, 1, 2], [0, 1, 2]]


def test_training_and_scoring_stay_inside_a_block_for_utterances_longer_than_the_model(tmp_path):
    from dataclasses import replace

    from transformers import GPT2Config, GPT2LMHeadModel

    from lm.evaluate import utterance_nats

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=30, n_embd=32, n_layer=1, n_head=2, n_positions=32, bos_token_id=1,
                                       eos_token_id=1))
    rng = np.random.default_rng(0)
    long = [utterance(str(i), rng.integers(2, 30, 50)) for i in range(6)]  # 50 tokens; the model has 32 positions
    held = long[:2]
    cfg = LMTrainConfig(block_size=32, batch_size=2, max_steps=2, warmup_steps=1, eval_every=1, log_every=1)
    summary = train_lm(model, pack_blocks(long[2:], 32), cfg, tmp_path,
                       evaluate=lambda m: {"loss": utterance_nats(m, held, block_size=32)["nats"]})
    assert summary["best_step"] >= 0
    # scoring cuts utterances into the pieces training saw: every target once, each piece on its own
    model.eval()
    whole = utterance_nats(model, held, block_size=32)
    pieces = [utterance_nats(model, [p]) for u in held for p in block_pieces(u, 32)]
    assert whole["tokens"] == sum(p["tokens"] for p in pieces) == 2 * 49
    assert whole["nats"] == pytest.approx(sum(p["nats"] for p in pieces), rel=1e-5)
    with pytest.raises(WavTokenizerError, match="longer than the 32 positions"):
        train_lm(model, pack_blocks(long, 64), replace(cfg, block_size=64), tmp_path / "long-blocks")


def test_packed_utterances_do_not_attend_across_each_other():
    model = tiny_llama(50)
    a, b = utterance("a", [5, 6, 7, 8, 9]), utterance("b", [30, 31, 32, 33])
    packed = pack_blocks([a, b], block_size=9, separate=True)
    ids, positions = (torch.from_numpy(packed[k]) for k in ("input_ids", "position_ids"))
    with torch.no_grad():
        together = model(input_ids=ids, position_ids=positions, use_cache=False).logits[0, 5:]
        alone = model(input_ids=torch.tensor([[30, 31, 32, 33]])).logits[0]
        leaky = pack_blocks([a, b], block_size=9, separate=False)
        mixed = model(input_ids=torch.from_numpy(leaky["input_ids"]), use_cache=False).logits[0, 5:]
    assert torch.allclose(together, alone, atol=1e-5)
    assert not torch.allclose(mixed, alone, atol=1e-3)  # the check can fail: without separation it does


def test_split_by_utterance_is_deterministic_and_order_free():
    ids = [f"utt-{i}" for i in range(2000)]
    mask = split_by_utterance(ids, 0.1)
    assert 0.07 < mask.mean() < 0.13
    assert np.array_equal(split_by_utterance(ids[::-1], 0.1)[::-1], mask)


# --- baselines, training, sampling ----------------------------------------------------------------------------

def test_ngram_baselines_against_hand_computed_values():
    # targets alternate 1,2,1,2: the bigram almost knows the next token, the unigram does not
    train = [utterance("t", [0] + [1, 2] * 50)]
    held = [utterance("h", [0, 1, 2, 1, 2])]
    base = NgramBaselines(np.array([1, 2, 3]), vocab_size=4).fit(train)
    result = base.cross_entropy(held)
    assert result["tokens"] == 4
    # unigram: add-half over support {1,2,3} with counts 50, 50, 0 -> p(1) = 50.5 / 101.5
    assert math.isclose(result["unigram_nats"], -4 * math.log(50.5 / 101.5), rel_tol=1e-9)
    # Witten-Bell: pairs (0,1) x1, (1,2) x50, (2,1) x49; each context has one follower type
    u = 50.5 / 101.5
    p_1_after_0, p_2_after_1, p_1_after_2 = (1 + u) / 2, (50 + u) / 51, (49 + u) / 50
    expected = -(math.log(p_1_after_0) + 2 * math.log(p_2_after_1) + math.log(p_1_after_2))
    assert math.isclose(result["bigram_nats"], expected, rel_tol=1e-9)
    assert math.isclose(base.bigram_probability(np.array([3]), np.array([1]))[0], u)  # unseen context -> unigram


def test_a_few_training_steps_lower_the_held_out_loss(tmp_path):
    from lm.evaluate import utterance_nats

    rng = np.random.default_rng(0)
    # a learnable stream: each utterance counts upwards from a random start
    utterances = [utterance(str(i), (np.arange(30) + rng.integers(0, 20)) % 40 + 2) for i in range(40)]
    model = tiny_llama(42)
    held = utterances[:4]

    def evaluate(m):
        scored = utterance_nats(m, held)
        return {"loss": scored["nats"] / scored["tokens"]}

    cfg = LMTrainConfig(block_size=64, batch_size=4, learning_rate=3e-3, warmup_steps=2, max_steps=40, eval_every=0,
                        log_every=5)
    summary = train_lm(model, pack_blocks(utterances[4:], 64), cfg, tmp_path, evaluate=evaluate)
    losses = [h["val_loss"] for h in summary["history"] if "val_loss" in h]
    assert losses[-1] < 0.7 * losses[0]
    assert (tmp_path / "model" / "model.safetensors").exists() and not list(tmp_path.glob(".model.*"))
    from wavtokenizer_hf.run_lock import OutputLock

    with OutputLock(tmp_path), pytest.raises(WavTokenizerError, match="in use by another"):  # a live run holds it
        train_lm(tiny_llama(42), pack_blocks(utterances[4:], 64), cfg, tmp_path, evaluate=evaluate)


def test_a_save_after_an_interrupted_one_replaces_the_model(tmp_path):
    from lm.trainer import save_atomically

    target = tmp_path / "model"
    for leftover in ("model.tmp", "model.old", "model"):  # what a crash inside an earlier save could leave
        (tmp_path / leftover).mkdir()
        (tmp_path / leftover / "stale.txt").write_text("old")
    save_atomically(tiny_llama(20), None, target)
    assert (target / "model.safetensors").exists() and not (target / "stale.txt").exists()
    saved = {p.name: p.read_bytes() for p in target.iterdir()}
    entries = sorted(p.name for p in tmp_path.iterdir())

    class FailsHalfway:
        def save_pretrained(self, path):
            (Path(path) / "config.json").write_text("{}")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_atomically(FailsHalfway(), None, target)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == saved  # the previous model, untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == entries  # and no half-written folder beside it


def _tiny_run(max_steps: int = 2, **overrides) -> tuple[dict, LMTrainConfig]:
    utterances = [utterance(str(i), np.arange(20) % 7 + 1) for i in range(8)]
    cfg = LMTrainConfig(**{**dict(block_size=32, batch_size=2, max_steps=max_steps, warmup_steps=1, eval_every=1,
                                  log_every=1), **overrides})
    return pack_blocks(utterances, 32), cfg


def test_only_the_main_process_writes(tmp_path, monkeypatch):
    from accelerate import Accelerator

    monkeypatch.setattr(Accelerator, "is_main_process", property(lambda self: False))
    blocks, cfg = _tiny_run()
    summary = train_lm(tiny_llama(10), blocks, cfg, tmp_path / "run", tokenizer=None,
                       evaluate=lambda m: {"loss": 1.0})
    assert summary["steps"] == 2 and summary["main_process"] is False
    assert not (tmp_path / "run").exists()  # no lock, log, model or summary from a second process


def test_on_the_cpu_clock_the_time_limit_counts_cpu_time(tmp_path, monkeypatch):
    """A CPU clock that runs 30 s per reading stops a 1-minute run after a few steps, whatever the wall time."""
    from dataclasses import replace

    import lm.trainer as trainer_module

    ticks = iter(range(0, 10**6, 30))
    monkeypatch.setattr(trainer_module.time, "process_time", lambda: float(next(ticks)))
    blocks, cfg = _tiny_run(max_steps=1000, max_minutes=1.0, clock="cpu", eval_every=0)
    summary = train_lm(tiny_llama(10), blocks, cfg, tmp_path / "run", evaluate=lambda m: {"loss": 1.0})
    assert summary["steps"] < 5 and summary["clock"] == "cpu"
    with pytest.raises(WavTokenizerError, match="clock must be"):
        train_lm(tiny_llama(10), blocks, replace(cfg, clock="gpu"), tmp_path / "other")


def test_flash_attention_with_several_blocks_per_step_is_refused(tmp_path):
    model = tiny_llama(10)
    model.config._attn_implementation = "flash_attention_2"
    blocks, cfg = _tiny_run(batch_size=2)
    with pytest.raises(WavTokenizerError, match="use --batch-size 1 or sdpa"):
        train_lm(model, blocks, cfg, tmp_path)
    model.config._attn_implementation = "paged|something"
    with pytest.raises(WavTokenizerError, match="not known to honour packed position_ids"):
        train_lm(model, blocks, cfg, tmp_path)


def test_a_model_that_lets_packed_utterances_attend_to_each_other_is_refused(tmp_path, monkeypatch):
    import transformers.masking_utils as masking

    from lm.models import check_packing

    for implementation in ("eager", "sdpa"):
        check_packing(tiny_llama(10, attn_implementation=implementation), batch_size=8)
    # as a model class that builds its own causal mask would: restarting positions are not seen
    monkeypatch.setattr(masking, "find_packed_sequence_indices", lambda position_ids: None)
    blocks, cfg = _tiny_run()
    with pytest.raises(WavTokenizerError, match="lets packed utterances attend to each other"):
        train_lm(tiny_llama(10), blocks, cfg, tmp_path)


def test_an_empty_validation_split_is_an_error_not_a_training_utterance():
    from lm.experiment import split_utterances

    few = [utterance(str(i), [1, 2, 3]) for i in range(5)]
    with pytest.raises(WavTokenizerError, match="validation split of 5 utterances is empty"):
        split_utterances(few, validation_share=1e-9, selection_share=0.0)
    with pytest.raises(WavTokenizerError, match="selection split of 5 utterances is empty"):
        split_utterances(few, validation_share=0.5, selection_share=1e-9)


def test_the_checkpoint_is_chosen_on_a_selection_split_apart_from_the_reported_one(tmp_path):
    from lm.experiment import run_metrics, split_utterances, train_and_reload

    utterances = [utterance(f"u{i}", np.arange(12) % 5 + 1) for i in range(60)]
    splits = split_utterances(utterances, validation_share=0.2, selection_share=0.2)
    ids = [{u.id for u in part} for part in (splits.train, splits.selection, splits.validation)]
    assert all(ids) and sum(map(len, ids)) == len(set.union(*ids)) == 60
    reported = {u.id for u, v in zip(utterances, split_by_utterance([u.id for u in utterances], 0.2)) if v}
    assert ids[2] == reported  # carving out a selection split leaves the validation utterances as they were
    seen = []

    def score(model, part):
        seen.append({u.id for u in part})
        return {"loss": 1.0 / len(seen)}

    _, cfg = _tiny_run(block_size=16)
    best, summary = train_and_reload(tiny_llama(10), None, splits, cfg, tmp_path, 0, score)
    assert seen == [ids[1]] * 3 and summary["best_step"] == 2  # steps 0, 1 and 2, each on the selection split
    assert "disjoint" in run_metrics(splits, summary, best, cfg)["checkpoint_selected_on"]
    same = split_utterances(utterances, validation_share=0.2, selection_share=0.0)
    assert same.selection_is_validation
    assert "the set reported here" in run_metrics(same, summary, best, cfg)["checkpoint_selected_on"]


def test_top_k_top_p_filtering_and_allowed_ids():
    logits = torch.tensor([4.0, 3.0, 2.0, 1.0, 0.0])
    kept = torch.isfinite(filter_logits(logits, SamplingConfig(top_k=2, top_p=None)))
    assert kept.tolist() == [True, True, False, False, False]
    probs = torch.softmax(logits, 0)
    kept = torch.isfinite(filter_logits(logits, SamplingConfig(top_k=None, top_p=float(probs[0]) + 1e-3)))
    assert kept.tolist() == [True, True, False, False, False]  # the token that crosses top_p stays
    model = tiny_llama(20)
    sampler = CachedSampler(model, SamplingConfig(temperature=1.0, top_k=None, top_p=None, seed=1))
    sampler.feed([1, 2, 3])
    drawn = sampler.sample(id_mask(20, range(10, 15)), max_tokens=30)
    assert len(drawn) == 30 and all(10 <= t < 15 for t in drawn)
    # the cached continuation equals a full forward pass over the same sequence
    with torch.no_grad():
        full = model(input_ids=torch.tensor([[1, 2, 3, *drawn]])).logits[0, -1]
    assert torch.allclose(sampler.next_logits, full, atol=1e-4)


# --- TTS formats and generation -------------------------------------------------------------------------------

WORDS = [{"word": "Hello", "start": 0.0, "end": 0.31}, {"word": "big", "start": 0.31, "end": 0.52},
         {"word": "world--again", "start": 0.52, "end": 1.0}]


def test_word_code_spans_cover_all_frames():
    spans = word_code_spans([0.31, 0.52, 1.0], num_frames=75, frame_rate=75.0)
    assert spans == [(0, 23), (23, 39), (39, 75)]
    assert word_code_spans([0.0, 0.0], 2, 75.0) == [(0, 1), (1, 2)]  # one frame each at least
    with pytest.raises(WavTokenizerError):
        word_code_spans([0.1, 0.2, 0.3], 2, 75.0)


@pytest.mark.parametrize("fmt", ["plain", "interleaved"])
def test_tts_example_scores_only_the_audio_part(joint_tokenizer, fmt):
    formatter = TTSFormatter(joint_tokenizer, fmt)
    m = formatter.layout
    codes = np.arange(75) % 4096
    example = formatter.example("u", WORDS, codes, 75.0)
    ids, scored = example.input_ids, example.scored
    start = int(np.where(ids == m[AUDIO_START])[0][0])
    assert not scored[: start + 1].any()
    assert np.array_equal(m.ids_to_codes(ids, drop_other=True), codes)  # every code once, in order
    assert ids[-2] == m[AUDIO_END] and ids[-1] == m[EOS] and scored[-2:].all()
    assert m.is_audio(torch.from_numpy(ids[scored])).sum() == 75
    if fmt == "interleaved":
        assert (ids == m[WORD_END]).sum() == 3  # hello | big | world | again: three word ends, then audio_end
        unscored_audio_part = ids[start + 1:][~scored[start + 1:]]
        assert joint_tokenizer.decode(unscored_audio_part.tolist()) == " hello big world again"
        durations = ids[(ids >= m.duration_offset) & (ids < m.duration_offset + m.num_durations)]
        assert len(durations) == 4


@pytest.fixture(scope="module")
def trained_tts(tmp_path_factory):
    """A tiny interleaved TTS-LM trained for a few steps on synthetic codes (vocab of the shipped codec)."""
    from wavtokenizer_hf.codec import Codec

    codec = Codec.from_pretrained(CODEC)
    tokenizer = build_joint_tokenizer(codec.codebook_size, ["hello big world again"] * 20, text_vocab_size=280)
    formatter = TTSFormatter(tokenizer, "interleaved")
    rng = np.random.default_rng(0)
    examples = [formatter.example(str(i), WORDS, rng.integers(0, codec.codebook_size, 75), 75.0) for i in range(8)]
    model = tiny_llama(len(tokenizer), max_position_embeddings=1024)
    out = tmp_path_factory.mktemp("tts")
    train_lm(model, pack_blocks(examples, 256), LMTrainConfig(block_size=256, batch_size=2, max_steps=5,
                                                               warmup_steps=1, eval_every=0), out, tokenizer)
    (out / "model" / "tts_format.json").write_text(json.dumps({"format": "interleaved"}))
    return codec, out / "model"


@pytest.mark.parametrize("fmt", ["interleaved", "plain"])
def test_generation_gives_codes_in_range_and_audio_of_matching_length(trained_tts, fmt, tmp_path):
    import shutil

    from lm.tts_generation import FORMAT_FILE, generate_codes, load_tts

    codec, lm_dir = trained_tts
    copy = shutil.copytree(lm_dir, tmp_path / "model")
    (copy / FORMAT_FILE).write_text(json.dumps({"format": fmt}))
    model, formatter = load_tts(copy, codec)
    assert formatter.format == fmt
    codes = generate_codes(model, formatter, "Hello, big world!", codec.frame_rate, SamplingConfig(seed=3),
                           max_seconds=2.0)
    assert codes.dtype.kind == "i" and 0 <= codes.min() and codes.max() < codec.codebook_size
    assert 3 <= len(codes) <= 2 * codec.frame_rate
    audio = codec.decode(torch.from_numpy(codes).long()[None])
    assert audio.shape == (1, len(codes) * codec.hop_length)


@pytest.mark.parametrize("max_seconds", [2.0, 0.1])
def test_generation_speaks_every_word_of_the_text_once_in_order(trained_tts, monkeypatch, max_seconds):
    from lm.tts_generation import generate_codes, load_tts

    fed = _recording_sampler(monkeypatch)
    codec, lm_dir = trained_tts
    model, formatter = load_tts(lm_dir, codec, "interleaved")
    codes = generate_codes(model, formatter, "Hello, big world--again!", codec.frame_rate, SamplingConfig(seed=3),
                           max_seconds=max_seconds)
    m = formatter.layout
    audio_part = np.asarray(fed[fed.index(m[AUDIO_START]) + 1:])
    is_duration = (audio_part >= m.duration_offset) & (audio_part < m.duration_offset + m.num_durations)
    closing = np.isin(audio_part, [m[WORD_END], m[AUDIO_END]])
    words = audio_part[~m.is_audio(torch.from_numpy(audio_part)).numpy() & ~is_duration & ~closing]
    assert formatter.tokenizer.decode(words.tolist()) == " hello big world again"  # none skipped or repeated
    assert audio_part[closing].tolist() == [m[WORD_END]] * 3 + [m[AUDIO_END]] and audio_part[-1] == m[AUDIO_END]
    assert is_duration.sum() == 4 and len(codes) <= max_seconds * codec.frame_rate


def _recording_sampler(monkeypatch) -> list[int]:
    """Every id fed to or drawn by generation's sampler, in order."""
    import lm.tts_generation as generation

    fed: list[int] = []

    class Recording(generation.CachedSampler):
        def feed(self, ids):
            fed.extend(torch.as_tensor(ids).reshape(-1).tolist())
            super().feed(ids)

    monkeypatch.setattr(generation, "CachedSampler", Recording)
    return fed


def test_generation_lays_out_the_text_as_training_did_and_gives_each_word_the_frames_of_its_sampled_duration(
        trained_tts, monkeypatch):
    from lm.tts_generation import generate_codes, load_tts
    from lm.vocabulary import DURATION_STEP

    fed = _recording_sampler(monkeypatch)
    codec, lm_dir = trained_tts
    model, formatter = load_tts(lm_dir, codec, "interleaved")
    rate = codec.frame_rate
    codes = generate_codes(model, formatter, "Hello, big world again!", rate, SamplingConfig(seed=5), max_seconds=12)
    m = formatter.layout
    ids = np.asarray(fed)
    is_duration = (ids >= m.duration_offset) & (ids < m.duration_offset + m.num_durations)
    is_audio = m.is_audio(torch.from_numpy(ids)).numpy()
    starts, ends = np.flatnonzero(is_duration), np.flatnonzero(np.isin(ids, [m[WORD_END], m[AUDIO_END]]))
    frames = [int(is_audio[a:b].sum()) for a, b in zip(starts, ends)]
    sampled = (ids[is_duration] - m.duration_offset) * DURATION_STEP
    assert frames == [max(1, int(round(s * rate))) for s in sampled]  # the sampled durations are honoured
    bounds = np.cumsum(frames) / rate
    words = [{"word": w, "start": 0.0, "end": e} for w, e in zip(["hello", "big", "world", "again"], bounds)]
    expected = formatter.example("g", words, codes, rate).input_ids[:-1]  # all but <|eos|>, which is not generated
    same = ~is_duration  # a duration token rebuilt from whole frames may name a neighbouring 10 ms step
    assert len(ids) == len(expected) and np.array_equal(ids[same], expected[same])


def test_stock_generate_with_the_interleaved_processor_draws_what_our_sampler_draws(trained_tts):
    from lm.tts_generation import generate_codes, interleaved_generation, load_tts
    from lm.vocabulary import DURATION_STEP

    codec, lm_dir = trained_tts
    model, formatter = load_tts(lm_dir, codec, "interleaved")
    m, rate, text = formatter.layout, codec.frame_rate, "Hello, big world again!"
    ours = generate_codes(model, formatter, text, rate, SamplingConfig(temperature=0), max_seconds=12)

    def stock(**kwargs) -> tuple[list[int], np.ndarray, list[int]]:
        prompt, processor = interleaved_generation(model, formatter, text, rate, max_seconds=12)
        with torch.no_grad():
            out = model.generate(torch.tensor([prompt]), logits_processor=[processor], max_new_tokens=900,
                                 eos_token_id=processor.eos_id, pad_token_id=m[PAD], **kwargs)
        return prompt, m.ids_to_codes(np.asarray(processor.plan.audio)), out[0, len(prompt):].tolist()

    _, greedy, new = stock(do_sample=False)
    assert np.array_equal(greedy, ours)  # the same rules and budgets as our cached sampler
    assert new[-2:] == [m[AUDIO_END], m[EOS]]  # closed as training examples are
    torch.manual_seed(4)
    prompt, codes, new = stock(do_sample=True, temperature=1.0, top_k=0, top_p=1.0)
    ids = np.asarray(prompt + new[:-1])
    is_duration = (ids >= m.duration_offset) & (ids < m.duration_offset + m.num_durations)
    is_audio = m.is_audio(torch.from_numpy(ids)).numpy()
    starts, ends = np.flatnonzero(is_duration), np.flatnonzero(np.isin(ids, [m[WORD_END], m[AUDIO_END]]))
    frames = [int(is_audio[a:b].sum()) for a, b in zip(starts, ends)]
    assert frames == [max(1, int(round(s * rate))) for s in (ids[is_duration] - m.duration_offset) * DURATION_STEP]
    words = [{"word": w, "start": 0.0, "end": e} for w, e in zip(["hello", "big", "world", "again"],
                                                               np.cumsum(frames) / rate)]
    expected = formatter.example("g", words, codes, rate).input_ids
    assert np.array_equal(ids[~is_duration], expected[:-1][~is_duration]) and new[-1] == expected[-1]


def test_the_interleaved_processor_refuses_a_batch_and_a_token_it_did_not_allow(trained_tts):
    from lm.tts_generation import interleaved_generation, load_tts

    codec, lm_dir = trained_tts
    model, formatter = load_tts(lm_dir, codec, "interleaved")
    prompt, processor = interleaved_generation(model, formatter, "big world", codec.frame_rate)
    scores = torch.zeros(1, model.get_input_embeddings().weight.shape[0])
    with pytest.raises(WavTokenizerError, match="batch of 2"):
        processor(torch.tensor([prompt, prompt]), scores.repeat(2, 1))
    allowed = processor(torch.tensor([prompt]), scores)[0]
    assert torch.isfinite(allowed).sum() == 1  # the first word's first text token, forced
    wrong = int(torch.nonzero(~torch.isfinite(allowed))[0])
    with pytest.raises(WavTokenizerError, match=f"token {wrong} where"):
        processor(torch.tensor([prompt + [wrong]]), scores)
    formatter.format = "plain"
    with pytest.raises(WavTokenizerError, match="plain_audio_processor"):
        interleaved_generation(model, formatter, "big world", codec.frame_rate)


def test_generation_stays_within_the_block_the_model_was_trained_on(trained_tts, monkeypatch):
    from lm.tts_generation import generate_codes, load_tts

    fed = _recording_sampler(monkeypatch)
    codec, lm_dir = trained_tts
    model, formatter = load_tts(lm_dir, codec, "interleaved")
    generate_codes(model, formatter, "Hello, big world again!", codec.frame_rate, SamplingConfig(seed=5),
                   max_seconds=12, block_size=40)
    assert len(fed) + 1 <= 40  # with the <|eos|> that closes a training example
    fed.clear()
    formatter.format = "plain"
    generate_codes(model, formatter, "Hello, big world again!", codec.frame_rate, SamplingConfig(seed=5),
                   max_seconds=12, block_size=40)
    assert len(fed) + 1 <= 40
    with pytest.raises(WavTokenizerError, match="leaving no room for audio"):
        generate_codes(model, formatter, "Hello, big world again!", codec.frame_rate, block_size=6)
    formatter.format = "interleaved"
    with pytest.raises(WavTokenizerError, match="more than the model's 20-token block"):
        generate_codes(model, formatter, "Hello, big world again!", codec.frame_rate, block_size=20)


def test_an_interleaved_example_gives_each_word_the_duration_of_its_frames(joint_tokenizer):
    formatter = TTSFormatter(joint_tokenizer, "interleaved")
    words = [{"word": w, "start": 0.0, "end": e} for w, e in (("the", 0.2), ("cat", 0.48), ("sat", 1.0))]
    example = formatter.example("u", words, np.arange(75) % 4096, 75.0)
    names = joint_tokenizer.convert_ids_to_tokens(example.input_ids.tolist())
    assert [n for n in names if n.startswith("<|t_")] == ["<|t_0.20|>", "<|t_0.28|>", "<|t_0.52|>"]


def test_a_time_budget_shorter_than_one_frame_per_word_is_refused(trained_tts):
    from lm.tts_generation import generate_codes, load_tts

    codec, lm_dir = trained_tts
    model, formatter = load_tts(lm_dir, codec, "interleaved")
    with pytest.raises(WavTokenizerError, match="fewer than the 4 words"):
        generate_codes(model, formatter, "hello big world again", codec.frame_rate, max_seconds=0.04)


def test_the_old_tts_module_names_still_import():
    import lm.tts
    import lm.tts_format
    import lm.tts_generation
    import lm.tts_lm
    import lm.tts_sequences
    import lm.tts_training

    assert lm.tts.generate_codes is lm.tts_generation.generate_codes and lm.tts.load_tts is lm.tts_generation.load_tts
    assert lm.tts_format.TTSFormatter is lm.tts_sequences.TTSFormatter
    assert lm.tts_lm.finetune_tts is lm.tts_training.finetune_tts
    assert lm.tts_lm.text_conditioning is lm.tts_training.text_conditioning


def test_lm_vocabulary_that_does_not_match_the_codec_is_refused(trained_tts, converted_dir):
    from lm.tts_generation import load_tts
    from wavtokenizer_hf.codec import Codec

    codec, lm_dir = trained_tts
    other = Codec.from_pretrained(converted_dir)  # the shrunken fixture: 512 codes; the LM knows the shipped codec's
    with pytest.raises(WavTokenizerError, match=f"{codec.codebook_size} audio tokens but the codec has 512"):
        load_tts(lm_dir, other)


def test_tts_generate_script_errors_are_one_line(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "tts_generate.py"), "--lm", str(tmp_path),
                             "--codec", str(CODEC), "--text", "hi", "--out", str(tmp_path / "x.wav")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "no config.json" in result.stderr


def test_text_conditioning_compares_own_and_other_text(trained_tts):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lm.tts_training import text_conditioning

    _, lm_dir = trained_tts
    formatter = TTSFormatter(AutoTokenizer.from_pretrained(lm_dir), "interleaved")
    model = AutoModelForCausalLM.from_pretrained(lm_dir).eval()
    other = [{"word": "Goodbye", "start": 0.0, "end": 0.3}, {"word": "small", "start": 0.3, "end": 0.5},
             {"word": "moon", "start": 0.5, "end": 0.7}, {"word": "now", "start": 0.7, "end": 1.0}]
    codes = np.arange(75) % 1024
    result = text_conditioning(model, formatter, [(WORDS, codes, 75.0), (other, codes, 75.0),
                                                  (WORDS[:1], codes, 75.0)])  # the one-word row has no partner
    assert result["pairs"] == 2
    assert math.isfinite(result["text_gain_nats"])
    low, high = result["text_gain_interval"]
    assert low <= result["text_gain_bits_per_second"] <= high


class _BigramLM(torch.nn.Module):
    """Logits of the next token from the current one alone: codes that follow codes or a duration never see the
    text; a duration follows a word's last text token, so durations depend on the words."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.table = torch.nn.Parameter(table)

    def forward(self, input_ids, attention_mask=None, use_cache=False):
        return SimpleNamespace(logits=self.table[input_ids])


def test_the_text_gain_counts_audio_tokens_only_so_durations_that_follow_the_words_are_reported_apart(
        joint_tokenizer):
    from lm.tts_training import text_conditioning

    formatter = TTSFormatter(joint_tokenizer, "interleaved")
    table = torch.zeros(len(joint_tokenizer), len(joint_tokenizer))
    durations = formatter.layout.duration_ids()
    table[:, durations.start:durations.stop] = 8.0 * torch.randn(len(joint_tokenizer), len(durations),
                                                                  generator=torch.Generator().manual_seed(0))
    rng = np.random.default_rng(0)
    sentences = [["hello", "big", "world", "again"], ["the", "cat", "sat", "down"], ["one", "two", "three", "four"]]
    rows = [([{"word": w, "start": 0.0, "end": 0.2 * (i + 1) + 0.05 * k} for i, w in enumerate(words)],
             rng.integers(0, 4096, 75), 75.0) for k, words in enumerate(sentences * 4)]
    result = text_conditioning(_BigramLM(table).eval(), formatter, rows)
    assert result["pairs"] == 12
    assert result["text_gain_bits_per_second"] == pytest.approx(0.0, abs=1e-9)
    assert result["text_gain_interval"] == pytest.approx([0.0, 0.0], abs=1e-9)
    assert abs(result["duration_gain_bits_per_second"]) > 1.0  # what the old, all-token gain reported as text use
    assert result["all_scored_gain_bits_per_second"] == pytest.approx(
        result["duration_gain_bits_per_second"] + result["marker_gain_bits_per_second"])


def _prompt_text(formatter: TTSFormatter, example: Utterance) -> str:
    from lm.vocabulary import TEXT_END, TEXT_START

    ids = example.input_ids.tolist()
    return formatter.tokenizer.decode(ids[ids.index(formatter.layout[TEXT_START]) + 1:
                                          ids.index(formatter.layout[TEXT_END])])


def test_text_conditioning_puts_another_rows_words_on_each_rows_codes(joint_tokenizer):
    from lm.tts_training import conditioning_pairs

    formatter = TTSFormatter(joint_tokenizer, "interleaved")
    other = [{"word": w, "start": 0.0, "end": e} for w, e in (("the", 0.3), ("cat", 0.5), ("sat", 0.7), ("down", 1.0))]
    rng = np.random.default_rng(0)
    rows = [(WORDS, rng.integers(0, 4096, 75), 75.0), (other, rng.integers(0, 4096, 75), 75.0),
            (WORDS, rng.integers(0, 4096, 75), 75.0),  # the same sentence again: never its own partner
            (WORDS[:1], rng.integers(0, 4096, 75), 75.0)]  # one word: no partner with as many words
    own, swapped = conditioning_pairs(formatter, rows)
    assert [_prompt_text(formatter, e) for e in own] == ["hello big world again", "the cat sat down",
                                                         "hello big world again"]
    assert [_prompt_text(formatter, e) for e in swapped] == ["the cat sat down", "hello big world again",
                                                             "the cat sat down"]
    for mine, theirs in zip(own, swapped):  # the same targets: only the text differs
        assert np.array_equal(mine.input_ids[mine.scored], theirs.input_ids[theirs.scored])


def test_training_logs_to_tensorboard_and_refuses_a_missing_tracker(tmp_path):
    pytest.importorskip("tensorboard")
    utterances = [utterance(str(i), np.arange(20) % 7 + 1) for i in range(8)]
    cfg = LMTrainConfig(block_size=32, batch_size=2, max_steps=4, warmup_steps=1, eval_every=0, log_every=2,
                        log_with="tensorboard")
    train_lm(tiny_llama(10), pack_blocks(utterances, 32), cfg, tmp_path)
    assert list(tmp_path.rglob("events.out.tfevents.*"))
    from accelerate.utils import is_wandb_available

    if not is_wandb_available():
        with pytest.raises(WavTokenizerError, match="pip install wandb"):
            train_lm(tiny_llama(10), pack_blocks(utterances, 32), LMTrainConfig(block_size=32, log_with="wandb"),
                     tmp_path / "w")


def test_a_tts_model_from_an_existing_text_lm_keeps_that_lms_weights(tmp_path):
    from lm.tts_training import make_tokenizer_and_model

    text_tokenizer = _text_tokenizer("a text model knows words")
    text_tokenizer.save_pretrained(tmp_path)
    text_tokens = len(text_tokenizer)
    text_model = _text_lm(text_tokens + 6, tied=True)
    text_model.save_pretrained(tmp_path)
    tokenizer, model = make_tokenizer_and_model(64, tmp_path, None)
    layout = AudioTokenLayout.from_tokenizer(tokenizer)
    assert layout.codebook_size == 64 and model.get_input_embeddings().weight.shape[0] == len(tokenizer)
    assert type(model) is type(text_model)
    trained = dict(text_model.named_parameters())
    for name, parameter in model.named_parameters():
        rows = slice(0, text_tokens) if "wte" in name else slice(None)
        assert torch.equal(parameter[rows], trained[name][rows]), name
    embeddings = model.get_input_embeddings().weight
    assert torch.allclose(embeddings[text_tokens:], embeddings[:text_tokens].mean(0), atol=1e-6)
    example = TTSFormatter(tokenizer, "interleaved").example("u", WORDS, np.arange(75) % 64, 75.0)
    with torch.no_grad():
        loss = model(input_ids=torch.from_numpy(example.input_ids)[None],
                     labels=torch.from_numpy(np.where(example.scored, example.input_ids, -100))[None]).loss
    assert torch.isfinite(loss)


def test_codes_of_reads_flat_and_nested_layouts():
    from lm.streams import codes_of

    for value in ([3, 4, 5], [[3, 4, 5]], [[[3, 4, 5]]]):
        assert codes_of({"audio_codes": value}).tolist() == [3, 4, 5]
    with pytest.raises(WavTokenizerError, match="mono"):
        codes_of({"audio_codes": [[1, 2], [3, 4]]})


def test_tts_data_from_another_codec_is_refused(joint_tokenizer):
    from lm.tts_training import tts_utterances

    formatter = TTSFormatter(joint_tokenizer, "interleaved")
    rows = [{"id": "a", "kind": "speech", "words": WORDS, "audio_codes": [5000] * 75, "frame_rate": 75.0}]
    with pytest.raises(WavTokenizerError, match="tokenize the data with this codec"):
        tts_utterances(rows, formatter)
    short = [{"id": "b", "kind": "speech", "words": WORDS, "audio_codes": [1, 2], "frame_rate": 75.0}]
    with pytest.raises(WavTokenizerError, match="no speech rows"):
        tts_utterances(short, formatter)  # skipped as too short for its 4 words, then nothing is left


def test_saved_tokenizers_name_a_class_both_transformers_majors_load(tmp_path):
    """transformers 5 writes `TokenizersBackend`, which 4.x lacks; `PreTrainedTokenizerFast` is in both."""
    from transformers import AutoTokenizer

    from lm.tokenizer_files import save_tokenizer
    from lm.vocabulary import build_joint_tokenizer

    tokenizer = build_joint_tokenizer(16, ["a few words of text"] * 4, 300)
    save_tokenizer(tokenizer, tmp_path)
    assert json.loads((tmp_path / "tokenizer_config.json").read_text())["tokenizer_class"] == "PreTrainedTokenizerFast"
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded("a few words").input_ids == tokenizer("a few words").input_ids
    assert len(loaded) == len(tokenizer)
    other = os.environ.get("TRANSFORMERS4_PYTHON")  # a Python with transformers 4.x, where one is installed
    if other:
        script = (f"from transformers import AutoTokenizer; import transformers; assert transformers.__version__[0] == '4';"
                  f"t = AutoTokenizer.from_pretrained({str(tmp_path)!r}); print(t('a few words').input_ids)")
        out = subprocess.run([other, "-c", script], capture_output=True, text=True, check=True).stdout
        assert json.loads(out.strip()) == tokenizer("a few words").input_ids


def test_a_generation_too_short_to_decode_is_a_failed_item_not_a_failed_run(trained_tts, tmp_path, monkeypatch):
    import io

    import soundfile as sf

    import lm.tts_training as training
    from lm.tts_generation import TooFewFrames, load_tts
    from wavtokenizer_hf.evaluation import asr

    codec, lm_dir = trained_tts
    model, formatter = load_tts(lm_dir, codec, "interleaved")
    buffer = io.BytesIO()
    sf.write(buffer, (0.1 * np.sin(np.arange(12000) / 10)).astype(np.float32), 24000, format="FLAC")
    rows = [{"id": f"u{i}", "text": "hello big world again", "audio": {"bytes": buffer.getvalue(), "path": None}}
            for i in range(2)]
    real = training.generate_codes

    def first_fails(model, formatter, text, frame_rate, sampling, **kwargs):
        if sampling.seed == 0:
            raise TooFewFrames(f"the LM produced 1 audio frame(s) for {text!r}")
        return real(model, formatter, text, frame_rate, sampling, max_seconds=1.0)

    monkeypatch.setattr(training, "generate_codes", first_fails)
    monkeypatch.setattr(asr, "recognizer", lambda which="auto": None)
    result = training.evaluate_tts(model, formatter, codec, rows, tmp_path, SamplingConfig(seed=0), samples=2)
    assert result["failed_generations"] == 1 and result["sentences"] == 2
    assert "1 audio frame" in result["items"][0]["generation_failed"] and result["items"][0]["generated_seconds"] == 0
    assert result["items"][1]["generation_failed"] is None and result["items"][1]["generated_seconds"] > 0


def test_tts_error_rates_sum_errors_over_sentences_with_intervals_and_a_paired_gap_to_the_ceiling():
    from lm.tts_training import _error_rates

    # per sentence: word errors, words, char errors, chars
    ceiling = [[1, 4, 2, 20], [0, 5, 0, 25], [3, 6, 5, 30]]
    generated = [[2, 4, 4, 20], [1, 5, 1, 25], [4, 6, 9, 30]]
    original = [[3, 4, 0, 20], [2, 5, 0, 25], [5, 6, 0, 30]]  # worse than both: the gap is not to the originals
    rates = _error_rates({"generated": generated, "reconstruction": ceiling, "original": original}, 500)
    assert rates["wer_generated"] == pytest.approx(7 / 15) and rates["wer_reconstruction"] == pytest.approx(4 / 15)
    assert rates["cer_generated"] == pytest.approx(14 / 75) and rates["wer_original"] == pytest.approx(10 / 15)
    low, high = rates["wer_generated_interval"]
    assert low <= 7 / 15 <= high and low < high
    assert rates["wer_gap_interval"][0] > 0  # one more word error in every sentence: above zero in every resample
    same = _error_rates({"generated": ceiling, "reconstruction": ceiling, "original": original}, 200)
    assert same["wer_gap_interval"] == [0.0, 0.0]


def test_tts_test_sentences_take_each_test_speaker_in_turn(tmp_path):
    from datasets import Dataset, DatasetDict

    from lm.tts_training import test_sentences

    rows = [{"id": f"{s}{i}", "speaker": s, "kind": "speech", "text": "hi"} for s in "abc" for i in range(4)]
    rows.insert(1, {"id": "m0", "speaker": "", "kind": "music", "text": ""})
    DatasetDict({"test": Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "corpus"))
    chosen = [row["id"] for row in test_sentences(tmp_path / "corpus", 5)]
    assert chosen == ["a0", "b0", "c0", "a1", "b1"]


def test_a_format_other_than_the_one_trained_is_refused(trained_tts):
    from lm.tts_generation import load_tts

    codec, lm_dir = trained_tts  # trained on "interleaved"
    with pytest.raises(WavTokenizerError, match="trained on the 'interleaved' format; generating in 'plain'"):
        load_tts(lm_dir, codec, "plain")
    assert load_tts(lm_dir, codec, "interleaved")[1].format == "interleaved"
