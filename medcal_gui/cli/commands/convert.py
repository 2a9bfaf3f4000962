"""`medcal convert`: a Hugging Face Gemma 3 / MedGemma download to a GGUF llama.cpp loads."""

from __future__ import annotations

import argparse
from pathlib import Path

from medcal_gui.cli.output import print_json, print_warnings
from medcal_gui.cli.progress import TerminalProgress, sigint_cancels
from medcal_gui.core.jobs import CancelToken
from medcal_gui.core.units import format_bytes

NAME = "convert"
HELP = "convert a Hugging Face Gemma 3 / MedGemma folder (safetensors) to GGUF"
DESCRIPTION = (
    "Convert HF_DIR (config.json, *.safetensors, tokenizer.model, tokenizer_config.json ...) to a GGUF that "
    "llama.cpp loads as gemma3, chat template included: Gemma3ForCausalLM (MedGemma 27B text, Gemma 3 1B/270M) "
    "or the language model of Gemma3ForConditionalGeneration (MedGemma 4B), and with --mmproj its vision tower. "
    "Writes OUT, OUT.sha256 and OUT.manifest.json; needs no PyTorch."
)


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("hf_dir", type=Path, metavar="HF_DIR", help="the Hugging Face model folder")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help="GGUF file to write")
    p.add_argument("--outtype", choices=("f16", "bf16", "f32"), default="f16",
                   help="type of the weight matrices (norms stay F32); default f16")
    p.add_argument("--mmproj", type=Path, default=None, metavar="FILE",
                   help="also write the vision tower as llama.cpp's mmproj GGUF")
    p.add_argument("--no-hash-input", action="store_true",
                   help="skip hashing the input files for the manifest (faster on large models)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    from medcal_gui.convert.hf_to_gguf import convert_hf

    bar = TerminalProgress(quiet=args.json)
    with sigint_cancels(CancelToken()) as token:
        res = convert_hf(args.hf_dir, args.output, outtype=args.outtype, mmproj=args.mmproj, progress=bar,
                         cancel=token, hash_inputs=not args.no_hash_input)
    bar.close()
    if args.json:
        print_json(res.to_json())
        return 0
    print_warnings(res.warnings)
    print(f"wrote {res.out} ({res.architecture} language model, {res.outtype}, {format_bytes(res.output_bytes)}, "
          f"{res.tensors} tensors, {res.n_vocab} tokens, {res.seconds:.1f} s)")
    if res.mmproj is not None:
        print(f"wrote {res.mmproj} (vision tower, {format_bytes(res.mmproj_bytes)}, {res.mmproj_tensors} tensors)")
    print(f"wrote {res.sha256_file}")
    print(f"wrote {res.manifest}")
    return 0
