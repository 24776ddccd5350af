#!/usr/bin/python3
"""Writes the test inputs for the BPE fixtures (tests/data/bpe-inputs.txt) and the token ids
llama.cpp gives them (tests/data/bpe-*/expected-plain.txt, expected-special.txt), so that the
C tests compare our tokenizer with llama.cpp's without needing llama.cpp.

For each fixture made by scripts/make_bpe_fixtures.py it writes a vocabulary-only GGUF with
llama.cpp's own gguf-py (the conversion done here by hand, following convert_hf_to_gguf.py's
get_vocab_base and gguf-py's SpecialVocab), and runs llama.cpp's llama-tokenize on every input:
  expected-plain.txt    --no-bos --no-parse-special  (add_special off, parse_special off)
  expected-special.txt  (defaults: add_special as the vocabulary says, parse_special on)
One line per input, ids separated by spaces. For bpe-gpt4o it also writes expected-words.txt: the
code-point length of each pre-tokenizer word, from a small driver (compiled here with g++) that
calls llama.cpp's own unicode_regex_split (src/unicode.cpp) with its gpt-4o expressions.

    LLAMA_CPP_DIR=/path/to/llama.cpp /usr/bin/python3 scripts/bpe_fixture_expectations.py tests/data
(needs $LLAMA_CPP_DIR/gguf-py and $LLAMA_CPP_DIR/build/bin/llama-tokenize)
"""
import json
import os
import subprocess
import sys
import tempfile

SEP = b"\n__smelt_test__\n"

INPUTS = [
    b"", b" ", b"  ", b"   ", b"\t", b"\n", b"\n\n", b"\n\n\n", b" \t \t\t \t\n", b"  \n   \n    \n", b"\r\n", b"a\r\nb\r\n\r\n",
    b"Hello world", b" Hello world", b"Hello World", b" Hello World", b" Hello World!", b"Hello, world!",
    b" this is \xf0\x9f\xa6\x99.cpp", b"Hello  world   ", b"   leading spaces", b"x  \n  y\t\t z",
    b"I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL",
    b"don't DON'T can't won't it's IT'S they're THEY'RE i'm I'M we'll WE'LL you'd YOU'D ' 's '",
    b"3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 1,000,000 $3,500.25 12:30pm",
    "\u00dcber na\u00efve caf\u00e9 r\u00e9sum\u00e9, Stra\u00dfe".encode(),
    "\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440 \u043d\u0435\u0449\u043e \u043d\u0430 \u0411\u044a\u043b\u0433\u0430\u0440\u0441\u043a\u0438".encode(),
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3002\u6211\u60f3\u5728apple\u5de5\u4f5c1314151\u5929\uff5e".encode(),
    "\U0001f680 (normal) \U0001f636\u200d\U0001f32b\ufe0f (multiple emojis concatenated) \u2705 \U0001f999\U0001f999".encode(),
    "\u1780\u17b6\u1793\u17cb\u178f\u17c2\u1796\u17b7\u179f\u17c1\u179f\u17a2\u17b6\u1785\U0001f601 ?".encode(),
    "e\u0301 a\u0308 \ufb01 \uff9f \u0663\u0664\u0665 \u00bd\u00b2 \u2163".encode(),
    "a\u00a0b c\u3000d e\u2028f g\u0085h \u2003em".encode(),
    b"------======= !!!!!!?????? ''''''```````\"\"\"\"...... #$%&*@^_~|\\/<>[]{}()",
    b"<|endoftext|>Hello<|endoftext|> world<|endoftext|>",
    b"<|begin_of_text|>Hi there<|eot_id|><|end_of_text|>",
    b"<tool>call <tool> <|reserved_0|>x<|reserved_0|>",
    b"<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n",
    b"abc\xff\xfedef\xc3( \xc0\x80 \xed\xa0\x80 \xf8\x88 \x80x z\xe2\x82",
    b"    def tokenize(text):  # a comment\n        return [t for t in text.split(\" \") if t]\n",
    b"The quick brown fox jumps over the lazy dog. It's the dog's day, isn't it? We've seen\n"
    b"they'll say they'd rather be here than there; I'm sure you're right. THE END. Don't panic!\n"
    b"tokenizer tokenization tokens token tokenize tokenized retokenize detokenize\n"
    b"internationalization localization organization realization specialization\n",
    # case changes inside words, contractions after words, punctuation runs ending in / \r \n (GPT-4o's split)
    b"HTTPServer getHTTPResponseCode camelCaseWords XMLHttpRequest iPhone McDonald's ABCdef aBC",
    b"path/to/file/\n/usr/bin//\r\n:/\n\n--/\r\n x/y",
    "\u00c0\u00c9\u00ce\u00f5\u00fc \u00c9COLE \u00d1and\u00fa \u0130stanbul \u01c5ungla \u00dfSS A\u0301b\u0301C \u0391\u03b8\u03ae\u03bd\u03b1 \u0394\u0394\u03b4".encode(),
    b"THEY'RE I'M they'RE it'S X'll 'tis o'clock rock'n'roll",
]

# What convert_hf_to_gguf.py + SpecialVocab write for each fixture (worked out by hand from
# their rules: ids from tokenizer_config.json strings matched in added_tokens, then config.json;
# add_bos from the TemplateProcessing post-processor).
FIXTURES = {
    "bpe-gpt2": {"pre": "gpt-2", "ids": {"bos": "cfg", "eos": "cfg"}},
    "bpe-llama3": {"pre": "llama-bpe", "ids": {"bos": "<|begin_of_text|>", "eos": "<|end_of_text|>"}, "add_bos": True},
    "bpe-qwen2": {"pre": "qwen2", "ids": {"eos": "<|im_end|>", "pad": "<|endoftext|>", "bos": "cfg"}},
    "bpe-gpt4o": {"pre": "gpt-4o", "ids": {"bos": "<|endoftext|>", "eos": "<|endoftext|>", "unk": "<|endoftext|>",
                                           "pad": "<|endoftext|>"}, "add_bos": False, "add_eos": False},
}


