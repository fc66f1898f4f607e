#!/usr/bin/env python3
"""Writes the binary seed inputs of fuzz/corpus/ (tiny GGUF and safetensors
files); the text seeds (JSON, YAML, prompts) are committed as they are.

Usage: fuzz/make_seeds.py [CORPUS_DIR]   (default: the corpus/ beside this file)

The output is deterministic, so re-running it leaves the committed files
unchanged. File names have no .gguf/.safetensors extension (those are
git-ignored in this repository).
"""
import json
import os
import struct
import sys

# GGUF metadata value types.
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
SCALAR_FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f",
              BOOL: "<B", U64: "<Q", I64: "<q", F64: "<d"}

# ggml tensor types: id -> (block values, block bytes).
GGML = {"F32": (0, 1, 4), "F16": (1, 1, 2), "Q8_0": (8, 32, 34), "Q6_K": (14, 256, 210),
        "I8": (24, 1, 1), "BF16": (30, 1, 2), "TQ1_0": (34, 256, 54), "TQ2_0": (35, 256, 66),
        "I2_S": (36, 128, 32)}


def gguf_string(s):
    b = s.encode("utf-8") if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def gguf_value(vtype, v):
    if vtype == STRING:
        return gguf_string(v)
    if vtype == ARRAY:
        etype, items = v
        out = struct.pack("<IQ", etype, len(items))
        return out + b"".join(gguf_value(etype, x) for x in items)
    return struct.pack(SCALAR_FMT[vtype], v)


def tensor_bytes(type_name, dims):
    _, block, block_bytes = GGML[type_name]
    n = 1
    for d in dims:
        n *= d
    if type_name == "I2_S":
        return n // block * block_bytes + 32
    return n // block * block_bytes


def gguf_file(metadata, tensors, version=3, alignment=32):
    """metadata: [(key, type, value)]; tensors: [(name, type name, dims)]."""
    out = struct.pack("<IIQQ", 0x46554747, version, len(tensors), len(metadata))
    for key, vtype, value in metadata:
        out += gguf_string(key) + struct.pack("<I", vtype) + gguf_value(vtype, value)
    offset = 0
    blobs = []
    for name, type_name, dims in tensors:
        size = tensor_bytes(type_name, dims)
        out += gguf_string(name) + struct.pack("<I", len(dims))
        out += b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", GGML[type_name][0], offset)
        # Deterministic, non-trivial bytes (valid fp16 scales included).
        blobs.append((offset, bytes((i * 37 + 11) % 251 for i in range(size))))
        offset += (size + alignment - 1) // alignment * alignment
    out += b"\0" * (-len(out) % alignment)
    data = bytearray(offset)
    for off, blob in blobs:
        data[off:off + len(blob)] = blob
    return out + bytes(data)


def tiny_vocab_metadata():
    tokens = ["a", "b", "c", "ab", "abc", "\u0120", "\u0120a", "<|begin_of_text|>",
              "<|end_of_text|>", "<|eot_id|>"]
    types = [1, 1, 1, 1, 1, 1, 1, 3, 3, 3]
    return [
        ("tokenizer.ggml.model", STRING, "gpt2"),
        ("tokenizer.ggml.pre", STRING, "llama-bpe"),
        ("tokenizer.ggml.tokens", ARRAY, (STRING, tokens)),
        ("tokenizer.ggml.token_type", ARRAY, (I32, types)),
        ("tokenizer.ggml.merges", ARRAY, (STRING, ["a b", "ab c", "\u0120 a"])),
        ("tokenizer.ggml.bos_token_id", U32, 7),
        ("tokenizer.ggml.eos_token_id", U32, 8),
        ("tokenizer.ggml.eot_token_id", U32, 9),
        ("tokenizer.ggml.add_bos_token", BOOL, 1),
        ("tokenizer.chat_template", STRING,
         "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"),
    ]


