"""The `wavtokenizer` command: a thin layer over the package's modules."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from .errors import WavTokenizerError

DEFAULT_MODEL = os.environ.get("WAVTOKENIZER_MODEL", "wavtokenizer")


def _add_io(parser: argparse.ArgumentParser, what_in: str, what_out: str) -> None:
    parser.add_argument("input", type=Path, help=f"{what_in} file, or a directory (searched recursively)")
    parser.add_argument("output", type=Path, help=f"{what_out} file, or a directory for directory input")
    parser.add_argument("--model", type=Path, default=Path(DEFAULT_MODEL),
                        help="Hugging Face WavTokenizer directory (default: $WAVTOKENIZER_MODEL or ./wavtokenizer)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def _add_precision(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                        help="decoder arithmetic: fp32 (exact, default) or bf16 (faster where the CPU supports bf16, "
                             "slightly different audio; see BENCHMARKS.md)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wavtokenizer", description="WavTokenizer codec tools (Hugging Face format).")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("convert", help="authors' .ckpt + .yaml -> Hugging Face directory")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("config", type=Path, help="the authors' YAML config of that checkpoint")
    p.add_argument("output", type=Path, help="output directory")
    p.add_argument("--overwrite", action="store_true")

    p = sub.add_parser("export-original", help="Hugging Face directory -> authors' .ckpt (and .yaml beside it)")
    p.add_argument("model_dir", type=Path)
    p.add_argument("output", type=Path, help="output .ckpt path; the YAML is written with the same stem")
    p.add_argument("--overwrite", action="store_true")

    p = sub.add_parser("encode", help="audio -> codes file(s); `-` reads raw PCM from standard input (a pipe)")
    _add_io(p, "audio", "codes")
    p.add_argument("--keep-channels", action="store_true", help="encode each channel instead of mixing down")
    p.add_argument("--raw-rate", type=int, default=None,
                   help="input `-`: sampling rate of the raw PCM on standard input (required there)")
    p.add_argument("--raw-channels", type=int, default=1, help="input `-`: interleaved channels (default 1)")
    p.add_argument("--raw-format", default="s16le", choices=["s16le", "s32le", "f32le"],
                   help="input `-`: sample format (default s16le, as `ffmpeg -f s16le` writes)")

    p = sub.add_parser("decode", help="codes file(s) -> audio")
    _add_io(p, "codes", "audio")
    p.add_argument("--format", default="wav", choices=["wav", "flac", "ogg"], help="audio format for directory output")
    p.add_argument("--source-rate", action="store_true", help="resample back to the encoded file's original rate")
    p.add_argument("--allow-other-model", action="store_true",
                   help="decode codes made by a different model with the same codebook size and framing")
    p.add_argument("--stream", action="store_true",
                   help="decode window by window with the live decoder and write as it comes: memory flat in the "
                        "length, audio close to (not equal to) the exact decode; see BENCHMARKS.md")
    p.add_argument("--lookahead", type=int, default=None, metavar="FRAMES",
                   help="--stream: frames after each 250-frame piece (default 75)")
    p.add_argument("--context", type=int, default=None, metavar="FRAMES",
                   help="--stream: frames before each piece (default 150)")
    _add_precision(p)

    p = sub.add_parser("reconstruct", help="audio -> codes -> audio (copy synthesis)")
    _add_io(p, "audio", "audio")
    p.add_argument("--keep-channels", action="store_true")
    p.add_argument("--format", default="wav", choices=["wav", "flac", "ogg"], help="audio format for directory output")
    _add_precision(p)

    p = sub.add_parser("init", help="place the default codec where stock transformers finds it (./wavtokenizer)")
    p.add_argument("directory", type=Path, nargs="?", default=Path("wavtokenizer"),
                   help="where to write it (default: ./wavtokenizer, the CLI's default --model)")
    p.add_argument("--overwrite", action="store_true")

    p = sub.add_parser("half-weights", help="copy a codec folder with float16 weights (half the size; stock "
                                            "transformers still runs it in float32)")
    p.add_argument("model_dir", type=Path)
    p.add_argument("output", type=Path, help="output directory")
    p.add_argument("--overwrite", action="store_true")

    p = sub.add_parser("info", help="describe a model directory or a codes file")
    p.add_argument("path", type=Path)
    return parser


def _convert(args) -> None:
    from .convert import convert_original_checkpoint

    report = convert_original_checkpoint(args.checkpoint, args.config, args.output, overwrite=args.overwrite)
    print(report.summary())
    print(f"wrote {args.output} (load with transformers.AutoModel.from_pretrained)")


def _export(args) -> None:
    from .convert import export_original_checkpoint

    out = export_original_checkpoint(args.model_dir, args.output, overwrite=args.overwrite)
    print(f"wrote {out} and {out.with_suffix('.yaml')}")


def _encode_pipe(args) -> None:
    """`wavtokenizer encode - out.codes --raw-rate R`: raw PCM from a pipe, encoded as it arrives."""
    from .codec import Codec
    from .file_encode import encode_blocks, raw_blocks

    if args.raw_rate is None or args.raw_rate <= 0:
        raise WavTokenizerError("input `-` reads raw PCM from standard input: give its rate with --raw-rate "
                                "(and --raw-channels, --raw-format)")
    if args.output.exists() and not args.overwrite:
        raise WavTokenizerError(f"{args.output} already exists; pass --overwrite to replace it")
    start = time.perf_counter()
    codec = Codec.from_pretrained(args.model, device=args.device)
    blocks = raw_blocks(sys.stdin.buffer, args.raw_format, args.raw_channels, max(1, args.raw_rate // 10))
    codes = encode_blocks(codec, blocks, args.raw_rate, args.keep_channels, "standard input")
    codes.save(args.output, args.overwrite)
    seconds = codes.source_num_samples / args.raw_rate
    print(f"encode: {seconds:.1f} s of audio from standard input -> {args.output} "
          f"({codes.audio_codes.shape[-1]} frames) in {time.perf_counter() - start:.1f} s")


def _codec_jobs(args) -> None:
    if args.command == "encode" and str(args.input) == "-":
        return _encode_pipe(args)
    if args.command == "decode" and not args.stream and (args.lookahead is not None or args.context is not None):
        raise WavTokenizerError("--lookahead and --context belong to --stream")
    if args.command == "decode" and args.stream and args.precision != "fp32":
        raise WavTokenizerError("--stream decodes in fp32 (the live decoder has no --precision)")
    from .audio_io import is_audio_path, read_audio, write_audio
    from .codec import Codec
    from .codes_file import CODES_SUFFIX, AudioCodes
    from .file_decode import decode_streaming
    from .file_encode import encode_file
    from .file_jobs import run_job

    if not args.input.exists():
        raise WavTokenizerError(f"input not found: {args.input}")
    codec = Codec.from_pretrained(args.model, device=args.device)
    audio_suffix = "." + getattr(args, "format", "wav")

    def encode(src: Path, dst: Path) -> None:  # long files block by block, in bounded memory (file_encode.py)
        encode_file(codec, src, keep_channels=args.keep_channels).save(dst, args.overwrite)

    def decode(src: Path, dst: Path) -> None:
        codes = AudioCodes.load(src)
        if args.stream:
            window = {k: v for k, v in (("lookahead_frames", args.lookahead), ("context_frames", args.context))
                      if v is not None}
            decode_streaming(codec, codes, dst, args.source_rate, args.overwrite, args.allow_other_model, **window)
            return
        if args.source_rate:
            audio = codec.decode_to_source_rate(codes, args.allow_other_model, args.precision)
            rate = codes.source_sampling_rate
        else:
            audio, rate = codec.decode(codes, args.allow_other_model, args.precision), codec.sampling_rate
        write_audio(dst, audio, rate, overwrite=args.overwrite)

    def reconstruct(src: Path, dst: Path) -> None:
        waveform, rate = read_audio(src)
        codes = codec.encode(waveform, rate, keep_channels=args.keep_channels, what=str(src))
        write_audio(dst, codec.decode_to_source_rate(codes, precision=args.precision), rate, overwrite=args.overwrite)

    is_codes = lambda p: p.name.endswith(CODES_SUFFIX)  # noqa: E731
    jobs = {
        "encode": (encode, is_audio_path, "", CODES_SUFFIX),
        "decode": (decode, is_codes, CODES_SUFFIX, audio_suffix),
        "reconstruct": (reconstruct, is_audio_path, "", audio_suffix),
    }
    job, accepts, in_suffix, out_suffix = jobs[args.command]
    if args.input.is_file() and args.output.exists() and not args.output.is_dir() and not args.overwrite:
        raise WavTokenizerError(f"{args.output} already exists; pass --overwrite to replace it")
    start = time.perf_counter()
    summary = run_job(job, args.input, args.output, accepts, in_suffix, out_suffix, args.overwrite, args.command)
    print(summary.report())
    print(f"{args.command}: {time.perf_counter() - start:.1f} s with model {codec.name} ({codec.frame_rate:g} tokens/s)")
    if summary.failed:
        raise SystemExit(1)


def _half_weights(args) -> None:
    from .half_weights import WEIGHTS, stored_dtypes, write_half_weights

    out = write_half_weights(args.model_dir, args.output, overwrite=args.overwrite)
    before, after = ((folder / WEIGHTS).stat().st_size / 1e6 for folder in (args.model_dir, out))
    counts = ", ".join(f"{n} {dtype}" for dtype, n in sorted(stored_dtypes(out).items()))
    print(f"wrote {out}: {WEIGHTS} {before:.1f} MB -> {after:.1f} MB ({counts} tensors)")


def _init(args) -> None:
    from .default_codec import install_default_codec

    out = install_default_codec(args.directory, overwrite=args.overwrite)
    print(f"wrote the default codec to {out} (model card: {out / 'README.md'})")
    print(f'load it with: transformers.AutoModel.from_pretrained("{out}")')


def _info(args) -> None:
    from .codes_file import CODES_SUFFIX, AudioCodes
    from .convert import load_hf_state
    from .model_card import describe_config

    if args.path.is_dir():
        config, state = load_hf_state(args.path)
        facts = describe_config(config)
        facts["parameters"] = f"{sum(t.numel() for t in state.values()):,} numbers"
    elif args.path.name.endswith(CODES_SUFFIX):
        codes = AudioCodes.load(args.path)
        facts = {k: str(v) for k, v in codes.metadata().items()}
        facts["shape"] = str(tuple(codes.audio_codes.shape))
    else:
        raise WavTokenizerError(f"{args.path}: expected a model directory or a *{CODES_SUFFIX} file")
    for key, value in facts.items():
        print(f"{key}: {value}")


COMMANDS = {"convert": _convert, "export-original": _export, "encode": _codec_jobs, "decode": _codec_jobs,
            "reconstruct": _codec_jobs, "half-weights": _half_weights, "init": _init, "info": _info}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own progress bars report the work that matters
    try:
        COMMANDS[args.command](args)
    except WavTokenizerError as err:
        if args.debug:
            raise
        print(f"wavtokenizer {args.command}: error: {err}", file=sys.stderr)
        return 2
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