def looks_special(t):
    return (t in ("<pad>", "<mask>", "<2mass>", "[@BOS@]") or (t.startswith("<|") and t.endswith("|>"))
            or (t.startswith("<\uff5c") and t.endswith("\uff5c>")) or (t.startswith("<unused") and t.endswith(">")))


def make_gguf(gguf, d, spec, path):
    tj = json.load(open(os.path.join(d, "tokenizer.json"), encoding="utf-8"))
    cfg = json.load(open(os.path.join(d, "config.json"), encoding="utf-8"))
    n = cfg["vocab_size"]
    tokens, types = ["[PAD%d]" % i for i in range(n)], [gguf.TokenType.UNUSED] * n
    for t, i in tj["model"]["vocab"].items():
        tokens[i], types[i] = t, gguf.TokenType.NORMAL
    by_content = {}
    for a in tj["added_tokens"]:
        by_content.setdefault(a["content"], a["id"])
        if a["special"] or looks_special(a["content"]):
            tokens[a["id"]], types[a["id"]] = a["content"], gguf.TokenType.CONTROL
        else:
            tokens[a["id"]], types[a["id"]] = a["content"].replace("\u2581", " "), gguf.TokenType.USER_DEFINED
    merges = [m if isinstance(m, str) else " ".join(p.replace(" ", "\u0120") for p in m) for m in tj["model"]["merges"]]
    w = gguf.GGUFWriter(path, "llama")
    w.add_context_length(64)
    w.add_embedding_length(8)
    w.add_block_count(1)
    w.add_feed_forward_length(8)
    w.add_head_count(1)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(spec["pre"])
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    for typ, src in spec["ids"].items():
        tid = cfg[typ + "_token_id"] if src == "cfg" else by_content[src]
        getattr(w, "add_%s_token_id" % typ)(tid)
    if "add_bos" in spec:
        w.add_add_bos_token(spec["add_bos"])
    if "add_eos" in spec:
        w.add_add_eos_token(spec["add_eos"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.close()


def tokenize(bin_dir, model, text, args):
    with tempfile.NamedTemporaryFile(suffix=".txt") as f:
        f.write(text)
        f.flush()
        out = subprocess.run([os.path.join(bin_dir, "llama-tokenize"), "-m", model, "-f", f.name, "--ids",
                              "--no-escape", "--log-disable"] + args, check=True, capture_output=True, text=True).stdout
    ids = json.loads(out.strip().splitlines()[-1])
    return " ".join(str(i) for i in ids)


WORDS_DRIVER = r"""
#include "unicode.h"
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>
int main(int argc, char **argv) {
    std::ifstream f(argv[1], std::ios::binary);
    std::stringstream ss; ss << f.rdbuf();
    std::string all = ss.str(), sep = "\n__smelt_test__\n";
    // llama-vocab.cpp, LLAMA_VOCAB_PRE_TYPE_GPT4O
    std::vector<std::string> regex = {
        "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    };
    for (size_t pos = 0;;) {
        size_t e = all.find(sep, pos);
        std::string t = all.substr(pos, e == std::string::npos ? std::string::npos : e - pos), line;
        for (auto &w : unicode_regex_split(t, regex, false))
            line += (line.empty() ? "" : " ") + std::to_string(unicode_cpts_from_utf8(w).size());
        printf("%s\n", line.c_str());
        if (e == std::string::npos) break;
        pos = e + sep.size();
    }
}
"""


def gpt4o_words(llama, root, tmp):
    src = os.path.join(tmp, "words.cpp")
    with open(src, "w") as f:
        f.write(WORDS_DRIVER)
    exe = os.path.join(tmp, "words")
    subprocess.run(["g++", "-O1", "-std=c++17", "-I", os.path.join(llama, "src"), "-I", os.path.join(llama, "include"),
                    src, os.path.join(llama, "src", "unicode.cpp"), os.path.join(llama, "src", "unicode-data.cpp"),
                    "-o", exe], check=True)
    out = subprocess.run([exe, os.path.join(root, "bpe-inputs.txt")], check=True, capture_output=True).stdout
    with open(os.path.join(root, "bpe-gpt4o", "expected-words.txt"), "wb") as f:
        f.write(out)


def main():
    root = sys.argv[1]
    llama = os.environ["LLAMA_CPP_DIR"]
    sys.path.insert(0, os.path.join(llama, "gguf-py"))
    import gguf
    with open(os.path.join(root, "bpe-inputs.txt"), "wb") as f:
        f.write(SEP.join(INPUTS))
    with tempfile.TemporaryDirectory() as tmp:
        for name, spec in FIXTURES.items():
            d = os.path.join(root, name)
            model = os.path.join(tmp, name + ".gguf")
            make_gguf(gguf, d, spec, model)
            for mode, args in (("plain", ["--no-bos", "--no-parse-special"]), ("special", [])):
                lines = [tokenize(os.path.join(llama, "build", "bin"), model, t, args) for t in INPUTS]
                with open(os.path.join(d, "expected-%s.txt" % mode), "w") as f:
                    f.write("\n".join(lines) + "\n")
        gpt4o_words(llama, root, tmp)


if __name__ == "__main__":
    main()
