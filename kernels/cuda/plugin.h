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
#define sm_error smcu_error

#endif
