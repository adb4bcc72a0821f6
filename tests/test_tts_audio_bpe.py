"""The TTS-LM on audio-BPE tokens (`finetune_tts.py --audio-bpe`): training, saving with its audio BPE, reloading,
word-aligned sequences, generation budgeted in decoded frames, per-second metrics and the mismatch errors. Tiny
models on a micro tokenized corpus whose codes repeat motifs (so that the audio BPE has pieces to merge)."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
from test_lm_scripts import SENTENCES, TINY_LLAMA, TRAIN, micro_rows, run_script

from lm.audio_bpe import AudioBPELayout, joint_tokenizer, load_audio_bpe, train_audio_bpe
from lm.evaluate import utterance_nats
from lm.sampling import SamplingConfig
from lm.tts_sequences import TTSFormatter, word_code_spans
from lm.vocabulary import AUDIO_END, AUDIO_START, WORD_END
from wavtokenizer_hf.errors import WavTokenizerError

PIECES = 200  # multi-code tokens of the test's audio BPE


def motif_codes(rng: np.random.Generator, frames: int, codebook_size: int) -> np.ndarray:
    """Codes made of a few recurring motifs (as phones recur), with 10% random codes."""
    motifs = [np.random.default_rng(100 + i).integers(0, codebook_size, 2 + i % 4) for i in range(12)]
    stream = np.concatenate([motifs[i] for i in rng.integers(0, len(motifs), frames)])[:frames]
    noise = rng.random(frames) < 0.1
    stream[noise] = rng.integers(0, codebook_size, int(noise.sum()))
    return stream


@pytest.fixture(scope="module")
def bpe_corpus(tmp_path_factory, converted_dir) -> dict:
    """A micro tokenized corpus (40 utterances of 0.5-1.9 s with word timings), an audio BPE trained on it, and a
    TTS-LM trained on that BPE by `finetune_tts.py` (interleaved)."""
    from datasets import Dataset

    from wavtokenizer_hf.codec import Codec

    codec = Codec.from_pretrained(converted_dir)
    rows = micro_rows(codec, motif_codes)
    root = tmp_path_factory.mktemp("tts_bpe")
    Dataset.from_list(rows).save_to_disk(str(root / "tokenized"))
    bpe = train_audio_bpe([np.asarray(r["audio_codes"][0]) for r in rows], codec.codebook_size,
                          codec.codebook_size + PIECES)
    bpe.save(root / "bpe")
    (root / "llama.json").write_text(json.dumps(TINY_LLAMA))
    with pytest.MonkeyPatch.context() as monkeypatch:
        code = run_script("finetune_tts.py", "--data", str(root / "tokenized"), "--codec", str(converted_dir),
                          "--out", str(root / "tts"), "--audio-bpe", str(root / "bpe"), "--model-config",
                          str(root / "llama.json"), "--block-size", "128", *TRAIN, monkeypatch=monkeypatch)
    assert code == 0
    return {"root": root, "codec": codec, "codec_dir": converted_dir, "bpe": bpe, "rows": rows,
            "data": root / "tokenized", "model": root / "tts" / "model",
            "metrics": json.loads((root / "tts" / "metrics.json").read_text())}


class Recording:
    """Patches `lm.tts_generation.CachedSampler` to record every id fed to the model."""

    def __init__(self, monkeypatch):
        import lm.tts_generation as generation

        self.fed: list[int] = []
        fed = self.fed

        class Recorder(generation.CachedSampler):
            def feed(self, ids):
                fed.extend(torch.as_tensor(ids).reshape(-1).tolist())
                super().feed(ids)

        monkeypatch.setattr(generation, "CachedSampler", Recorder)


def audio_part_by_word(ids, layout) -> list[list[int]]:
    """The audio-token ids after `<|audio_start|>`, one list per word (split at the word ends)."""
    ids = list(ids)
    words, current = [], []
    for token in ids[ids.index(layout[AUDIO_START]) + 1:]:
        if token in (layout[WORD_END], layout[AUDIO_END]):
            words.append(current)
            current = []
        elif bool(layout.is_audio(np.asarray(token))):
            current.append(token)
    return words + ([current] if current else [])  # a plain-format budget can end without <|audio_end|>


# --- training, saving, reloading, speaking --------------------------------------------------------------------

def test_finetune_tts_with_an_audio_bpe_trains_saves_it_with_the_model_and_tts_generate_speaks(bpe_corpus, tmp_path,
                                                                                                monkeypatch):
    from lm.tts_generation import load_tts

    metrics, codec, bpe, model_dir = (bpe_corpus[k] for k in ("metrics", "codec", "bpe", "model"))
    assert metrics["audio_vocab_size"] == bpe.vocab_size == codec.codebook_size + PIECES
    assert metrics["validation_tokens_per_second"] < 0.8 * codec.frame_rate  # BPE tokens, several frames each
    assert json.loads((model_dir / "tts_format.json").read_text()) == {"format": "interleaved", "block_size": 128,
                                                                       "audio_bpe": "audio_bpe"}
    assert load_audio_bpe(model_dir / "audio_bpe", codec.codebook_size).pieces == bpe.pieces
    model, formatter = load_tts(model_dir, codec)
    assert isinstance(formatter.layout, AudioBPELayout) and formatter.layout.bpe.pieces == bpe.pieces
    assert model.get_input_embeddings().weight.shape[0] >= formatter.layout.audio_ids().stop
    wav = tmp_path / "spoken.wav"
    code = run_script("tts_generate.py", "--lm", str(model_dir), "--codec", str(bpe_corpus["codec_dir"]), "--text",
                      "The cat sat.", "--out", str(wav), "--max-seconds", "0.5", monkeypatch=monkeypatch)
    assert code == 0
    import soundfile as sf

    frames = sf.info(str(wav)).frames / codec.hop_length
    assert 3 <= frames <= int(0.5 * codec.frame_rate)


# --- word alignment ---------------------------------------------------------------------------------------------

def test_a_words_audio_tokens_never_merge_across_word_boundaries(bpe_corpus):
    bpe, codec = bpe_corpus["bpe"], bpe_corpus["codec"]
    formatter = TTSFormatter(joint_tokenizer(bpe, [" ".join(s) for s in SENTENCES] * 5, 300), "interleaved", bpe)
    m, rate, first = formatter.layout, codec.frame_rate, bpe.pieces[codec.codebook_size]  # the first merged pair
    rng = np.random.default_rng(7)
    codes = np.concatenate([motif_codes(rng, 20, codec.codebook_size), first,
                            motif_codes(rng, 20, codec.codebook_size)])
    words = [{"word": "cat", "start": 0.0, "end": 21 / rate}, {"word": "sat", "start": 21 / rate, "end": 42 / rate}]
    assert 21 not in np.cumsum(bpe.lengths[bpe.encode(codes)])  # encoded whole, a token spans the word boundary
    example = formatter.example("u", words, codes, rate)
    per_word = audio_part_by_word(example.input_ids, m)
    assert [m.ids_to_codes(ids).tolist() for ids in per_word] == [codes[:21].tolist(), codes[21:].tolist()]
    # on the whole corpus: every word's tokens decode to exactly its frames, and pieces are used inside words
    merged = 0
    for row in bpe_corpus["rows"]:
        codes = np.asarray(row["audio_codes"][0])
        example = formatter.example(row["id"], row["words"], codes, rate)
        per_word = audio_part_by_word(example.input_ids, m)
        spans = word_code_spans([w["end"] for w in row["words"]], len(codes), rate)
        assert [m.ids_to_codes(ids).tolist() for ids in per_word] == [codes[a:b].tolist() for a, b in spans]
        merged += sum(bpe.lengths[np.asarray(ids) - m.audio_offset].max() > 1 for ids in per_word)
    assert merged > 0


def test_an_existing_text_lm_is_extended_with_the_audio_bpes_tokens(bpe_corpus, tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    from lm.tts_training import make_tokenizer_and_model
    from lm.vocabulary import train_text_bpe

    bpe, row = bpe_corpus["bpe"], bpe_corpus["rows"][0]
    text_tokenizer = PreTrainedTokenizerFast(tokenizer_object=train_text_bpe(["the cat sat on a mat"] * 10, 280))
    text_tokenizer.save_pretrained(tmp_path)
    text_lm = GPT2LMHeadModel(GPT2Config(vocab_size=len(text_tokenizer), n_embd=32, n_layer=1, n_head=2))
    text_lm.save_pretrained(tmp_path)
    tokenizer, model = make_tokenizer_and_model(bpe, tmp_path, None)
    formatter = TTSFormatter(tokenizer, "interleaved", bpe)
    assert formatter.layout.audio_ids().stop == len(tokenizer) == model.get_input_embeddings().weight.shape[0]
    example = formatter.example("u", row["words"], np.asarray(row["audio_codes"][0]), row["frame_rate"])
    with torch.no_grad():
        loss = model(input_ids=torch.from_numpy(example.input_ids)[None],
                     labels=torch.from_numpy(np.where(example.scored, example.input_ids, -100))[None]).loss
    assert torch.isfinite(loss)
    with pytest.raises(WavTokenizerError, match="--text-lm brings its own tokenizer"):
        make_tokenizer_and_model(bpe, tmp_path, None, text_model="sp-unigram")


# --- generation -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["interleaved", "plain"])
def test_generation_budgets_decoded_frames_and_decodes_the_drawn_tokens_exactly(bpe_corpus, monkeypatch, fmt,
                                                                                 tmp_path):
    import shutil

    from lm.tts_generation import FORMAT_FILE, generate_codes, load_tts

    codec = bpe_corpus["codec"]
    recording = Recording(monkeypatch)
    model_dir = shutil.copytree(bpe_corpus["model"], tmp_path / "model")  # as if trained on `fmt` (mechanics only)
    (model_dir / FORMAT_FILE).write_text(json.dumps({**json.loads((model_dir / FORMAT_FILE).read_text()), "format": fmt}))
    model, formatter = load_tts(model_dir, codec)
    m, max_seconds = formatter.layout, 0.4
    budget = int(max_seconds * codec.frame_rate)
    codes = generate_codes(model, formatter, "It was a fine day.", codec.frame_rate, SamplingConfig(seed=1),
                           max_seconds=max_seconds)
    assert codes.dtype.kind == "i" and 0 <= codes.min() and codes.max() < codec.codebook_size
    assert 2 <= len(codes) <= budget
    drawn = [t for word in audio_part_by_word(recording.fed, m) for t in word]
    assert np.array_equal(codes, m.ids_to_codes(drawn))  # exactly the codes of the tokens drawn
    assert len(drawn) < len(codes)  # some tokens held several frames: a budget in tokens would overrun
    if fmt == "interleaved":
        frames = [len(m.ids_to_codes(ids)) for ids in audio_part_by_word(recording.fed, m)]
        assert len(frames) == 5 and min(frames) >= 1 and sum(frames) == len(codes)


# --- metrics ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("with_bpe", [False, True])
def test_held_out_loss_and_text_gain_are_per_second_of_audio_with_codes_and_with_bpe(bpe_corpus, with_bpe):
    from lm.models import build_causal_lm
    from lm.tts_training import audio_loss, conditioning_pairs, text_conditioning

    bpe, codec = bpe_corpus["bpe"], bpe_corpus["codec"]
    audio = bpe if with_bpe else codec.codebook_size
    formatter = TTSFormatter(joint_tokenizer(audio, [" ".join(s) for s in SENTENCES] * 5, 300), "interleaved",
                             bpe if with_bpe else None)
    model = build_causal_lm(len(formatter.tokenizer), formatter.layout, bpe_corpus["root"] / "llama.json").eval()
    table = [(r["words"], np.asarray(r["audio_codes"][0]), r["frame_rate"]) for r in bpe_corpus["rows"][:12]]
    utterances = [formatter.example(str(i), words, codes, rate) for i, (words, codes, rate) in enumerate(table)]
    seconds = sum(len(codes) / rate for _, codes, rate in table)
    scores = audio_loss(model, utterances, block_size=64)
    nats = utterance_nats(model, utterances, block_size=64)
    assert scores["seconds"] == pytest.approx(seconds)
    assert scores["bits_per_second"] == pytest.approx(nats["nats"] / math.log(2) / seconds)
    assert scores["tokens_per_second"] == pytest.approx(nats["tokens"] / seconds)
    gain = text_conditioning(model, formatter, table, block_size=64)
    own, other = conditioning_pairs(formatter, table)
    own_seconds = sum(u.seconds for u in own)
    expected = (utterance_nats(model, other, block_size=64)["nats"]
                - utterance_nats(model, own, block_size=64)["nats"]) / math.log(2) / own_seconds
    assert gain["pairs"] == len(own) > 0
    assert gain["all_scored_gain_bits_per_second"] == pytest.approx(expected, rel=1e-4, abs=1e-6)
    parts = gain["text_gain_bits_per_second"] + gain["duration_gain_bits_per_second"] + \
        gain["marker_gain_bits_per_second"]
    assert parts == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_finetune_tts_reports_bits_per_second_and_a_sentencepiece_text_side_without_bpe(bpe_corpus, tmp_path,
                                                                                        monkeypatch):
    from transformers import AutoTokenizer

    out = tmp_path / "tts"
    code = run_script("finetune_tts.py", "--data", str(bpe_corpus["data"]), "--codec", str(bpe_corpus["codec_dir"]),
                      "--out", str(out), "--text-model", "sp-unigram", "--model-config",
                      str(bpe_corpus["root"] / "llama.json"), "--block-size", "128", *TRAIN, monkeypatch=monkeypatch)
    assert code == 0
    raw, bpe = json.loads((out / "metrics.json").read_text()), bpe_corpus["metrics"]
    assert raw["audio_vocab_size"] == raw["codebook_size"] and raw["text_model"] == "sp-unigram"
    assert raw["validation_seconds"] == bpe["validation_seconds"] > 0  # the same held-out audio in both
    for metrics in (raw, bpe):
        assert math.isfinite(metrics["validation_bits_per_second"])
        assert math.isfinite(metrics["text_conditioning"]["text_gain_bits_per_second"])
    assert raw["validation_tokens_per_second"] > bpe["validation_tokens_per_second"]
    assert not (out / "model" / "audio_bpe").exists()
    tokenizer = AutoTokenizer.from_pretrained(out / "model")
    assert tokenizer.convert_ids_to_tokens(tokenizer(" cat", add_special_tokens=False).input_ids)[0][0] == "\u2581"


# --- errors -----------------------------------------------------------------------------------------------------

def test_an_audio_bpe_for_another_codebook_size_is_refused(bpe_corpus, tmp_path, monkeypatch, capsys):
    small = train_audio_bpe([np.asarray(r["audio_codes"][0]) % 64 for r in bpe_corpus["rows"]], 64, 100)
    small.save(tmp_path / "bpe64")
    code = run_script("finetune_tts.py", "--data", str(bpe_corpus["data"]), "--codec", str(bpe_corpus["codec_dir"]),
                      "--out", str(tmp_path / "t"), "--audio-bpe", str(tmp_path / "bpe64"), "--model-config",
                      str(bpe_corpus["root"] / "llama.json"), "--block-size", "128", *TRAIN, monkeypatch=monkeypatch)
    assert code == 2 and "64-entry codebook but the codec has 512 codes" in capsys.readouterr().err
    model_dir = shutil.copytree(bpe_corpus["model"], tmp_path / "model")
    shutil.rmtree(model_dir / "audio_bpe")
    small.save(model_dir / "audio_bpe")
    from lm.tts_generation import load_tts

    with pytest.raises(WavTokenizerError, match="64-entry codebook but the codec has 512 codes"):
        load_tts(model_dir, bpe_corpus["codec"])


def test_an_lm_folder_whose_vocabulary_does_not_match_its_audio_bpe_is_refused(bpe_corpus, tmp_path, monkeypatch,
                                                                                capsys):
    from lm.tts_generation import load_tts

    codec, rows = bpe_corpus["codec"], bpe_corpus["rows"]
    model_dir = shutil.copytree(bpe_corpus["model"], tmp_path / "model")
    shutil.rmtree(model_dir / "audio_bpe")
    with pytest.raises(WavTokenizerError, match=f"has {PIECES} audio-BPE tokens but no audio BPE was given"):
        load_tts(model_dir, codec)
    other = train_audio_bpe([np.asarray(r["audio_codes"][0])[::-1] for r in rows], codec.codebook_size,
                            codec.codebook_size + PIECES)  # same sizes, other pieces
    assert other.pieces != bpe_corpus["bpe"].pieces
    other.save(model_dir / "audio_bpe")
    with pytest.raises(WavTokenizerError, match="does not match the audio BPE.*another audio BPE"):
        load_tts(model_dir, codec)
    code = run_script("tts_generate.py", "--lm", str(model_dir), "--codec", str(bpe_corpus["codec_dir"]), "--text",
                      "the cat", "--out", str(tmp_path / "x.wav"), monkeypatch=monkeypatch)
    err = capsys.readouterr().err
    assert code == 2 and "does not match the audio BPE" in err and err.strip().count("\n") == 0
