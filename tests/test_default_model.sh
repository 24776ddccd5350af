#!/usr/bin/env bash
# test_default_model.sh - the bundled model (models/default) is complete and intact: every file
# listed in its README.md's table exists with the listed size and sha256 and nothing else is
# there, the reference files agree with each other, and smelt parses the checkpoint and finds
# its tensors.
. "$(dirname "$0")/testlib.sh"
set -e
src=$SRC smelt=$SMELT
dir=$src/models/default
fail=0
pass=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*" >&2; fail=$((fail + 1)); }

[ -f "$dir/README.md" ] || { echo "FAIL: $dir/README.md is missing" >&2; exit 1; }

# the README's file table: | path | bytes | `sha256` |
table=$(grep -E '^\| [^ |]+ \| [0-9]+ \| `[0-9a-f]{64}` \|$' "$dir/README.md" || true)
[ -n "$table" ] || bad "no file table in $dir/README.md"
listed=()
while IFS='|' read -r _ path bytes sum _; do
  path=$(echo $path) bytes=$(echo $bytes) sum=$(echo $sum | tr -d '`')
  listed+=("$path")
  f=$dir/$path
  if [ ! -f "$f" ]; then bad "$path: listed in README.md but missing"; continue; fi
  size=$(stat -c %s "$f")
  [ "$size" = "$bytes" ] && ok || bad "$path: $size bytes, README.md says $bytes"
  got=$(sha256sum "$f" | cut -d' ' -f1)
  [ "$got" = "$sum" ] && ok || bad "$path: sha256 $got, README.md says $sum"
done <<<"$table"

# nothing unlisted, and the files a Llama checkpoint folder needs are among the listed ones
# (a here-string, not a pipe: `grep -q` stopping early would make printf fail under pipefail)
is_listed() { grep -qxF "$1" <<<"$(printf '%s\n' "${listed[@]}")"; }
while IFS= read -r f; do
  rel=${f#"$dir"/}
  [ "$rel" = README.md ] && continue
  is_listed "$rel" && ok || bad "$rel: present but not in README.md's table"
done < <(find "$dir" -type f | sort)
for need in config.json generation_config.json model.safetensors tokenizer.model tokenizer_config.json \
  special_tokens_map.json reference/eval.txt reference/tokens_eval.txt reference/logits_first64.f32 \
  reference/perplexity.json reference/README.md; do
  is_listed "$need" && ok || bad "$need: not in the bundle"
done

# the reference files agree with each other and with config.json
json_int() { grep -Eo "\"$1\": *[0-9]+" "$2" | grep -Eo '[0-9]+$'; }
vocab=$(json_int vocab_size "$dir/config.json")
n_tokens=$(json_int n_tokens "$dir/reference/perplexity.json")
n_ctx=$(json_int n_ctx "$dir/reference/perplexity.json")
n_chunks=$(json_int n_chunks "$dir/reference/perplexity.json")
lines=$(wc -l <"$dir/reference/tokens_eval.txt")
[ "$lines" = "$n_tokens" ] && ok || bad "tokens_eval.txt has $lines ids, perplexity.json says $n_tokens"
[ "$(head -n 1 "$dir/reference/tokens_eval.txt")" = 1 ] && ok || bad "tokens_eval.txt does not start with BOS (1)"
[ $((n_tokens / n_ctx)) = "$n_chunks" ] && ok || bad "perplexity.json: n_chunks $n_chunks != $n_tokens / $n_ctx"
size=$(stat -c %s "$dir/reference/logits_first64.f32")
[ "$size" = $((64 * vocab * 4)) ] && ok || bad "logits_first64.f32: $size bytes, expected 64 x $vocab x 4"
max_id=$(sort -n "$dir/reference/tokens_eval.txt" | tail -n 1)
[ "$max_id" -lt "$vocab" ] && ok || bad "tokens_eval.txt has id $max_id >= vocab $vocab"

# smelt reads the checkpoint (its safetensors header)
if [ -x "$smelt" ]; then
  set +e
  info=$("$smelt" inspect "$dir" --json 2>&1)
  rc=$?
  set -e
  if [ $rc -ne 0 ]; then
    bad "smelt inspect $dir --json failed ($rc): $info"
  else
    for t in model.embed_tokens.weight model.layers.2.mlp.down_proj.weight lm_head.weight; do
      grep -qF "$t" <<<"$info" && ok || bad "smelt inspect does not list $t"
    done
  fi
else
  bad "smelt binary not found at $smelt"
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
