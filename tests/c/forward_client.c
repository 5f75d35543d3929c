/*
 * Checks how calls are routed: standalone, or forwarded to a real MIOpen (replace mode via
 * HIPCONV_REAL_MIOPEN, or preload mode via LD_PRELOAD).
 *
 * Usage: forward_client standalone
 *        forward_client forwarded <path of the real library's hipconv copy>
 *
 * In forwarded mode the handle and descriptors must be objects of the real library (checked by
 * calling the real library's own getter on them), the non-convolution function must reach the
 * real library with every argument intact (13 pointer/int arguments, some on the stack, and a
 * double), and a convolution must still give the right answer.
 */
#define _GNU_SOURCE /* RTLD_NOLOAD */
#include <hipconv/miopen.h>

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

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
                                                        double epsilon);

#define EXPECT(cond)                                                                           \
    do                                                                                         \
    {                                                                                          \
        if(!(cond))                                                                            \
        {                                                                                      \
            printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                             \
            return 1;                                                                          \
        }                                                                                      \
    } while(0)

int main(int argc, char** argv)
{
    int forwarded = argc > 2 && strcmp(argv[1], "forwarded") == 0;
    miopenHandle_t h;
    miopenTensorDescriptor_t xd, wd, yd, bd;
    miopenConvolutionDescriptor_t cd;
    EXPECT(miopenCreate(&h) == miopenStatusSuccess);
    EXPECT(miopenCreateTensorDescriptor(&xd) == miopenStatusSuccess);
    EXPECT(miopenCreateTensorDescriptor(&wd) == miopenStatusSuccess);
    EXPECT(miopenCreateTensorDescriptor(&yd) == miopenStatusSuccess);
    EXPECT(miopenCreateTensorDescriptor(&bd) == miopenStatusSuccess);
    EXPECT(miopenCreateConvolutionDescriptor(&cd) == miopenStatusSuccess);
    EXPECT(miopenSet4dTensorDescriptor(xd, miopenFloat, 1, 2, 4, 4) == miopenStatusSuccess);
    EXPECT(miopenSet4dTensorDescriptor(wd, miopenFloat, 3, 2, 3, 3) == miopenStatusSuccess);
    EXPECT(miopenSet4dTensorDescriptor(yd, miopenFloat, 1, 3, 4, 4) == miopenStatusSuccess);
    EXPECT(miopenSet4dTensorDescriptor(bd, miopenFloat, 1, 2, 1, 1) == miopenStatusSuccess);
    EXPECT(miopenInitConvolutionDescriptor(cd, miopenConvolution, 1, 1, 1, 1, 1, 1) ==
           miopenStatusSuccess);

    if(forwarded)
    {
        /* The objects belong to the real library: its own getter accepts them. */
        void* real = dlopen(argv[2], RTLD_NOW | RTLD_NOLOAD);
        EXPECT(real != NULL);
        miopenStatus_t (*real_size)(miopenTensorDescriptor_t, int*);
        *(void**)(&real_size) = dlsym(real, "miopenGetTensorDescriptorSize");
        EXPECT(real_size != NULL);
        int n = 0;
        EXPECT(real_size(xd, &n) == miopenStatusSuccess && n == 4);
    }

    /* A non-convolution call. */
    float x[32] = {0}, y[32] = {0}, s[2] = {1, 1}, b[2] = {0, 0}, m[2] = {0, 0}, v[2] = {1, 1};
    float one = 1.0f, zero = 0.0f;
    miopenStatus_t st = miopenBatchNormalizationForwardInference(
        h, miopenBNSpatial, &one, &zero, xd, x, xd, y, bd, s, b, m, v, 0.25);
    if(forwarded)
    {
        EXPECT(st == miopenStatusSuccess);
        EXPECT(y[0] == 4.25f);
    }
    else
    {
        EXPECT(st == miopenStatusNotImplemented);
    }

    /* A convolution: all-ones input and weights, so y = number of taps in the window. */
    float xi[32], wi[54], yo[48];
    for(int i = 0; i < 32; i++)
        xi[i] = 1.0f;
    for(int i = 0; i < 54; i++)
        wi[i] = 1.0f;
    size_t ws_size = 0;
    EXPECT(miopenConvolutionForwardGetWorkSpaceSize(h, wd, xd, cd, yd, &ws_size) ==
           miopenStatusSuccess);
    static double ws[1 << 16];
    EXPECT(ws_size <= sizeof(ws));
    EXPECT(miopenConvolutionForward(h, &one, xd, xi, wd, wi, cd, miopenConvolutionFwdAlgoGEMM,
                                    &zero, yd, yo, ws, ws_size) == miopenStatusSuccess);
    for(int k = 0; k < 3; k++)
        for(int i = 0; i < 4; i++)
            for(int j = 0; j < 4; j++)
            {
                int rows = (i == 0 || i == 3) ? 2 : 3, cols = (j == 0 || j == 3) ? 2 : 3;
                EXPECT(fabsf(yo[k * 16 + i * 4 + j] - (float)(2 * rows * cols)) < 1e-5f);
            }

    EXPECT(miopenDestroyTensorDescriptor(xd) == miopenStatusSuccess);
    EXPECT(miopenDestroyTensorDescriptor(wd) == miopenStatusSuccess);
    EXPECT(miopenDestroyTensorDescriptor(yd) == miopenStatusSuccess);
    EXPECT(miopenDestroyTensorDescriptor(bd) == miopenStatusSuccess);
    EXPECT(miopenDestroyConvolutionDescriptor(cd) == miopenStatusSuccess);
    EXPECT(miopenDestroy(h) == miopenStatusSuccess);
    printf("routing ok (%s)\n", forwarded ? "forwarded" : "standalone");
    return 0;
}
