#!/usr/bin/python3
"""Makes the small byte-level BPE test vocabularies in tests/data/bpe-{gpt2,llama3,qwen2}/:
tokenizer.json (+ tokenizer_config.json, config.json) in the layout the Hugging Face tokenizers
library writes, with merges learned here from a short built-in text (deterministic: the most
frequent pair wins, ties by the pair's text). The three share the vocabulary and merges and
differ in the pre-tokenizer, the added tokens and the special-token files, like GPT-2, Llama 3
and Qwen2 do.

    /usr/bin/python3 scripts/make_bpe_fixtures.py tests/data

The expected token ids for these vocabularies come from llama.cpp: see
scripts/bpe_fixture_expectations.py.
"""
import collections
import json
import os
import re
import sys

N_MERGES = 420

CORPUS = """\
The quick brown fox jumps over the lazy dog. It's the dog's day, isn't it? We've seen
they'll say they'd rather be here than there; I'm sure you're right. THE END. Don't panic!
In 1984, 22 people paid $3,500.25 each for 1000000 tickets -- 12:30pm on 2024-06-11.
    def tokenize(text):  # a comment
        return [t for t in text.split(" ") if t]
Hello world! Hello, World!! hello... "quoted" 'single' (parens) [brackets] {braces} <tags>
The the THE tHe; then there these those their they them. Another another and other others.
Über naïve café résumé façade -- déjà vu. Straße, Grüße, Mädchen.
Привет, как дела? Всё хорошо. Ελληνικά γράμματα. 日本語のテキスト。中文文本。한국어 텍스트.
Emoji: 🙂 🚀 ✅ 🦙🦙 and symbols © ® ™ ° ± × ÷ € £ ¥.
Tabs\tand\tnewlines\n\nand  double  spaces   and\r\nwindows line ends.
tokenizer tokenization tokens token tokenize tokenized retokenize detokenize
internationalization localization organization realization specialization
"""


def bytes_to_unicode():
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    out, n = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + n)
            n += 1
    return out


def learn_merges(text, n_merges):
    b2u = bytes_to_unicode()
    words = re.findall(r"'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?[^\s\w]+|\s+(?!\S)|\s+", text)
    counts = collections.Counter(tuple(b2u[b] for b in w.encode("utf-8")) for w in words)
    merges = []
    for _ in range(n_merges):
        pairs = collections.Counter()
        for w, c in counts.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        best = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        merges.append(best)
        merged = collections.Counter()
        for w, c in counts.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            merged[tuple(out)] += c
        counts = merged
    return merges


def base_vocab(merges):
    b2u = bytes_to_unicode()
    vocab = {}
    for b in sorted(range(256), key=lambda b: ord(b2u[b])):
        vocab[b2u[b]] = len(vocab)
    for a, b in merges:
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
    return vocab


