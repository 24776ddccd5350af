#!/usr/bin/env bash
# test_install.sh - `cmake --install BUILD --prefix P` puts smelt in P/bin; the installed binary
# runs, reports the build's version, and finds the CUDA plugin relative to itself in
# P/<libdir>/smelt/ (stood in for by the emulated plugin when it is built: gptq --device cuda
# then runs; without a plugin it exits 1 naming the place it looked).
. "$(dirname "$0")/testlib.sh"
BUILD=$(dirname "$SMELT")
command -v cmake >/dev/null || skip "no cmake"
[ -f "$BUILD/CMakeCache.txt" ] || skip "$BUILD is not a CMake build directory"
P=$TMP/prefix
cmake --install "$BUILD" --prefix "$P" > "$TMP/install.log" 2>&1 || { fail "cmake --install exited $?"; cat "$TMP/install.log" >&2; }
[ -x "$P/bin/smelt" ] || fail "no $P/bin/smelt"
[ "$("$P/bin/smelt" --version)" = "$("$SMELT" --version)" ] || fail "installed smelt --version differs"
"$P/bin/smelt" --version | grep -Eq '^smelt [0-9]+\.[0-9]+\.[0-9]+' || fail "version is not project(VERSION)-based: $("$P/bin/smelt" --version)"
libdir=$(sed -n 's/^CMAKE_INSTALL_LIBDIR:PATH=//p' "$BUILD/CMakeCache.txt")
libdir=${libdir:-lib}
if grep -q '^SMELT_HAVE_CUDA' "$BUILD/CMakeCache.txt" 2>/dev/null || [ -e "$BUILD/libsmelt_cuda.so" ]; then
  [ -e "$P/$libdir/smelt/libsmelt_cuda.so" ] || fail "the CUDA plugin was built but not installed in $libdir/smelt"
fi
KJV=$ASSETS/models/tiny-llama-kjv
TEXT=$ASSETS/text/kjv-calib.txt
EMU=$BUILD/libsmelt_cuda_emu.so
if [ -e "$KJV/config.json" ] && [ -e "$EMU" ] && [ ! -e "$BUILD/libsmelt_cuda.so" ]; then
  cd "$TMP" || exit 1
  "$SMELT" convert "$KJV" -o base.gguf --quiet || fail "convert"
  env -u SMELT_CUDA_PLUGIN "$P/bin/smelt" gptq base.gguf --calib "$TEXT" --to gguf:Q4_0 --samples 2 --seqlen 32 --no-loss \
    --device cuda -o g.gguf --quiet 2> err.txt
  [ $? = 1 ] && grep -q "$libdir/smelt/libsmelt_cuda.so" err.txt || { fail "without a plugin: expected exit 1 naming $libdir/smelt"; cat err.txt >&2; }
  mkdir -p "$P/$libdir/smelt" && cp "$EMU" "$P/$libdir/smelt/libsmelt_cuda.so"
  env -u SMELT_CUDA_PLUGIN "$P/bin/smelt" gptq base.gguf --calib "$TEXT" --to gguf:Q4_0 --samples 2 --seqlen 32 --no-loss \
    --device cuda -o g.gguf --quiet 2> err.txt || { fail "installed smelt did not load the plugin from $libdir/smelt"; cat err.txt >&2; }
else
  echo "note: no emulated plugin (or a real one is built): the relative plugin lookup is not exercised" >&2
fi
tl_finish test_install
