#!/usr/bin/python3
"""train_default_model.py - makes the bundled default model, models/default/.

A small Llama (Hugging Face LlamaForCausalLM layout and maths) trained from scratch for a few
minutes on one CPU thread on the King James Bible from Debian's bible-kjv-text (public domain),
with its own SentencePiece BPE tokenizer. It writes the complete checkpoint folder (config,
tokenizer, BF16 model.safetensors) plus reference outputs computed from the released BF16
weights in float64: eval-text token ids, the logits of the first 64 tokens and the
llama.cpp-method perplexity (same method and file formats as shared/models/tiny-llama-kjv/reference).

    apt-get install -y bible-kjv python3-sentencepiece    # bible-kjv pulls in bible-kjv-text
    /usr/bin/python3 scripts/train_default_model.py --out models/default

Deterministic: fixed seeds, one thread, a fixed number of steps; on the same CPU kind and torch
build a re-run gives byte-identical files (only README.md's measured times differ). Another CPU
kind may give other bits: the BF16 autocast matmuls use oneDNN kernels chosen by CPU features.
Python is only for making this fixture; smelt itself never runs it, nor does CI.
"""
import argparse
import hashlib
import json
import math
import os
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

try:
    import sentencepiece as spm
except ImportError:
    sys.exit("train_default_model: needs sentencepiece: apt-get install -y python3-sentencepiece")

# ---------------------------------------------------------------- the recipe (all fixed)
TEXT_PACKAGE = "bible-kjv-text"
BIBLE_CMD = ["bible", "-f", "gen1:1-rev22:21"]
N_CHAPTERS, N_VERSES = 1189, 31102
EVAL_MOD, EVAL_REM = 100, 50   # chapter index i (0-based, Bible order) with i % 100 == 50 -> eval
CALIB_MOD, CALIB_REM = 100, 0  # i % 100 == 0 -> calib; every other chapter -> train

VOCAB = 512
CFG = dict(hidden_size=256, intermediate_size=512, num_hidden_layers=3, num_attention_heads=4,
           num_key_value_heads=2, rms_norm_eps=1e-5, rope_theta=10000.0, max_position_embeddings=256,
           vocab_size=VOCAB)
BOS, EOS = 1, 2

SEED = 20250101
STEPS = 1000
BATCH = 8
CTX = 256
LR, LR_MIN_FRAC, WARMUP = 3e-3, 0.1, 50
BETAS, WEIGHT_DECAY, GRAD_CLIP = (0.9, 0.95), 0.1, 1.0
INIT_STD = 0.02

PPL_CTX = 128       # reference perplexity: llama-perplexity -c 128
N_LOGITS = 64       # reference logits: the first 64 tokens of the eval text

# What a hand-run check with llama.cpp gave for the files this recipe makes (not run by this script).
LLAMA_CPP_CHECK = """llama.cpp d32676d77 (the CPU tools), run by hand
on the files this recipe made: convert_hf_to_gguf.py --outtype f32 / f16 / bf16, then
`llama-perplexity -f reference/eval.txt -c 128 -t 2`: f32 ppl 8.4215, f16 8.4215, bf16 8.4219
(llama.cpp's CPU BF16 path rounds activations to BF16). `llama-tokenize --ids` on
reference/eval.txt gives exactly reference/tokens_eval.txt. (With Debian's torch 1.13 the
converter needed two shims: a `transformers` module whose AutoConfig fails, so that it reads
config.json itself, and placeholder attributes for the float8/uint dtypes torch 1.13 lacks.)"""


# ---------------------------------------------------------------- text
def dpkg_version(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True, text=True)
    if r.returncode != 0 or not r.stdout:
        sys.exit(f"train_default_model: package {pkg} is not installed: apt-get install -y bible-kjv")
    return r.stdout


