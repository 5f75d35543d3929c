/*
 * A program linked to a MIOpen (the stand-in of standin_miopen.c) that runs one forward
 * convolution and says who computed it: a 4x4 input of ones, a 3x3 filter of ones, no
 * padding, so every output is 9; the stand-in's mark is -7777. Then it calls batch-norm
 * inference, which only the stand-in implements (mark 4242).
 *
 * Prints "served by hipconv", "served by the stand-in" or "wrong result", then
 * "batch norm: served by the stand-in" or "batch norm: status N", and exits 0 unless a
 * convolution call fails.
 *
 * Built with -DRUN_CLIENT_LIBRARY it is a shared library exporting run_client_main instead of
 * main, for late_loader.c to dlopen (as Python loads torch).
 */
#include <hipconv/miopen.h>

#include <stdio.h>
#include <stdlib.h>

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

#define CHECK(call)                                                                            \
    do                                                                                         \
    {                                                                                          \
        miopenStatus_t s_ = (call);                                                            \
        if(s_ != miopenStatusSuccess)                                                          \
        {                                                                                      \
            printf("FAIL %s -> %d\n", #call, (int)s_);                                         \
            return 1;                                                                          \
        }                                                                                      \
    } while(0)

#ifdef RUN_CLIENT_LIBRARY
int run_client_main(void);
int run_client_main(void)
#else
int main(void)
#endif
{
    miopenHandle_t h;
    miopenTensorDescriptor_t xd, wd, yd;
    miopenConvolutionDescriptor_t cd;
    CHECK(miopenCreate(&h));
    CHECK(miopenCreateTensorDescriptor(&xd));
    CHECK(miopenCreateTensorDescriptor(&wd));
    CHECK(miopenCreateTensorDescriptor(&yd));
    CHECK(miopenCreateConvolutionDescriptor(&cd));
    CHECK(miopenSet4dTensorDescriptor(xd, miopenFloat, 1, 1, 4, 4));
    CHECK(miopenSet4dTensorDescriptor(wd, miopenFloat, 1, 1, 3, 3));
    CHECK(miopenSet4dTensorDescriptor(yd, miopenFloat, 1, 1, 2, 2));
    CHECK(miopenInitConvolutionDescriptor(cd, miopenConvolution, 0, 0, 1, 1, 1, 1));

    float x[16], w[9], y[4] = {0, 0, 0, 0};
    for(int i = 0; i < 16; i++)
        x[i] = 1.0f;
    for(int i = 0; i < 9; i++)
        w[i] = 1.0f;
    size_t ws_size = 0;
    CHECK(miopenConvolutionForwardGetWorkSpaceSize(h, wd, xd, cd, yd, &ws_size));
    void* ws = ws_size ? malloc(ws_size) : NULL;
    float alpha = 1.0f, beta = 0.0f;
    CHECK(miopenConvolutionForward(
        h, &alpha, xd, x, wd, w, cd, miopenConvolutionFwdAlgoGEMM, &beta, yd, y, ws, ws_size));
    free(ws);

    printf("y = %g %g %g %g\n", y[0], y[1], y[2], y[3]);
    int ours = 1, mark = 1;
    for(int i = 0; i < 4; i++)
    {
        ours = ours && y[i] == 9.0f;
        mark = mark && y[i] == -7777.0f;
    }
    printf("%s\n", ours ? "served by hipconv" : mark ? "served by the stand-in" : "wrong result");

    miopenTensorDescriptor_t bd;
    CHECK(miopenCreateTensorDescriptor(&bd));
    CHECK(miopenSet4dTensorDescriptor(bd, miopenFloat, 1, 1, 1, 1));
    float scale = 1.0f, bias = 0.0f, mean = 0.0f, var = 1.0f, out[16] = {0};
    miopenStatus_t bn = miopenBatchNormalizationForwardInference(h, miopenBNSpatial, &alpha, &beta,
                                                                 xd, x, xd, out, bd, &scale, &bias,
                                                                 &mean, &var, 1e-5);
    if(bn == miopenStatusSuccess && out[0] == 4242.0f)
        printf("batch norm: served by the stand-in\n");
    else
        printf("batch norm: status %d\n", (int)bn);
    miopenDestroyTensorDescriptor(bd);
    miopenDestroyConvolutionDescriptor(cd);
    miopenDestroyTensorDescriptor(yd);
    miopenDestroyTensorDescriptor(wd);
    miopenDestroyTensorDescriptor(xd);
    miopenDestroy(h);
    return 0;
}
