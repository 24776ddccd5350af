/* TEMPORARY until the vocab branch is merged: no tokenizer files can be read yet. */
#include "model.h"
int sm_vocab_load_hf(const char *model_dir, sm_vocab *out) { (void)out; return sm_error("%s: tokenizers not available yet", model_dir); }
int sm_vocab_load_spm(const char *path, sm_vocab *out) { (void)out; return sm_error("%s: tokenizers not available yet", path); }
int sm_vocab_from_gguf(const sm_gguf *g, sm_vocab *out) { (void)out; return sm_error("%s: tokenizers not available yet", sm_gguf_path(g)); }
void sm_vocab_free(sm_vocab *v) { (void)v; }
