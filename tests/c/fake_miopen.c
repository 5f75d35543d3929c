/*
 * Test double for "the real MIOpen" in the forwarding tests: a library that links to a second
 * copy of hipconv (which provides handles, descriptors and convolutions) and adds one
 * non-convolution function, miopenBatchNormalizationForwardInference, with MIOpen's signature.
 * The function checks that it received this library's objects and returns a recognisable
 * result: y[0] = epsilon + number of tensor dimensions.
 */
#include <hipconv/miopen.h>

typedef enum
{
    miopenBNPerActivation = 0,
    miopenBNSpatial       = 1,
} miopenBatchNormMode_t;

miopenStatus_t miopenBatchNormalizationForwardInference(miopenHandle_t handle,
                                                        miopenBatchNormMode_t bn_mode,
                                                        void* alpha,
                                                        void* beta,
                                                        const miopenTensorDescriptor_t xDesc,
                                                        const void* x,
                                                        const miopenTensorDescriptor_t yDesc,
                                                        void* y,
                                                        const miopenTensorDescriptor_t bnScaleBiasMeanVarDesc,
                                                        void* bnScale,
                                                        void* bnBias,
                                                        void* estimatedMean,
                                                        void* estimatedVariance,
                                                        double epsilon)
{
    (void)alpha;
    (void)beta;
    (void)x;
    (void)bnScale;
    (void)bnBias;
    (void)estimatedMean;
    (void)estimatedVariance;
    if(bn_mode != miopenBNSpatial || y == NULL)
        return miopenStatusInvalidValue;
    miopenAcceleratorQueue_t stream;
    int nx = 0, ny = 0, nb = 0;
    /* These calls resolve to the copy of hipconv behind this library (possibly through the
     * forwarding library's trampolines): they fail unless the objects are that copy's. */
    if(miopenGetStream(handle, &stream) != miopenStatusSuccess ||
       miopenGetTensorDescriptorSize(xDesc, &nx) != miopenStatusSuccess ||
       miopenGetTensorDescriptorSize(yDesc, &ny) != miopenStatusSuccess ||
       miopenGetTensorDescriptorSize(bnScaleBiasMeanVarDesc, &nb) != miopenStatusSuccess)
        return miopenStatusBadParm;
    ((float*)y)[0] = (float)(epsilon + nx);
    return miopenStatusSuccess;
}
