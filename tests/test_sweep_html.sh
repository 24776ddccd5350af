#!/usr/bin/env bash
# test_sweep_html.sh - a small `smelt sweep` of tiny-llama-kjv (2 recipes x 2 methods), then its
# report in a real browser: headless chromium renders report.html to a PNG and dumps the DOM.
# Checks: the page loads without console messages or network requests (it is self-contained:
# no scripts, fonts or images from elsewhere), the rendered DOM has exactly one SVG marker per
# artifact (report.json counts them independently), the Pareto front is drawn, the table has a
# row per artifact, and the other report files are there and agree. Also: a rerun with the same
# inputs rebuilds nothing. Skipped (77) without chromium (CI installs it).
. "$(dirname "$0")/testlib.sh"
EVAL=$ASSETS/text/kjv-eval.txt
CALIB=$ASSETS/text/kjv-calib.txt
CHROME=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[ -n "$CHROME" ] || { echo "no chromium: skipping the browser check" >&2; exit 77; }
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3) || { echo "no python3" >&2; exit 77; }
for f in "$KJV/config.json" "$EVAL" "$CALIB"; do [ -e "$f" ] || { echo "missing: $f (set SMELT_ASSETS)" >&2; exit 1; }; done
export OMP_WAIT_POLICY=passive SMELT_THREADS=2
fail() { echo "FAIL: $*" >&2; exit 1; }

"$SMELT" sweep "$KJV" --eval "$EVAL" --calib "$CALIB" --recipes Q4_0,Q8_0 --methods rtn,imatrix --ctx 128 \
  --chunks 4 --calib-chunks 4 -j 2 -o "$TMP/out" --json > "$TMP/sweep.json" 2> "$TMP/sweep.err" ||
  { cat "$TMP/sweep.err" >&2; fail "smelt sweep exited $?"; }
