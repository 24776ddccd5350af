/* checkpoint_internal.h - how a checkpoint reader fills an sm_ckpt (formats/ only).
 *
 * A reader (safetensors.c, pytorch.c, llama2c.c, ...) builds its result like this:
 *
 *     sm_ckpt *c = sm_ckpt_new(SM_CKPT_PYTORCH, path);          // NULL: out of memory
 *     const sm_mmap *m = sm_ckpt_add_mmap(c, file);            // mapped until sm_ckpt_close
 *     sm_tensor *t = sm_ckpt_add_tensor(c);                    // zeroed, appended in file order
 *     t->name = sm_ckpt_strdup(c, "model.norm.weight");        // strings owned by c
 *     t->data = (const uint8_t *)m->data + offset;             // or memory given to sm_ckpt_own
 *     ...
 *     if (sm_ckpt_finish(c)) { sm_ckpt_close(c); return -1; }  // name index; rejects duplicates
 *     *out = c;
 *
 * Everything registered with a ckpt is released by sm_ckpt_close: the mmaps, the memory
 * handed to sm_ckpt_own / sm_ckpt_strdup, c->metadata (cJSON_Delete), and the reader's own
 * state through c->priv's `state` / `free_state` (optional, set with sm_ckpt_set_state).
 * Every helper returns NULL (or -1) after sm_error() on failure; the ckpt stays closable.
 */
#ifndef SMELT_CHECKPOINT_INTERNAL_H
#define SMELT_CHECKPOINT_INTERNAL_H

#include "formats/formats.h"

/* A fresh, empty checkpoint (path copied). */
sm_ckpt *sm_ckpt_new(sm_ckpt_kind kind, const char *path);
/* Map a whole file and keep it mapped for the checkpoint's life. The returned pointer
 * stays valid until sm_ckpt_close. */
const sm_mmap *sm_ckpt_add_mmap(sm_ckpt *c, const char *path);
/* Take ownership of malloc'ed memory (freed at close). Returns p, or NULL after freeing p
 * if the bookkeeping itself runs out of memory. */
void *sm_ckpt_own(sm_ckpt *c, void *p);
/* Owned copies of a string / of n bytes plus a terminating NUL. */
char *sm_ckpt_strdup(sm_ckpt *c, const char *s);
char *sm_ckpt_strndup(sm_ckpt *c, const char *s, size_t n);
/* Append a zeroed tensor to c->tensors. The pointer is valid until the next call. */
sm_tensor *sm_ckpt_add_tensor(sm_ckpt *c);
/* Reader-specific state, released by free_state(state) at close. */
void sm_ckpt_set_state(sm_ckpt *c, void *state, void (*free_state)(void *state));
/* Build the name index used by sm_ckpt_find; fails if a name appears twice. Call it once,
 * after the last sm_ckpt_add_tensor. */
int sm_ckpt_finish(sm_ckpt *c);

#endif