def kjv_chapters():
    """The KJV as a list of chapters, each a list of verse lines 'Ge1:1 In the beginning ...'
    (the `bible -f` reference kept, every whitespace run collapsed to one space)."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env["LC_ALL"] = "C"
    out = subprocess.run(BIBLE_CMD, capture_output=True, env=env, check=True).stdout.decode("ascii")
    chapters, current = [], None
    for line in out.split("\n"):
        if not line.strip():
            continue
        verse = " ".join(line.split())
        chapter = verse.split(" ", 1)[0].split(":")[0]
        if chapter != current:
            chapters.append([])
            current = chapter
        chapters[-1].append(verse)
    n_verses = sum(len(c) for c in chapters)
    if len(chapters) != N_CHAPTERS or n_verses != N_VERSES:
        sys.exit(f"train_default_model: expected {N_CHAPTERS} chapters / {N_VERSES} verses, "
                 f"got {len(chapters)} / {n_verses}")
    return chapters


def split_text(chapters):
    parts = {"train": [], "eval": [], "calib": []}
    for i, c in enumerate(chapters):
        name = "eval" if i % EVAL_MOD == EVAL_REM else "calib" if i % CALIB_MOD == CALIB_REM else "train"
        parts[name].append(i)
    texts = {k: "".join(v + "\n" for i in idx for v in chapters[i]) for k, idx in parts.items()}
    return parts, texts


# ---------------------------------------------------------------- tokenizer
def train_tokenizer(workdir, train_text):
    """SentencePiece BPE with Llama's trainer options, deterministic (one thread, every
    sentence used, no shuffling). Run inside workdir so the paths stored in the model are fixed."""
    with open(os.path.join(workdir, "train.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.write(train_text)
    if hasattr(spm, "set_random_generator_seed"):
        spm.set_random_generator_seed(SEED)
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        spm.SentencePieceTrainer.train(
            input="train.txt", model_prefix="tokenizer", model_type="bpe", vocab_size=VOCAB,
            character_coverage=1.0, byte_fallback=True, split_digits=True,
            normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=True,
            allow_whitespace_only_pieces=True, split_by_unicode_script=True, split_by_whitespace=True,
            max_sentence_length=4096, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
            unk_piece="<unk>", bos_piece="<s>", eos_piece="</s>",
            num_threads=1, input_sentence_size=0, shuffle_input_sentence=False,
            minloglevel=2)
    finally:
        os.chdir(cwd)
    path = os.path.join(workdir, "tokenizer.model")
    sp = spm.SentencePieceProcessor(model_file=path)
    assert sp.get_piece_size() == VOCAB
    assert [sp.id_to_piece(i) for i in range(3)] == ["<unk>", "<s>", "</s>"]
    assert sp.id_to_piece(3) == "<0x00>" and sp.id_to_piece(258) == "<0xFF>"
    return sp, path


# ---------------------------------------------------------------- the model (HF Llama maths)
def param_shapes(c):
    h, i, v = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    hd = h // c["num_attention_heads"]
    kv = c["num_key_value_heads"] * hd
    shapes = {"model.embed_tokens.weight": (v, h)}
    for n in range(c["num_hidden_layers"]):
        p = f"model.layers.{n}."
        shapes.update({
            p + "self_attn.q_proj.weight": (h, h), p + "self_attn.k_proj.weight": (kv, h),
            p + "self_attn.v_proj.weight": (kv, h), p + "self_attn.o_proj.weight": (h, h),
            p + "mlp.gate_proj.weight": (i, h), p + "mlp.up_proj.weight": (i, h),
            p + "mlp.down_proj.weight": (h, i),
            p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,)})
    shapes["model.norm.weight"] = (h,)
    shapes["lm_head.weight"] = (v, h)
    return shapes


def init_params(c, gen):
    """HF's init (normal(0, 0.02) for Linear and Embedding, RMSNorm weights 1), except that
    o_proj and down_proj get std 0.02/sqrt(2*layers) (GPT-2 style; trains faster)."""
    params = {}
    for name, shape in param_shapes(c).items():
        if len(shape) == 1:
            params[name] = torch.ones(shape)
        else:
            std = INIT_STD
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                std /= math.sqrt(2 * c["num_hidden_layers"])
            params[name] = torch.randn(shape, generator=gen) * std
    return params


def rope_tables(c, n, dtype):
    """cos/sin [n, head_dim] as HF LlamaRotaryEmbedding (default rope): inv_freq over pairs,
    frequencies duplicated with cat(freqs, freqs) for the rotate_half layout."""
    hd = c["hidden_size"] // c["num_attention_heads"]
    inv_freq = 1.0 / (c["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    freqs = torch.outer(torch.arange(n, dtype=torch.float64), inv_freq)
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def rms_norm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def forward(params, c, tokens):
    """Logits [B, T, vocab] of LlamaForCausalLM (eager attention, causal mask, no cache), in the
    dtype of params (under training's bf16 autocast the matrix products are BF16, RoPE and
    softmax see the params' dtype). tokens: int64 [B, T]."""
    b, t = tokens.shape
    h, nh, nkv = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
    hd, eps = h // nh, c["rms_norm_eps"]
    dtype = params["model.norm.weight"].dtype
    cos, sin = rope_tables(c, t, dtype)
    mask = torch.full((t, t), float("-inf"), dtype=dtype).triu(1)
    x = params["model.embed_tokens.weight"][tokens]
    for n in range(c["num_hidden_layers"]):
        p = lambda s: params[f"model.layers.{n}.{s}.weight"]  # noqa: E731
        a = rms_norm(x, p("input_layernorm"), eps)
        q = F.linear(a, p("self_attn.q_proj")).to(dtype).view(b, t, nh, hd).transpose(1, 2)
        k = F.linear(a, p("self_attn.k_proj")).to(dtype).view(b, t, nkv, hd).transpose(1, 2)
        v = F.linear(a, p("self_attn.v_proj")).to(dtype).view(b, t, nkv, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(nh // nkv, dim=1)  # HF repeat_kv: query head j uses kv head j // n_rep
        v = v.repeat_interleave(nh // nkv, dim=1)
        scores = q @ k.transpose(-1, -2) / math.sqrt(hd) + mask
        o = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, h)
        x = x + F.linear(o, p("self_attn.o_proj"))
        m = rms_norm(x, p("post_attention_layernorm"), eps)
        x = x + F.linear(F.silu(F.linear(m, p("mlp.gate_proj"))) * F.linear(m, p("mlp.up_proj")),
                         p("mlp.down_proj"))
    x = rms_norm(x, params["model.norm.weight"], eps)
    return F.linear(x, params["lm_head.weight"])


def chunk_loss(params, c, ids, n_ctx, batch=16):
    """Mean NLL over all n_ctx-1 predictions of every BOS-started n_ctx chunk of ids."""
    n = len(ids) // n_ctx
    chunks = torch.tensor(ids[: n * n_ctx], dtype=torch.int64).view(n, n_ctx).clone()
    chunks[:, 0] = BOS
    total = 0.0
    with torch.no_grad():
        for s in range(0, n, batch):
            x = chunks[s:s + batch]
            logits = forward(params, c, x).double()
            total += F.cross_entropy(logits[:, :-1].reshape(-1, c["vocab_size"]), x[:, 1:].reshape(-1),
                                     reduction="sum").item()
    return total / (n * (n_ctx - 1))


# ---------------------------------------------------------------- training
def train(c, train_ids, log):
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    params = init_params(c, gen)
    for p in params.values():
        p.requires_grad_(True)
    decay = [p for p in params.values() if p.dim() == 2]
    no_decay = [p for p in params.values() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                             {"params": no_decay, "weight_decay": 0.0}], lr=LR, betas=BETAS)
    data = torch.tensor(train_ids, dtype=torch.int64)
    losses = []
    t0, c0 = time.time(), time.process_time()
    for step in range(STEPS):
        if step < WARMUP:
            lr = LR * (step + 1) / WARMUP
        else:
            frac = (step - WARMUP) / max(1, STEPS - 1 - WARMUP)
            lr = LR * (LR_MIN_FRAC + (1 - LR_MIN_FRAC) * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        starts = torch.randint(0, len(data) - CTX - 1, (BATCH,), generator=gen)
        x = torch.stack([data[s:s + CTX + 1] for s in starts.tolist()])
        x[:, 0] = BOS
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = forward(params, c, x[:, :-1])
        loss = F.cross_entropy(logits.float().reshape(-1, c["vocab_size"]), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(params.values()), GRAD_CLIP)
        opt.step()
        losses.append(loss.item())
        if step % 50 == 0 or step == STEPS - 1:
            log(f"step {step:4d}  lr {lr:.5f}  loss {loss.item():.4f}  {time.time() - t0:6.1f}s "
                f"(cpu {time.process_time() - c0:6.1f}s)")
    times = {"wall": time.time() - t0, "cpu": time.process_time() - c0}
    final = {k: v.detach() for k, v in params.items()}
    return final, losses, times


# ---------------------------------------------------------------- writing
def bf16_round(t):
    return t.to(torch.bfloat16)


def write_safetensors(path, tensors):
    """safetensors: u64 LE header length, JSON header (__metadata__ first, then tensors in name
    order with dtype / shape / data_offsets), padded with spaces to a multiple of 8, then data."""
    header = {"__metadata__": {"format": "pt"}}
    blobs, off = [], 0
    for name in sorted(tensors):
        t = tensors[name]
        assert t.dtype == torch.bfloat16
        raw = t.contiguous().view(torch.int16).numpy().astype("<i2").tobytes()
        header[name] = {"dtype": "BF16", "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    hjson = json.dumps(header, separators=(",", ":")).encode()
    hjson += b" " * (-len(hjson) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)


def read_safetensors_bf16(path):
    """Re-reads a BF16 safetensors file with numpy only (checks what write_safetensors wrote)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        assert info["dtype"] == "BF16" and b - a == 2 * int(np.prod(info["shape"]))
        u16 = np.frombuffer(data[base + a:base + b], dtype="<u2").astype(np.uint32)
        out[name] = torch.from_numpy((u16 << 16).view(np.float32).reshape(info["shape"]).copy())
    assert base + max(i["data_offsets"][1] for k, i in header.items() if k != "__metadata__") == len(data)
    return out


def write_json(path, obj):
    """As transformers writes its JSON files: indent 2, sorted keys, final newline."""
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def config_json(c):
    return {
        "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
        "bos_token_id": BOS, "eos_token_id": EOS, "hidden_act": "silu",
        "hidden_size": c["hidden_size"], "initializer_range": INIT_STD,
        "intermediate_size": c["intermediate_size"],
        "max_position_embeddings": c["max_position_embeddings"], "mlp_bias": False,
        "model_type": "llama", "num_attention_heads": c["num_attention_heads"],
        "num_hidden_layers": c["num_hidden_layers"], "num_key_value_heads": c["num_key_value_heads"],
        "pretraining_tp": 1, "rms_norm_eps": c["rms_norm_eps"], "rope_scaling": None,
        "rope_theta": c["rope_theta"], "tie_word_embeddings": False, "torch_dtype": "bfloat16",
        "transformers_version": "4.44.2", "use_cache": True, "vocab_size": c["vocab_size"]}


def special_token(content, with_special):
    d = {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
    if with_special:
        d["special"] = True
    return d


def tokenizer_config_json(c):
    """What transformers' slow LlamaTokenizer (legacy) saves."""
    return {
        "add_bos_token": True, "add_eos_token": False, "add_prefix_space": None,
        "added_tokens_decoder": {str(i): special_token(s, True) for i, s in enumerate(["<unk>", "<s>", "</s>"])},
        "bos_token": "<s>", "clean_up_tokenization_spaces": False, "eos_token": "</s>", "legacy": True,
        "model_max_length": c["max_position_embeddings"], "pad_token": None, "sp_model_kwargs": {},
        "spaces_between_special_tokens": False, "tokenizer_class": "LlamaTokenizer",
        "unk_token": "<unk>", "use_default_system_prompt": False}


def special_tokens_map_json():
    return {"bos_token": special_token("<s>", False), "eos_token": special_token("</s>", False),
            "unk_token": special_token("<unk>", False)}


def llama_cpp_perplexity(params, c, ids, n_ctx):
    """llama-perplexity's default method: n_chunks = len // n_ctx, each chunk's first token
    replaced by BOS and evaluated alone; tokens first = n_ctx/2 .. n_ctx-2 predict the next one,
    scored as -log softmax in float64."""
    n_chunks = len(ids) // n_ctx
    first = n_ctx // 2
    per_chunk, full = [], 0.0
    with torch.no_grad():
        for ci in range(n_chunks):
            chunk = torch.tensor(ids[ci * n_ctx:(ci + 1) * n_ctx], dtype=torch.int64)
            chunk[0] = BOS
            logp = forward(params, c, chunk[None])[0].double().log_softmax(-1)
            nll = -logp[torch.arange(n_ctx - 1), chunk[1:]]
            per_chunk.append(nll[first:].mean().item())
            full += nll.sum().item()
    scored = n_ctx - 1 - first
    mean_nll = sum(x * scored for x in per_chunk) / (n_chunks * scored)
    return {"n_ctx": n_ctx, "n_chunks": n_chunks, "scored_per_chunk": scored,
            "n_scored_tokens": n_chunks * scored, "mean_nll": mean_nll, "ppl": math.exp(mean_nll),
            "per_chunk_mean_nll": per_chunk, "full_chunk_mean_nll": full / (n_chunks * (n_ctx - 1))}


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# ---------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="models/default", help="output folder (default models/default)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    out, ref = args.out, os.path.join(args.out, "reference")
    os.makedirs(ref, exist_ok=True)
    log = lambda s: print(s, flush=True)  # noqa: E731
    c = CFG
    t_start = time.time()

    pkg_version = dpkg_version(TEXT_PACKAGE)
    bible_version = dpkg_version("bible-kjv")
    chapters = kjv_chapters()
    parts, texts = split_text(chapters)
    log(f"text: {TEXT_PACKAGE} {pkg_version}; chapters train/eval/calib "
        f"{len(parts['train'])}/{len(parts['eval'])}/{len(parts['calib'])}; bytes "
        f"{len(texts['train'])}/{len(texts['eval'])}/{len(texts['calib'])}")
    for name in ("eval", "calib"):
        with open(os.path.join(ref, f"{name}.txt"), "w", encoding="ascii", newline="\n") as f:
            f.write(texts[name])

    with tempfile.TemporaryDirectory() as work:
        t0 = time.time()
        sp, sp_path = train_tokenizer(work, texts["train"])
        tok_s = time.time() - t0
        with open(sp_path, "rb") as f:
            sp_bytes = f.read()
    with open(os.path.join(out, "tokenizer.model"), "wb") as f:
        f.write(sp_bytes)
    train_ids = sp.encode(texts["train"])
    eval_ids = [BOS] + sp.encode(texts["eval"])
    log(f"tokenizer: {VOCAB} pieces in {tok_s:.1f}s; train {len(train_ids)} tokens, eval {len(eval_ids)} (with BOS)")
    assert sp.decode(eval_ids[1:]) == texts["eval"]

    params, losses, times = train(c, train_ids, log)
    eval_f32 = chunk_loss(params, c, eval_ids, CTX)
    released = {k: bf16_round(v) for k, v in params.items()}
    st_path = os.path.join(out, "model.safetensors")
    write_safetensors(st_path, released)
    reread = read_safetensors_bf16(st_path)
    assert set(reread) == set(released)
    for k in released:
        assert torch.equal(reread[k], released[k].float()), k
    p64 = {k: v.double() for k, v in reread.items()}
    eval_bf16 = chunk_loss(p64, c, eval_ids, CTX)
    final_train = sum(losses[-50:]) / 50
    n_tokens_seen = STEPS * BATCH * CTX
    log(f"trained {STEPS} steps in {times['cpu']:.0f}s CPU ({times['wall']:.0f}s wall); "
        f"train loss (last 50 steps) {final_train:.4f}; "
        f"eval loss F32 {eval_f32:.4f}, BF16 {eval_bf16:.4f} (uniform {math.log(VOCAB):.4f})")

    write_json(os.path.join(out, "config.json"), config_json(c))
    write_json(os.path.join(out, "generation_config.json"),
               {"_from_model_config": True, "bos_token_id": BOS, "eos_token_id": EOS,
                "transformers_version": "4.44.2"})
    write_json(os.path.join(out, "tokenizer_config.json"), tokenizer_config_json(c))
    write_json(os.path.join(out, "special_tokens_map.json"), special_tokens_map_json())

    # reference outputs, float64 forward of the released BF16 weights
    with open(os.path.join(ref, "tokens_eval.txt"), "w", newline="\n") as f:
        f.write("".join(f"{t}\n" for t in eval_ids))
    with torch.no_grad():
        logits = forward(p64, c, torch.tensor([eval_ids[:N_LOGITS]]))[0]
    with open(os.path.join(ref, "logits_first64.f32"), "wb") as f:
        f.write(logits.to(torch.float32).numpy().astype("<f4").tobytes())
    ppl = llama_cpp_perplexity(p64, c, eval_ids, PPL_CTX)
    ppl.update({"model": "default", "weights": "model.safetensors (BF16) upcast to F64",
                "text": "models/default/reference/eval.txt", "n_tokens": len(eval_ids), "bos_id": BOS})
    with open(os.path.join(ref, "perplexity.json"), "w", newline="\n") as f:
        f.write(json.dumps(ppl, indent=2) + "\n")
    log(f"reference perplexity: n_ctx {PPL_CTX}, {ppl['n_chunks']} chunks, ppl {ppl['ppl']:.4f} "
        f"(mean NLL {ppl['mean_nll']:.6f})")

    info = dict(c=c, pkg_version=pkg_version, bible_version=bible_version, parts=parts, texts=texts,
                n_train=len(train_ids), n_eval=len(eval_ids), times=times, tok_s=tok_s,
                final_train=final_train, eval_f32=eval_f32, eval_bf16=eval_bf16, ppl=ppl,
                n_params=sum(v.numel() for v in released.values()), n_tensors=len(released),
                n_tokens_seen=n_tokens_seen, total_s=time.time() - t_start, chapters=chapters)
    with open(os.path.join(ref, "README.md"), "w", newline="\n") as f:
        f.write(reference_readme(info))
    with open(os.path.join(out, "README.md"), "w", newline="\n") as f:
        f.write(model_readme(info, out))
    log(f"wrote {out} in {time.time() - t_start:.0f}s")


def chapter_names(info, part):
    return ", ".join(info["chapters"][i][0].split(":")[0] for i in info["parts"][part])


def reference_readme(info):
    p = info["ppl"]
    return f"""# Reference outputs for models/default

Computed by scripts/train_default_model.py with its PyTorch re-implementation of Hugging Face
transformers' `LlamaForCausalLM` (eager attention path), in **float64**, from the weights in
`../model.safetensors` (BF16, upcast exactly). The method and file formats are those of
shared/models/tiny-llama-kjv/reference, so the same test code reads both; only n_ctx differs
(read it from perplexity.json).

## eval.txt, calib.txt
Held-out KJV chapters (never seen by the tokenizer trainer or the model), UTF-8 (pure ASCII),
one verse per line as `bible -f` prints it (`Exo1:1 Now these are ...`), "\\n" line ends, a final
newline. eval.txt: {len(info['parts']['eval'])} chapters, {len(info['texts']['eval'])} bytes
({chapter_names(info, 'eval')}). calib.txt: {len(info['parts']['calib'])} chapters,
{len(info['texts']['calib'])} bytes ({chapter_names(info, 'calib')}), for calibration
(imatrix, GPTQ, AWQ) demos; it does not overlap eval.txt.

## tokens_eval.txt
The token ids of `eval.txt`, one decimal id per line, {info['n_eval']} ids.
The whole file is tokenised as ONE string (no per-line splitting; newlines are part of the
text), then the BOS id 1 is prepended; no EOS. Tokeniser: `../tokenizer.model` through the
sentencepiece library, `encode(text)` (add_dummy_prefix applies once, at the start of the file;
each newline is the byte token <0x0A>), which is what LlamaTokenizer (legacy) and llama.cpp produce.

## logits_first64.f32
Raw little-endian float32, shape [{N_LOGITS}, {info['c']['vocab_size']}] row-major: one forward pass
over tokens_eval[0:{N_LOGITS}] (positions 0..{N_LOGITS - 1}, causal mask, no cache), computed in float64
and rounded to float32. Row i holds the logits after token i, i.e. the prediction for token i+1.

## perplexity.json
The method of llama.cpp's `llama-perplexity` (default mode, not KL-divergence):
1. n_ctx = {p['n_ctx']}; n_chunks = floor(n_tokens / n_ctx) = {p['n_chunks']} (the last
   n_tokens mod n_ctx tokens are not used).
2. Chunk c is tokens_eval[c*n_ctx : (c+1)*n_ctx] with its first token replaced by BOS (1).
3. Every chunk is evaluated on its own (fresh context, positions 0..n_ctx-1).
4. Only the second half is scored: with first = n_ctx/2 = {p['n_ctx'] // 2}, for j = first .. n_ctx-2
   the score is -log softmax(logits[j])[chunk[j+1]] ({p['scored_per_chunk']} tokens per chunk),
   in float64.
5. mean_nll = sum of scores / (n_chunks*{p['scored_per_chunk']}); ppl = exp(mean_nll).

Fields: n_ctx, n_chunks, scored_per_chunk, n_scored_tokens, mean_nll, ppl,
per_chunk_mean_nll (mean NLL of each chunk's scored tokens), plus provenance fields.
`full_chunk_mean_nll` is a different number kept for information: the mean NLL over all
n_ctx-1 predictions of every BOS-started chunk.

Result: ppl = {p['ppl']:.4f} (mean_nll {p['mean_nll']:.6f}) over {p['n_scored_tokens']} scored tokens.

The equivalent llama.cpp run is `llama-perplexity -m <gguf> -f eval.txt -c {p['n_ctx']}`
(batch size does not change the result). An F32 or BF16 conversion should reproduce ppl to
about 1e-3 relative; F16 to about 1e-2; quantised models are expected to be higher.
"""


def model_readme(info, out):
    c, p = info["c"], info["ppl"]
    files = []
    for root, _, names in os.walk(out):
        for n in names:
            rel = os.path.relpath(os.path.join(root, n), out)
            if rel != "README.md":
                files.append(rel)
    rows = "\n".join(f"| {f} | {os.path.getsize(os.path.join(out, f))} | `{sha256(os.path.join(out, f))}` |"
                     for f in sorted(files))
    hd = c["hidden_size"] // c["num_attention_heads"]
    check = LLAMA_CPP_CHECK or "not run for these files."
    return f"""# models/default: smelt's bundled demo model

A small but really trained Llama, made by this project with `scripts/train_default_model.py`,
so that `scripts/demo.sh` and the tests have a real checkpoint to convert, quantize and measure
without downloading anything. It is a weak language model (a few minutes of training on one CPU
thread), but its weights have real trained statistics.

    apt-get install -y bible-kjv python3-sentencepiece
    /usr/bin/python3 scripts/train_default_model.py --out models/default

## Model
`LlamaForCausalLM` exactly as Hugging Face transformers computes it: vocab {c['vocab_size']},
hidden {c['hidden_size']}, intermediate {c['intermediate_size']}, {c['num_hidden_layers']} layers,
{c['num_attention_heads']} attention heads (head_dim {hd}), {c['num_key_value_heads']} KV heads (GQA),
RMSNorm eps {c['rms_norm_eps']}, RoPE theta {c['rope_theta']:g} over the whole head_dim in HF's
rotate_half layout, SiLU-gated MLP, no biases, untied lm_head, max_position_embeddings
{c['max_position_embeddings']}. {info['n_params']:,} parameters in {info['n_tensors']} tensors, BF16.
Every Linear has in_features {c['hidden_size']} or {c['intermediate_size']} (multiples of 256), so
every row splits into whole k-quant super-blocks.

Files as transformers 4.44 / LlamaTokenizer (slow, legacy) save them: config.json,
generation_config.json, tokenizer_config.json, special_tokens_map.json (no tokenizer.json).
model.safetensors is written by the script itself (8-byte little-endian header length, JSON
header with dtype / shape / data_offsets and `__metadata__: {{"format": "pt"}}`, padded with
spaces to a multiple of 8, tensors in name order) and re-read by it to check.

## Data
The King James Version of the Bible (1611) from Debian's `{TEXT_PACKAGE}` {info['pkg_version']}
(read with `bible-kjv` {info['bible_version']}: `{' '.join(BIBLE_CMD)}`). Licence: public domain;
the package's copyright file says "The copyright for the King James Version text of the Bible
is expired" (only in the UK does a Crown patent still apply to printing it).
One verse per line as `bible -f` prints it, reference included (`Ge1:1 In the beginning ...`),
every whitespace run collapsed to one space. Split by whole chapters in Bible order (index
i = 0..{N_CHAPTERS - 1}): i % {EVAL_MOD} == {EVAL_REM} -> reference/eval.txt
({len(info['parts']['eval'])} chapters, {len(info['texts']['eval'])} bytes), i % {CALIB_MOD} == {CALIB_REM} ->
reference/calib.txt ({len(info['parts']['calib'])} chapters, {len(info['texts']['calib'])} bytes),
all others -> training text ({len(info['parts']['train'])} chapters, {len(info['texts']['train'])} bytes,
not stored; the script re-makes it).

## Tokenizer
`tokenizer.model`: SentencePiece BPE, {VOCAB} pieces, trained on the training text (one verse per
line) with Llama's trainer options: identity normalisation, no whitespace cleanup, dummy prefix,
split digits, byte_fallback, character_coverage 1.0; one thread, every sentence, no shuffling.
0 `<unk>`, 1 `<s>` (BOS), 2 `</s>` (EOS), 3..258 the byte pieces `<0x00>`..`<0xFF>`, then merges
and characters. A newline is `<0x0A>`; the verse references exercise split_digits.
The training text is {info['n_train']:,} tokens ({len(info['texts']['train']) / info['n_train']:.2f} bytes per token).

## Training
From scratch, seed {SEED}, torch {torch.__version__} (Debian python3-torch), one thread
(`torch.set_num_threads(1)`), F32 master weights, forward pass under CPU bf16 autocast. Init normal(0, {INIT_STD}) (o_proj and down_proj
{INIT_STD}/sqrt(2*layers)), norms 1. Batches of {BATCH} random {CTX + 1}-token windows of the
training tokens, first token replaced by BOS, loss on all {CTX} positions. AdamW (betas
{BETAS[0]}/{BETAS[1]}, weight decay {WEIGHT_DECAY} on matrices), lr {LR} with {WARMUP} warm-up steps
then cosine to {LR_MIN_FRAC}x, grad-clip {GRAD_CLIP}. {STEPS} steps, {info['n_tokens_seen']:,} tokens
({info['n_tokens_seen'] / info['n_train']:.2f} epochs): {info['times']['cpu']:.0f} s of CPU time on one thread
({info['times']['wall']:.0f} s wall clock on a shared, busy machine; the whole script {info['total_s']:.0f} s wall).

Final train loss (mean of the last 50 steps) {info['final_train']:.4f}; eval loss on reference/eval.txt
(all positions of BOS-started {CTX}-token chunks) {info['eval_f32']:.4f} with the F32 training weights,
{info['eval_bf16']:.4f} with the released BF16 weights (uniform: ln {VOCAB} = {math.log(VOCAB):.4f}).

## Reference outputs
`reference/` (method in reference/README.md): tokens of reference/eval.txt with BOS, the logits
of the first {N_LOGITS} tokens, and the llama.cpp-method perplexity: n_ctx {p['n_ctx']},
{p['n_chunks']} chunks, **ppl {p['ppl']:.4f}** (mean NLL {p['mean_nll']:.6f}).

Cross-check with llama.cpp: {check}

## Files
| file | bytes | sha256 |
|---|---:|---|
{rows}

## Licence
The text is public domain (see Data). The weights, tokenizer and reference outputs were made by
this project from it with this repository's script; nothing here comes from elsewhere.
"""


if __name__ == "__main__":
    main()