for f in report.json report.csv report.md plot.svg report.html; do [ -s "$TMP/out/$f" ] || fail "no $f"; done
ls "$TMP/out"/*-rtn.gguf 2>/dev/null && fail "artifacts kept without --keep"

# the browser: DOM after load, console and network activity on stderr, a screenshot
PROFILE=$(mktemp -d -p "$TMP")
FLAGS=(--headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update
  --disable-sync --no-first-run --user-data-dir="$PROFILE" --enable-logging=stderr --v=0)
URL="file://$TMP/out/report.html"
timeout 120 "$CHROME" "${FLAGS[@]}" --dump-dom "$URL" > "$TMP/dom.html" 2> "$TMP/dom.err" ||
  { tail -20 "$TMP/dom.err" >&2; fail "chromium --dump-dom exited $?"; }
timeout 120 "$CHROME" "${FLAGS[@]}" --window-size=1200,1700 --screenshot="$TMP/page.png" "$URL" > /dev/null 2> "$TMP/shot.err" ||
  { tail -20 "$TMP/shot.err" >&2; fail "chromium --screenshot exited $?"; }
[ -s "$TMP/page.png" ] || fail "no screenshot"
[ -n "${SWEEP_PNG_OUT:-}" ] && cp "$TMP/page.png" "$SWEEP_PNG_OUT"
# console messages (an error in the page) are logged as CONSOLE lines; a self-contained page
# requests nothing but itself
if grep -E 'CONSOLE|Uncaught|net::ERR_' "$TMP/dom.err" "$TMP/shot.err"; then fail "the page logged errors"; fi

"$PY" - "$TMP/out/report.json" "$TMP/dom.html" "$TMP/out/report.html" "$TMP/out/report.csv" "$TMP/out/plot.svg" <<'PYEOF' || exit 1
import csv, json, re, sys
from html.parser import HTMLParser
rep = json.load(open(sys.argv[1]))
dom, page = open(sys.argv[2]).read(), open(sys.argv[3]).read()
bad = []
arts = rep["artifacts"]
if len(arts) != 4: bad.append(f"report.json: {len(arts)} artifacts, expected 2 recipes x 2 methods = 4")

class P(HTMLParser):
    def __init__(s):
        super().__init__(); s.markers = []; s.front = 0; s.rows = 0; s.svg = 0; s.ext = []
    def handle_starttag(s, tag, a):
        a = dict(a)
        if tag == "svg": s.svg += 1
        if tag == "g" and a.get("class") == "marker": s.markers.append(a.get("data-name"))
        if tag == "polyline" and a.get("class") == "front": s.front += 1
        if tag == "tr": s.rows += 1
        for k in ("src", "href"):
            if k in a and not a[k].startswith("#"): s.ext.append(a[k])
        if tag in ("script", "link", "img", "iframe"): s.ext.append(tag)
p = P(); p.feed(dom)
names = sorted(a["name"] for a in arts)
if sorted(p.markers) != names: bad.append(f"DOM markers {sorted(p.markers)} != artifacts {names}")
if p.svg != 1: bad.append(f"{p.svg} svg elements in the DOM, expected 1")
if p.front != 1: bad.append("no Pareto front polyline")
if p.rows != len(arts) + 1: bad.append(f"{p.rows} table rows, expected header + {len(arts)}")
if p.ext: bad.append(f"external references in the page: {p.ext}")
for a in arts:
    if a["command"] not in page.replace("&amp;", "&").replace("&quot;", '"'): bad.append(f"no command for {a['name']}")
    if not (0 <= a["kld_mean"] < 1 and a["bpw"] > 4 and a["ppl"] > 1 and a["peak_rss_bytes"] > 0):
        bad.append(f"implausible numbers for {a['name']}: {a}")
# independent check of bits per weight: llama.cpp's types have fixed sizes per 32 weights
# (Q4_0: 18 bytes, Q8_0: 34 bytes), so the quantized linears alone bound bpw from below
for a in arts:
    lo = 18 * 8 / 32 if a["recipe"] == "Q4_0" else 34 * 8 / 32
    if not lo <= a["bpw"] < 16: bad.append(f"{a['name']}: bpw {a['bpw']} below the {lo} its type needs")
    if abs(a["bytes"] * 8 / a["n_params"] - a["bpw"]) > 0.2: bad.append(f"{a['name']}: bytes and bpw disagree")
rows = list(csv.DictReader(open(sys.argv[4])))
if sorted(r["name"] for r in rows) != names: bad.append("report.csv rows differ from report.json")
svg = open(sys.argv[5]).read()
if svg.count('class="marker"') != len(arts): bad.append("plot.svg: not one marker per artifact")
# Q8_0 is closer to the base than Q4_0 for the same method (an ordering any quantizer shows)
by = {a["name"]: a for a in arts}
for m in ("rtn", "imatrix"):
    if not by[f"Q8_0-{m}"]["kld_mean"] < by[f"Q4_0-{m}"]["kld_mean"]: bad.append(f"{m}: Q8_0 not closer than Q4_0")
for b in bad: print("FAIL:", b, file=sys.stderr)
sys.exit(1 if bad else 0)
PYEOF

# a rerun with the same inputs reuses every artifact
"$SMELT" sweep "$KJV" --eval "$EVAL" --calib "$CALIB" --recipes Q4_0,Q8_0 --methods rtn,imatrix --ctx 128 \
  --chunks 4 --calib-chunks 4 -j 2 -o "$TMP/out" --json > "$TMP/again.json" 2> "$TMP/again.err" || fail "rerun exited $?"
"$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); sys.exit(0 if r["n_reused"]==4 else 1)' "$TMP/again.json" ||
  fail "the rerun rebuilt artifacts whose inputs had not changed"
# a changed input (the evaluation text) rebuilds
head -c 60000 "$EVAL" > "$TMP/eval2.txt"
"$SMELT" sweep "$KJV" --eval "$TMP/eval2.txt" --calib "$CALIB" --recipes Q4_0 --methods rtn --ctx 128 --chunks 4 \
  -o "$TMP/out" --json > "$TMP/changed.json" 2> /dev/null || fail "sweep with another text exited $?"
"$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); sys.exit(0 if r["n_reused"]==0 else 1)' "$TMP/changed.json" ||
  fail "an artifact measured on another text was reused"
echo "test_sweep_html: ok"
