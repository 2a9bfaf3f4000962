"""`medcal quantize`: quantize a GGUF (llama-quantize), guided by an importance matrix."""

from __future__ import annotations

import argparse
from pathlib import Path

from medcal_gui.cli import flags
from medcal_gui.cli.output import print_json, print_warnings
from medcal_gui.cli.progress import TerminalProgress, sigint_cancels
from medcal_gui.core.jobs import CancelToken
from medcal_gui.core.units import format_bytes

NAME = "quantize"
HELP = "quantize a GGUF model (llama-quantize), optionally guided by an importance matrix"
DESCRIPTION = (
    "Quantize MODEL to TYPE (e.g. Q4_K_M, IQ3_XXS, Q8_0) through llama.cpp. Very low-bit types (IQ1/IQ2 "
    "family, IQ3_XXS) need --imatrix. Writes OUT, OUT.sha256 and OUT.manifest.json; never overwrites MODEL."
)


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", type=Path, required=True, metavar="MODEL",
                   help="GGUF model (F16/BF16/F32)")
    p.add_argument("--type", dest="qtype", default=None, metavar="TYPE", help="quantization type (required)")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help="quantized GGUF to write")
    p.add_argument("--imatrix", type=Path, default=None, metavar="FILE",
                   help="importance matrix (.gguf/.dat)")
    flags.add_threads(p, old_type_dest="qtype")  # `-t TYPE`, the old spelling, still works for a release
    p.add_argument("--dry-run", action="store_true", help="only report the output size; write nothing")
    p.add_argument("--output-tensor-type", default=None, metavar="T", help="ggml type for output.weight")
    p.add_argument("--token-embedding-type", default=None, metavar="T",
                   help="ggml type for token_embd.weight")
    p.add_argument("--pure", action="store_true", help="every tensor to TYPE (no k-quant mixture)")
    p.add_argument("--allow-requantize", action="store_true", help="allow an already quantized input")
    flags.add_tensor_types(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    from medcal_gui.core.errors import InputError
    from medcal_gui.quantize.quantize_process import discard_child, start_child

    if not args.qtype:
        raise InputError("Say which quantization type to write: --type TYPE (e.g. --type Q4_K_M).")
    from medcal_gui.core.errors import ModelError
    from medcal_gui.core.fsutil import check_input_file

    check_input_file(args.model, "model file", error=ModelError)  # a folder is not "missing"; a FIFO hung
    if args.imatrix is not None:
        check_input_file(args.imatrix, "importance matrix")
    rules, prune = flags.tensor_types(args)
    if rules:  # the flags' and the files' rules together: duplicates across them, their matching time
        from medcal_gui.quantize.tensor_types import check_rules

        check_rules(rules)
    if not args.dry_run:  # the tensor type files are inputs too: never written over
        from medcal_gui.core.fsutil import check_output_path

        files = [Path(v) for kind, v in args.tensor_type_specs or [] if kind == "file"]
        check_output_path(args.output, files, sidecars=(".sha256", ".manifest.json"), what="quantized model")

    # llama.cpp loads in the quantize child while this process imports the rest and reads its inputs;
    # quantize_model ends the child whatever happens.
    child = None if args.dry_run else start_child()
    try:
        from medcal_gui.quantize.quantize import quantize_model

        bar = TerminalProgress(quiet=args.json)
        with sigint_cancels(CancelToken()) as token:
            res = quantize_model(
                args.model, args.output, args.qtype, imatrix=args.imatrix, threads=args.threads,
                dry_run=args.dry_run, output_tensor_type=args.output_tensor_type,
                token_embedding_type=args.token_embedding_type, pure=args.pure,
                allow_requantize=args.allow_requantize, tensor_types=rules, prune_layers=prune, progress=bar,
                cancel=token, child=child,
            )
    except BaseException:
        if child is not None:
            discard_child(child)  # gone already once quantize_model had it; this covers the lines before
        raise
    bar.close()
    if args.json:
        print_json(res.to_json())
        return 0
    print_warnings(res.warnings)
    for m in res.tensor_types:
        print(f"{m['pattern']}={m['type']}: {m['tensors']} tensors ({format_bytes(m['input_bytes'])} at the input)")
    if res.prune_layers:
        print(f"pruned layers: {', '.join(map(str, res.prune_layers))}")
    size_in, size_out = format_bytes(res.input_bytes), format_bytes(res.output_bytes)
    if res.dry_run:
        print(f"{res.model} as {res.qtype}: about {size_out} (from {size_in}); nothing written")
        return 0
    print(f"wrote {res.out} ({res.qtype}, {size_out} from {size_in}, {res.tensors} tensors, "
          f"{res.seconds:.1f} s)")
    print(f"wrote {res.sha256_file}")
    print(f"wrote {res.manifest}")
    return 0