def added(i, content, special):
    return {"id": i, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": not special, "special": special}


def byte_level(use_regex):
    return {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": use_regex}


LLAMA3_RX = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
             "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
# GPT-4o's o200k split, as Phi-4-mini's tokenizer.json has it
GPT4O_RX = ("[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
            "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
            "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
QWEN2_RX = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
            "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")


def split_then_byte_level(rx):
    return {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": rx}, "behavior": "Isolated", "invert": False},
        byte_level(False)]}


def tokenizer_json(vocab, merges, pre_tokenizer, added_tokens, normalizer=None, post_processor=None,
                   pair_merges=False, ignore_merges=False):
    model = {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
             "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False}
    if ignore_merges:
        model["ignore_merges"] = True
    model["vocab"] = vocab
    model["merges"] = [[a, b] for a, b in merges] if pair_merges else ["%s %s" % m for m in merges]
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added_tokens,
            "normalizer": normalizer, "pre_tokenizer": pre_tokenizer,
            "post_processor": post_processor or byte_level(True),
            "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
            "model": model}


def write(dirname, name, obj):
    os.makedirs(dirname, exist_ok=True)
    with open(os.path.join(dirname, name), "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")


def main():
    root = sys.argv[1]
    merges = learn_merges(CORPUS, N_MERGES)
    vocab = base_vocab(merges)
    n = len(vocab)

    # GPT-2: one special token, ids from config.json
    d = os.path.join(root, "bpe-gpt2")
    write(d, "tokenizer.json", tokenizer_json(vocab, merges, byte_level(True), [added(n, "<|endoftext|>", True)]))
    write(d, "tokenizer_config.json", {"model_max_length": 1024})
    write(d, "config.json", {"architectures": ["GPT2LMHeadModel"], "bos_token_id": n, "eos_token_id": n,
                             "vocab_size": n + 1})

    # Llama 3: BOS through the post-processor, merges as pairs, a user-defined token, padded vocab
    d = os.path.join(root, "bpe-llama3")
    toks = [added(n, "<|begin_of_text|>", True), added(n + 1, "<|end_of_text|>", True),
            added(n + 2, "<|eot_id|>", True), added(n + 3, "<tool>", False), added(n + 4, "<|reserved_0|>", False)]
    post = {"type": "Sequence", "processors": [
        byte_level(True),
        {"type": "TemplateProcessing",
         "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
         "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                  {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
         "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [n], "tokens": ["<|begin_of_text|>"]}}}]}
    write(d, "tokenizer.json", tokenizer_json(vocab, merges, split_then_byte_level(LLAMA3_RX), toks,
                                              post_processor=post, pair_merges=True, ignore_merges=True))
    write(d, "tokenizer_config.json", {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>",
                                       "chat_template": "{% for m in messages %}{{ m['content'] }}<|eot_id|>{% endfor %}",
                                       "model_max_length": 8192, "tokenizer_class": "PreTrainedTokenizerFast"})
    write(d, "config.json", {"architectures": ["LlamaForCausalLM"], "bos_token_id": n, "eos_token_id": n + 1,
                             "vocab_size": n + 8})

    # Qwen2: NFC normalizer, no BOS, EOS and PAD from tokenizer_config.json strings
    d = os.path.join(root, "bpe-qwen2")
    toks = [added(n, "<|endoftext|>", True), added(n + 1, "<|im_start|>", True), added(n + 2, "<|im_end|>", True)]
    write(d, "tokenizer.json", tokenizer_json(vocab, merges, split_then_byte_level(QWEN2_RX), toks,
                                              normalizer={"type": "NFC"}))
    write(d, "tokenizer_config.json", {"add_prefix_space": False, "bos_token": None, "eos_token": "<|im_end|>",
                                       "pad_token": "<|endoftext|>", "errors": "replace",
                                       "model_max_length": 32768, "tokenizer_class": "Qwen2Tokenizer"})
    write(d, "config.json", {"architectures": ["Qwen2ForCausalLM"], "bos_token_id": n, "eos_token_id": n + 2,
                             "vocab_size": n + 3})

    # Phi-4-mini: GPT2Tokenizer class, GPT-4o's split regex, <|endoftext|> as BOS, EOS and PAD, no BOS added
    d = os.path.join(root, "bpe-gpt4o")
    toks = [added(n, "<|endoftext|>", True), added(n + 1, "<|assistant|>", True), added(n + 2, "<|end|>", True),
            added(n + 3, "<|user|>", True), added(n + 4, "<|system|>", True)]
    write(d, "tokenizer.json", tokenizer_json(vocab, merges, split_then_byte_level(GPT4O_RX), toks))
    write(d, "tokenizer_config.json", {"add_bos_token": False, "add_eos_token": False, "bos_token": "<|endoftext|>",
                                       "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                                       "unk_token": "<|endoftext|>",
                                       "chat_template": "{% for message in messages %}{{ '<|' + message['role'] + '|>' + "
                                                        "message['content'] + '<|end|>' }}{% endfor %}"
                                                        "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}",
                                       "model_max_length": 131072, "tokenizer_class": "GPT2Tokenizer"})
    write(d, "config.json", {"architectures": ["Phi3ForCausalLM"], "bos_token_id": n, "eos_token_id": n,
                             "pad_token_id": n, "vocab_size": n + 8})


if __name__ == "__main__":
    main()
