// plugin.h - the CUDA code is built as a plugin (libsmelt_cuda.so) that smelt loads with
// dlopen only when a GPU is asked for (kernels/cuda_loader.c), so the CPU binary neither links
// nor maps the CUDA libraries. Inside the plugin the entry points of kernels.h carry the
// smcu_ prefix, and errors go to the plugin's own message buffer (smcu_last_error).
#ifndef SMELT_CUDA_PLUGIN_H
#define SMELT_CUDA_PLUGIN_H

#define sm_cuda_available smcu_available
#define sm_cuda_net_new smcu_net_new
#define sm_cuda_net_upload smcu_net_upload
#define sm_cuda_net_eval smcu_net_eval
#define sm_cuda_net_free smcu_net_free
#define sm_cuda_syrk_new smcu_syrk_new
#define sm_cuda_syrk_add smcu_syrk_add
#define sm_cuda_syrk_read smcu_syrk_read
#define sm_cuda_syrk_read_abs smcu_syrk_read_abs
#define sm_cuda_syrk_free smcu_syrk_free
#define sm_cuda_cholesky_inverse smcu_cholesky_inverse
#define sm_cuda_gptq_new smcu_gptq_new
#define sm_cuda_gptq_load smcu_gptq_load
#define sm_cuda_gptq_fetch smcu_gptq_fetch
#define sm_cuda_gptq_update smcu_gptq_update
#define sm_cuda_gptq_loss smcu_gptq_loss
#define sm_cuda_gptq_free smcu_gptq_free
#define sm_cuda_dgemm_rate smcu_dgemm_rate
#define sm_cuda_block_new smcu_block_new
#define sm_cuda_block_set smcu_block_set
#define sm_cuda_block_run smcu_block_run
#define sm_cuda_block_set_layer smcu_block_set_layer
#define sm_cuda_block_free smcu_block_free
#define sm_error smcu_error

#endif
