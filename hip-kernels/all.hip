// The single translation unit compiled into one code object per GPU architecture (and handed
// to NVRTC as the main source, with the other files as headers).

#include "common.h"

#include "im2col.hip"
#include "col2im.hip"
#include "pixels.hip"
#include "bias.hip"
#include "direct.hip"
#include "winograd.hip"
#include "batch.hip"
#include "implicit.hip"
