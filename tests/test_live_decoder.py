"""The live decoder (`Codec.stream_decoder`) and the long decode's window envelope in O(n_fft) memory."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from wavtokenizer_hf.errors import WavTokenizerError


@pytest.fixture(scope="module")
def codec():
    from wavtokenizer_hf.codec import Codec
    from wavtokenizer_hf.default_codec import default_codec_dir

    return Codec.from_pretrained(default_codec_dir())


@pytest.fixture(scope="module")
def speech_codes(codec):
    """20 s of speech codes (CMU ARCTIC a0007 looped) from the shipped codec: 1,500 frames at 75 Hz."""
    import soundfile as sf

    from conftest import ROOT
    from wavtokenizer_hf.audio_io import resample

    wave, rate = sf.read(ROOT / "assets" / "audio" / "arctic_a0007.wav", dtype="float32")
    audio = resample(torch.from_numpy(wave)[None], rate, 24000)[0].repeat(6)[: 20 * 24000]
    return codec.encode(audio, 24000).audio_codes[0]


def _stream(live, codes: torch.Tensor, sizes) -> torch.Tensor:
    parts, at = [], 0
    for size in sizes:
        if at >= len(codes):
            break
        parts.append(live.push(codes[at: at + size]))
        at += size
    assert at >= len(codes)
    return torch.cat(parts + [live.flush()])


def _snr_db(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    return float(10 * torch.log10(reference.pow(2).sum() / (estimate - reference).pow(2).sum()))


# --- the window envelope --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n_fft,hop", [(1280, 320), (1000, 300), (900, 320), (7, 3)])
def test_the_window_envelope_without_its_matrix_has_the_fold_s_values_on_every_length(codec, n_fft, hop):
    from wavtokenizer_hf.inference.decoder import window_envelope
    from wavtokenizer_hf.long_audio import WindowEnvelope

    model = codec.model if (n_fft, hop) == (1280, 320) else SimpleNamespace(head=SimpleNamespace(
        window=torch.hann_window(n_fft), hop_length=hop, n_fft=n_fft, padding=(n_fft - hop) // 2))
    assert (model.head.n_fft, model.head.hop_length) == (n_fft, hop)
    for frames in [*range(1, 30), 97, 1000, 4321]:
        old = window_envelope(model, frames, torch.device("cpu"))
        envelope = WindowEnvelope(model, frames)
        new = envelope.full()
        assert new.shape == old.shape and float(((new - old).abs() / old).max()) <= 1e-6, frames
        audio = torch.randn(old.numel(), generator=torch.Generator().manual_seed(frames))
        divided = envelope.divide_(audio.clone())
        assert float(((divided - audio / old).abs() / (audio / old).abs().clamp(min=1e-3)).max()) <= 1e-6, frames


def test_an_hour_s_envelope_folds_a_few_frames_not_an_hour_of_them(codec, monkeypatch):
    """The old envelope folded a frames x n_fft matrix: 1.4 GB for an hour at 75 Hz. Measured peak memory (RSS
    growth): 1,648 MB before, 1 MB dividing in place (`divide_`), 330 MB building the whole envelope (`full`)."""
    import torch.nn.functional as F

    from wavtokenizer_hf.long_audio import WindowEnvelope

    folded = []
    real_fold = F.fold
    monkeypatch.setattr(F, "fold", lambda x, *a, **k: folded.append(x.numel()) or real_fold(x, *a, **k))
    frames = 75 * 3600
    audio = torch.ones(frames * 320)
    WindowEnvelope(codec.model, frames).divide_(audio)
    assert folded and max(folded) <= 16 * 1280  # a few frames' worth, whatever the length
    assert float(audio.min()) > 0 and torch.equal(audio[320 * 400: 320 * 401], audio[320 * 9000: 320 * 9001])


def test_the_long_decode_still_matches_the_stock_decode_at_its_ends_and_inside(codec, speech_codes):
    from wavtokenizer_hf.long_audio import decode_long

    codes = speech_codes[:300]
    stock = codec.model.decode(codes[None, None]).audio_values[0, 0].detach()
    audio = decode_long(codec.fast, codes, chunk_frames=41)
    assert audio.shape == stock.shape and float((audio - stock).abs().max()) < 2e-6


# --- the live decoder -----------------------------------------------------------------------------------------------

def test_the_streamed_audio_is_as_long_as_the_offline_decode_for_every_push_size(codec, speech_codes):
    for frames in (2, 3, 11, 226):
        codes = speech_codes[:frames]
        offline = codec.decode(codes)[0]
        for sizes in ([1] * frames, [7] * frames, [frames]):
            audio = _stream(codec.stream_decoder(lookahead_frames=3, context_frames=10, step_frames=5), codes, sizes)
            assert audio.dtype == torch.float32 and audio.shape == offline.shape, (frames, sizes[0])


def test_any_chunking_of_the_pushes_gives_the_same_audio(codec, speech_codes):
    codes = speech_codes[:91]
    rng = np.random.default_rng(0)
    chunkings = {"1 frame": [1] * 91, "7 frames": [7] * 13, "random": list(rng.integers(0, 30, size=100)),
                 "all at once": [91]}
    for step in (1, 4):
        streamed = {name: _stream(codec.stream_decoder(lookahead_frames=2, context_frames=15, step_frames=step),
                                  codes, sizes) for name, sizes in chunkings.items()}
        for name, audio in streamed.items():
            assert torch.equal(audio, streamed["1 frame"]), (step, name)
    numpy_pushed = _stream(codec.stream_decoder(2, 15, 4), codes.numpy().astype(np.int32), [7] * 13)
    assert torch.equal(numpy_pushed, streamed["1 frame"])


def test_a_window_covering_the_whole_sequence_gives_the_offline_decode(codec, speech_codes):
    codes = speech_codes[:60]
    offline = codec.decode(codes)[0]
    for step, sizes in ((1, [1] * 60), (7, [7] * 9), (5, [60])):
        audio = _stream(codec.stream_decoder(lookahead_frames=60, context_frames=60, step_frames=step), codes, sizes)
        assert float((audio - offline).abs().max()) < 1e-5, step


def test_each_piece_is_decoded_from_context_frames_before_it_and_lookahead_frames_after_it(codec, monkeypatch):
    """The windows, and the push that returns each piece: the one bringing the look-ahead's last code."""
    windows = []

    def recording(batch):
        windows.append((int(batch[0, 0]), int(batch[0, -1]) + 1))  # codes are their own frame indices here
        return torch.zeros(1, batch.shape[-1] * 320)

    monkeypatch.setattr(codec.fast, "decode", recording)
    total, step, lookahead, context = 40, 3, 4, 9
    live = codec.stream_decoder(lookahead_frames=lookahead, context_frames=context, step_frames=step)
    assert live.latency_frames == step - 1 + lookahead
    out_at = {}
    for frame in range(total):
        audio = live.push(torch.tensor([frame]))
        if audio.numel():
            out_at[frame] = audio.numel()
    tail = live.flush()
    pieces = -(-total // step)
    assert windows == [(max(0, b * step - context), min(total, (b + 1) * step + lookahead)) for b in range(pieces)]
    assert out_at == {(b + 1) * step + lookahead - 1: step * 320 for b in range(pieces)
                      if (b + 1) * step + lookahead <= total}
    assert tail.numel() + sum(out_at.values()) == total * 320


def test_the_decoder_holds_one_window_of_codes_whatever_the_stream_length(codec, monkeypatch):
    monkeypatch.setattr(codec.fast, "decode", lambda batch: torch.zeros(1, batch.shape[-1] * 320))
    live = codec.stream_decoder(lookahead_frames=6, context_frames=20, step_frames=4)
    held = []
    for _ in range(3000):
        live.push(torch.tensor([5]))
        held.append(live.codes.numel())
    assert max(held) <= 20 + 4 + 6 and len(live.flush()) > 0


def test_the_distance_to_the_exact_decode_shrinks_as_look_ahead_and_context_grow(codec, speech_codes):
    exact = codec.fast.decode(speech_codes[None])[0]
    snrs = []
    for lookahead, context in ((1, 5), (5, 25), (25, 150)):
        audio = _stream(codec.stream_decoder(lookahead, context, step_frames=10), speech_codes, [50] * 30)
        snrs.append(_snr_db(exact, audio))
    assert snrs[0] < snrs[1] < snrs[2], snrs
    assert snrs[0] > 3  # measured 5.9, 11.4, 17.4 dB: an estimate of the same audio, not noise


def test_bad_codes_and_settings_are_refused_with_a_clear_message(codec):
    live = codec.stream_decoder()
    with pytest.raises(WavTokenizerError, match=r"1-D integer codes .* shape \(1, 5\)"):
        live.push(torch.zeros(1, 5, dtype=torch.long))
    with pytest.raises(WavTokenizerError, match="1-D integer codes"):
        live.push(torch.zeros(5))
    size = codec.codebook_size
    with pytest.raises(WavTokenizerError, match=rf"ids range over \[3, {size}\], outside \[0, {size}\)"):
        live.push(torch.tensor([3, size]))
    with pytest.raises(WavTokenizerError, match=r"ids range over \[-1, 3\]"):
        live.push(np.array([-1, 3]))
    for settings, name in (({"lookahead_frames": -1}, "lookahead_frames"), ({"context_frames": -2}, "context_frames"),
                           ({"step_frames": 0}, "step_frames"), ({"lookahead_frames": 2.5}, "lookahead_frames")):
        with pytest.raises(WavTokenizerError, match=f"{name} must be an integer >= "):
            codec.stream_decoder(**settings)
    assert live.push(torch.zeros(0, dtype=torch.long)).numel() == 0  # an empty push is fine
    live.push(torch.tensor([3]))
    with pytest.raises(WavTokenizerError, match="ended after 1 frame.*at least 2"):
        live.flush()
    with pytest.raises(WavTokenizerError, match="flushed"):
        live.push(torch.tensor([3]))