def gguf_seeds():
    arch = "bitnet-b1.58"
    model = [
        ("general.architecture", STRING, arch),
        ("general.name", STRING, "tiny"),
        (arch + ".vocab_size", U32, 10),
        (arch + ".context_length", U32, 64),
        (arch + ".embedding_length", U32, 256),
        (arch + ".block_count", U32, 1),
        (arch + ".feed_forward_length", U32, 256),
        (arch + ".rope.dimension_count", U32, 64),
        (arch + ".attention.head_count", U32, 4),
        (arch + ".attention.head_count_kv", U32, 2),
        (arch + ".attention.layer_norm_rms_epsilon", F32, 1e-5),
        (arch + ".rope.freq_base", F32, 500000.0),
        ("general.file_type", U32, 40),
    ] + tiny_vocab_metadata()
    every_type = [
        ("u8", U8, 200), ("i8", I8, -5), ("u16", U16, 60000), ("i16", I16, -300),
        ("u32", U32, 4000000000), ("i32", I32, -7), ("f32", F32, 0.5), ("bool", BOOL, 1),
        ("string", STRING, "h\u00e9llo"), ("u64", U64, 2**63), ("i64", I64, -2**40),
        ("f64", F64, 1e-300),
        ("arr.u8", ARRAY, (U8, [1, 2, 3])), ("arr.i16", ARRAY, (I16, [-1, 2])),
        ("arr.u32", ARRAY, (U32, [7])), ("arr.i32", ARRAY, (I32, [-1, 0, 1])),
        ("arr.f32", ARRAY, (F32, [0.0, -1000.0])), ("arr.bool", ARRAY, (BOOL, [0, 1, 2])),
        ("arr.string", ARRAY, (STRING, ["", "x", "\u00fc"])), ("arr.u64", ARRAY, (U64, [1])),
        ("arr.i64", ARRAY, (I64, [-1])), ("arr.f64", ARRAY, (F64, [2.5])),
        ("arr.empty", ARRAY, (U8, [])),
        ("arr.nested", ARRAY, (ARRAY, [(U8, [1]), (STRING, ["a"]), (ARRAY, [(I32, [3])])])),
    ]
    return {
        "gguf_reader/tiny_model": gguf_file(model, [
            ("token_embd.weight", "F16", [256, 2]),
            ("blk.0.attn_q.weight", "I2_S", [256, 4]),
            ("blk.0.attn_k.weight", "TQ2_0", [256, 2]),
            ("blk.0.attn_v.weight", "TQ1_0", [256, 2]),
            ("blk.0.attn_norm.weight", "F32", [256]),
            ("output.weight", "Q6_K", [256, 1]),
        ]),
        "gguf_reader/every_value_type": gguf_file(every_type, [
            ("f32", "F32", [3]), ("bf16", "BF16", [2, 2]), ("q8", "Q8_0", [32, 2]),
            ("i8", "I8", [1, 1, 1, 4]),
        ]),
        "gguf_reader/v2_aligned_64": gguf_file(
            [("general.alignment", U32, 64), ("general.architecture", STRING, "llama")],
            [("a", "F32", [5]), ("b", "F32", [1])], version=2, alignment=64),
        "gguf_reader/empty": gguf_file([], []),
        "gguf_reader/vocab_only": gguf_file(tiny_vocab_metadata(), []),
    }


def safetensors_file(tensors, metadata=None):
    """tensors: [(name, dtype, shape, element bytes)] laid out in order."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    offset = 0
    data = b""
    for name, dtype, shape, elem in tensors:
        n = 1
        for d in shape:
            n *= d
        size = n * elem
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        data += bytes((i * 29 + 3) % 253 for i in range(size))
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def safetensors_seeds():
    return {
        "safetensors/float_dtypes": safetensors_file([
            ("model.norm.weight", "F32", [4], 4),
            ("model.embed_tokens.weight", "BF16", [3, 4], 2),
            ("lm_head.weight", "F16", [2, 4], 2),
        ], {"format": "pt"}),
        "safetensors/packed_bitnet": safetensors_file([
            ("model.layers.0.self_attn.q_proj.weight", "U8", [2, 8], 1),
            ("model.layers.0.self_attn.q_proj.weight_scale", "BF16", [1], 2),
            ("model.layers.0.mlp.down_proj.weight", "I8", [4, 4], 1),
        ]),
        "safetensors/every_dtype": safetensors_file([
            (d, d, [2], s) for d, s in [("BOOL", 1), ("U8", 1), ("I8", 1), ("F8_E4M3", 1),
                                        ("F8_E5M2", 1), ("U16", 2), ("I16", 2), ("F16", 2),
                                        ("BF16", 2), ("U32", 4), ("I32", 4), ("F32", 4),
                                        ("U64", 8), ("I64", 8), ("F64", 8)]
        ]),
        "safetensors/scalar_and_empty": safetensors_file([
            ("scalar", "F32", [], 4), ("empty", "F16", [0, 3], 2), ("\u00e9t\u00e9", "U8", [1], 1),
        ], {}),
    }


def main():
    corpus = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(
        os.path.abspath(__file__)), "corpus")
    seeds = {**gguf_seeds(), **safetensors_seeds()}
    for rel, data in sorted(seeds.items()):
        path = os.path.join(corpus, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        print(f"{path}: {len(data)} bytes")


if __name__ == "__main__":
    main()
