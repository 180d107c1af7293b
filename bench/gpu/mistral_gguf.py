"""Step 2: a GGUF of Mistral-7B's shape with random weights, quantized Q5_K_M.

    python bench/gpu/mistral_gguf.py --shape mistral-7b --out model.json   # on the GPU machine
    python bench/gpu/mistral_gguf.py --shape small --check --out model.json  # the dry run

Speed does not depend on the weights' values, so a model of the real shape
with random weights decodes as fast as the real one. Its tokenizer is real:
the Llama/Mistral SentencePiece vocabulary the sdist ships for its tests,
and its chat template is Mistral-7B-Instruct's.

Writing 7B weights as F16 (14.5 GB) and quantizing them takes minutes the
GPU machine does not have, so the model is made in two moves:

1. A *proxy*: the same layers, heads and vocabulary, 256 wide (FFN 512),
   F16 random normal(0, 0.02), written with the sdist's own gguf-py and
   quantized to Q5_K_M by llama.cpp itself (``llama_model_quantize``). It
   says which type each tensor gets, and gives real Q5_K and Q6_K blocks.
2. The model: each tensor at the full shape, of the type the quantizer gave
   the proxy's tensor of the same name, filled by repeating the proxy's
   blocks of that type.

llama.cpp picks a tensor's type from its name, its layer among ``n_layer``,
whether its rows are a multiple of 256 long, and the model's size class (read
from ``n_layer``), all of which the proxy shares. ``--check`` (the dry run)
proves it at a small shape: llama.cpp quantizing the F16 model itself gives
the same tensors, shapes, types and bytes. It also plans the full shape from
its proxy, so the dry run knows the 7B file's size before a GPU is lent.

The EOS token's row of ``output.weight`` is zero, so that a random model
never ends an answer early: every run decodes its ``max_tokens``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import carry
from carry import Work

STD = 0.02  # the usual initialisation of a Llama's weights


@dataclass(frozen=True)
class Shape:
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    n_ctx_train: int = 32768
    rope_theta: float = 1e6  # Mistral-7B-Instruct-v0.2's

    def proxy(self) -> Shape:
        """The same model, 256 wide: the narrowest whose rows are still a
        multiple of 256 (k-quants' block), so the quantizer picks alike."""
        return dataclasses.replace(self, n_embd=256, n_ff=512)

    def tensors(self, n_vocab: int) -> list[tuple[str, tuple[int, ...]]]:
        """Name and numpy shape (rows, row length) of each tensor, in the
        order convert_hf_to_gguf.py writes a Llama."""
        kv = self.n_embd // self.n_head * self.n_head_kv
        e, f = self.n_embd, self.n_ff
        out = [("token_embd.weight", (n_vocab, e))]
        for i in range(self.n_layer):
            out += [
                (f"blk.{i}.attn_norm.weight", (e,)),
                (f"blk.{i}.attn_q.weight", (e, e)),
                (f"blk.{i}.attn_k.weight", (kv, e)),
                (f"blk.{i}.attn_v.weight", (kv, e)),
                (f"blk.{i}.attn_output.weight", (e, e)),
                (f"blk.{i}.ffn_norm.weight", (e,)),
                (f"blk.{i}.ffn_gate.weight", (f, e)),
                (f"blk.{i}.ffn_up.weight", (f, e)),
                (f"blk.{i}.ffn_down.weight", (e, f)),
            ]
        return out + [("output_norm.weight", (e,)), ("output.weight", (n_vocab, e))]


SHAPES = {
    "mistral-7b": Shape(n_layer=32, n_embd=4096, n_ff=14336, n_head=32, n_head_kv=8),
    # The dry run's: Mistral's proportions (head size 64, 4 query heads per KV head), 40M weights.
    "small": Shape(n_layer=4, n_embd=512, n_ff=1536, n_head=8, n_head_kv=2),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", choices=SHAPES, default="mistral-7b")
    p.add_argument("--work", type=Path, default=carry.WORK)
    p.add_argument("--check", action="store_true", help="compare with llama.cpp's own quantization; plan the 7B file")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--out", type=Path, required=True, help="this step's JSON")
    args = p.parse_args(argv)
    work = Work(args.work)
    sys.path.insert(0, str(work.gguf_py()))  # the sdist's own gguf-py, not any other

    maker = Maker(work, args.threads)
    shape = SHAPES[args.shape]
    target = work.model(args.shape)
    result = {"shape": args.shape, **dataclasses.asdict(shape), "threads": args.threads}
    result |= maker.make(shape, target)
    result["file"] = str(target)
    result["bytes"] = target.stat().st_size
    if not result["reused"]:  # what a 5 GB file will take, from a small one
        result["tensor_data_bytes_per_s"] = round(result["bytes"] / max(result["seconds"]["tensor_data_s"], 1e-3))
    reader = maker.gguf.GGUFReader(target)
    result |= describe(reader)
    result["eos_logit_always_zero"] = maker.eos_row_is_zero(reader)
    if args.check:
        result["llama_cpp_quantized"] = maker.reference(shape, tensor_table(reader))
        result["planned"] = {"shape": "mistral-7b", **maker.plan_bytes(SHAPES["mistral-7b"])}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


class Maker:
    """Writes F16 models, quantizes them with llama.cpp, and tiles a proxy's
    blocks into a model of the full shape."""

    def __init__(self, work: Work, threads: int):
        import gguf

        self.gguf = gguf
        self.work = work
        self.threads = threads
        self.vocab = gguf.GGUFReader(work.vocab())
        self.n_vocab = len(self.vocab.fields["tokenizer.ggml.tokens"].data)
        self.eos = int(self.vocab.fields["tokenizer.ggml.eos_token_id"].contents())

    # -------------------------------------------------------- the model

    def make(self, shape: Shape, target: Path) -> dict:
        """Writes ``target`` (unless a finished one of this shape is there)."""
        stamp = target.with_suffix(".stamp.json")
        wanted = {"shape": dataclasses.asdict(shape), "sdist": (self.work.src / "sdist.sha256").read_text()}
        if target.is_file() and stamp.is_file() and json.loads(stamp.read_text()) == wanted:
            return {"reused": True}
        stamp.unlink(missing_ok=True)
        times = {}
        proxy = self.quantized(shape.proxy(), "proxy", times)
        started = time.perf_counter()
        times["tensor_data_s"] = self.tile(proxy, shape, target)
        times["write_s"] = round(time.perf_counter() - started, 2)
        proxy.unlink()
        stamp.write_text(json.dumps(wanted))
        return {"reused": False, "seconds": times}

    def quantized(self, shape: Shape, name: str, times: dict) -> Path:
        """Writes ``shape`` as random F16 and quantizes it to Q5_K_M with
        llama.cpp; returns the Q5_K_M file (times in ``times``)."""
        f16 = self.work.folder / f"{name}.F16.gguf"
        q = self.work.folder / f"{name}.Q5_K_M.gguf"
        started = time.perf_counter()
        self.write_f16(shape, f16)
        times[f"{name}_f16_s"] = round(time.perf_counter() - started, 2)
        started = time.perf_counter()
        quantize(f16, q, self.threads)
        times[f"{name}_quantize_s"] = round(time.perf_counter() - started, 2)
        f16.unlink()
        return q

    def write_f16(self, shape: Shape, path: Path) -> None:
        import numpy as np

        gguf = self.gguf
        writer = gguf.GGUFWriter(path, "llama")
        for key, (value, vtype, sub) in self.metadata(shape, gguf.LlamaFileType.MOSTLY_F16).items():
            writer.add_key_value(key, value, vtype, sub_type=sub)
        pool = (np.random.default_rng(17).standard_normal(1 << 22, dtype=np.float32) * STD).astype(np.float16)
        for name, dims in shape.tensors(self.n_vocab):
            if len(dims) == 1:  # the RMS norms' weights, F32 as convert_hf_to_gguf.py writes them
                writer.add_tensor(name, np.ones(dims, np.float32))
                continue
            tensor = _repeat(pool, _elements(dims)).reshape(dims)
            if name == "output.weight":
                tensor[self.eos] = 0
            writer.add_tensor(name, tensor)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()

    def metadata(self, shape: Shape, file_type: int) -> dict:
        """The keys a Mistral-7B-Instruct GGUF carries, at ``shape``: key →
        (value, type, array element type)."""
        from llama_cpp.llama_chat_format import MISTRAL_INSTRUCT_CHAT_TEMPLATE

        T = self.gguf.GGUFValueType
        keys = {
            "general.name": (f"Mistral-7B-shaped, random weights ({shape.n_layer} x {shape.n_embd})", T.STRING),
            "llama.context_length": (shape.n_ctx_train, T.UINT32),
            "llama.embedding_length": (shape.n_embd, T.UINT32),
            "llama.block_count": (shape.n_layer, T.UINT32),
            "llama.feed_forward_length": (shape.n_ff, T.UINT32),
            "llama.rope.dimension_count": (shape.n_embd // shape.n_head, T.UINT32),
            "llama.attention.head_count": (shape.n_head, T.UINT32),
            "llama.attention.head_count_kv": (shape.n_head_kv, T.UINT32),
            "llama.attention.layer_norm_rms_epsilon": (1e-5, T.FLOAT32),
            "llama.rope.freq_base": (shape.rope_theta, T.FLOAT32),
            "llama.vocab_size": (self.n_vocab, T.UINT32),
            "general.file_type": (int(file_type), T.UINT32),
        }
        out = {k: (v, t, None) for k, (v, t) in keys.items()}
        for key, field in self.vocab.fields.items():
            if key.startswith("tokenizer."):
                out[key] = _field(field)
        out["tokenizer.chat_template"] = (MISTRAL_INSTRUCT_CHAT_TEMPLATE, T.STRING, None)
        return out

    def tile(self, proxy: Path, shape: Shape, target: Path) -> float:
        """Writes ``shape`` with the proxy's metadata, tensor types and blocks;
        returns the seconds spent writing the tensors' data."""
        import numpy as np

        gguf = self.gguf
        reader = gguf.GGUFReader(proxy)
        plan = self.plan(reader, shape)
        pools = _block_pools(reader)
        out_type = plan["output.weight"][1]
        zero_row = _row_bytes(reader, "output.weight", self.eos)  # what llama.cpp wrote for a row of zeros
        zero_block = zero_row[: gguf.GGML_QUANT_SIZES[out_type][1]]

        writer = gguf.GGUFWriter(target, "llama")
        metadata = self.metadata(shape, 0)
        for key, field in reader.fields.items():
            if key.startswith("GGUF.") or key == "general.architecture":
                continue
            value, vtype, sub = _field(field)
            if key in metadata and key != "general.file_type":  # the shape's, not the proxy's
                value = metadata[key][0]
            writer.add_key_value(key, value, vtype, sub_type=sub)
        for name, (dims, qtype, nbytes) in plan.items():
            writer.add_tensor_info(name, _byte_shape(dims, qtype, gguf), np.dtype(np.uint8), nbytes, raw_dtype=qtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        started = time.perf_counter()
        for name, (dims, qtype, nbytes) in plan.items():
            block = gguf.GGML_QUANT_SIZES[qtype][1]
            data = _repeat(pools[qtype], nbytes // block)
            if name == "output.weight":
                row = data.reshape(dims[0], -1)
                row[self.eos] = _repeat(zero_block, row.shape[1])
            writer.write_tensor_data(data)
        writer.close()
        return round(time.perf_counter() - started, 2)

    def plan(self, proxy, shape: Shape) -> dict:
        """Name → (numpy shape, type, bytes) of each tensor of ``shape``, typed
        as the quantizer typed the proxy's, in the order it wrote them."""
        dims = dict(shape.tensors(self.n_vocab))
        if {t.name for t in proxy.tensors} != dims.keys():
            raise SystemExit("the proxy's tensors are not the model's: the quantizer added or dropped some")
        plan = {}
        for t in proxy.tensors:
            block, size = self.gguf.GGML_QUANT_SIZES[t.tensor_type]
            plan[t.name] = (dims[t.name], t.tensor_type, _elements(dims[t.name]) // block * size)
        return plan

    def eos_row_is_zero(self, reader) -> bool:
        """Whether EOS's row of output.weight dequantizes to zeros (gguf-py's
        own dequantizer), so that its logit is 0 whatever the input."""
        output = next(t for t in reader.tensors if t.name == "output.weight")
        row = _row_bytes(reader, "output.weight", self.eos)
        return not self.gguf.quants.dequantize(row, output.tensor_type).any()

    # -------------------------------------------------------- the dry run's checks

    def reference(self, shape: Shape, ours: list[list]) -> dict:
        """llama.cpp quantizing ``shape`` from F16 itself, against our tensor table."""
        times = {}
        theirs = self.quantized(shape, "reference", times)
        a, b = ours, tensor_table(self.gguf.GGUFReader(theirs))
        weights = sum(_elements(dims) for _, dims in shape.tensors(self.n_vocab))
        result = {
            "same_tensors": a == b,
            "differences": [[x, y] for x, y in zip(a, b) if x != y][:5]
            + ([] if len(a) == len(b) else [len(a), len(b)]),
            "bytes": theirs.stat().st_size,
            "seconds": times,
            "weights": weights,
            # What the F16 path would cost: a rate to extrapolate from.
            "quantize_weights_per_s": round(weights / times["reference_quantize_s"]),
            "f16_write_bytes_per_s": round(2 * weights / times["reference_f16_s"]),
        }
        theirs.unlink()
        return result

    def plan_bytes(self, shape: Shape) -> dict:
        """The tensors and bytes of ``shape``, planned from its proxy, unwritten."""
        times = {}
        proxy = self.quantized(shape.proxy(), "plan-proxy", times)
        plan = self.plan(self.gguf.GGUFReader(proxy), shape)
        proxy.unlink()
        return {
            "tensor_bytes": sum(nbytes for _, _, nbytes in plan.values()),
            "weights": sum(_elements(dims) for dims, _, _ in plan.values()),
            "types": dict(Counter(self.gguf.GGMLQuantizationType(t).name for _, t, _ in plan.values())),
            "proxy_seconds": times,
        }


def quantize(source: Path, target: Path, threads: int) -> None:
    """llama.cpp's quantizer (llama-quantize's own function) to Q5_K_M."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q5_K_M
    params.nthread = threads
    if llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), params) != 0:
        raise SystemExit(f"llama_model_quantize failed on {source}")


def tensor_table(reader) -> list[list]:
    """[name, GGUF shape (row length first), type, bytes] of each tensor."""
    return [[t.name, [int(d) for d in t.shape], t.tensor_type.name, int(t.n_bytes)] for t in reader.tensors]


def describe(reader) -> dict:
    """What a reader of the file finds: the model's keys, a few tensors, the types."""
    keys = [
        "general.architecture", "general.name", "general.file_type", "llama.block_count",
        "llama.embedding_length", "llama.feed_forward_length", "llama.attention.head_count",
        "llama.attention.head_count_kv", "llama.context_length", "llama.rope.freq_base",
        "llama.vocab_size", "tokenizer.ggml.model", "tokenizer.ggml.eos_token_id",
    ]  # fmt: skip
    table = tensor_table(reader)
    return {
        "metadata": {k: _plain(reader.fields[k].contents()) for k in keys if k in reader.fields},
        "chat_template": reader.fields["tokenizer.chat_template"].contents()[:60] + "…",
        "tokens": len(reader.fields["tokenizer.ggml.tokens"].data),
        "tensors": len(table),
        "types": dict(Counter(t[2] for t in table)),
        "some_tensors": {t[0]: {"shape": t[1], "type": t[2]} for t in table if t[0] in SOME_TENSORS},
        "weights": sum(_elements(t[1]) for t in table),
    }


SOME_TENSORS = {"token_embd.weight", "blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.attn_v.weight",
                "blk.0.ffn_down.weight", "blk.1.attn_v.weight", "output.weight"}  # fmt: skip


def _field(field) -> tuple:
    """A reader's field as (value, type, array element type) for a writer."""
    sub = field.types[1] if len(field.types) > 1 else None
    return field.contents(), field.types[0], sub


def _block_pools(reader) -> dict:
    """Type → all the proxy's blocks of that type, as rows of bytes."""
    import numpy as np
    from gguf import GGML_QUANT_SIZES

    chunks: dict = {}
    for t in reader.tensors:
        chunks.setdefault(t.tensor_type, []).append(np.ascontiguousarray(t.data).reshape(-1).view(np.uint8))
    return {k: np.concatenate(v).reshape(-1, GGML_QUANT_SIZES[k][1]) for k, v in chunks.items()}


def _row_bytes(reader, name: str, row: int):
    import numpy as np

    tensor = next(t for t in reader.tensors if t.name == name)
    data = np.ascontiguousarray(tensor.data).reshape(-1).view(np.uint8)
    per_row = data.size // int(tensor.shape[1])
    return data[row * per_row : (row + 1) * per_row]


def _repeat(pool, n: int):
    """The first ``n`` rows of ``pool`` repeated end to end, as a new array
    (np.resize copies the whole pool even for a few rows: 8 s for a proxy)."""
    import numpy as np

    if n <= len(pool):
        return pool[:n].copy()
    return np.tile(pool, (-(-n // len(pool)),) + (1,) * (pool.ndim - 1))[:n]


def _byte_shape(dims: tuple[int, ...], qtype, gguf) -> tuple[int, ...]:
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    return (*dims[:-1], dims[-1] // block * size)


def _elements(dims) -> int:
    n = 1
    for d in dims:
        n *= int(d)
    return n


def _plain(value):
    return value.item() if hasattr(value, "item") else value


if __name__ == "__main__":
    sys.exit(main())
