/*
 * A C client written only against MIOpen's documented convolution API.
 *
 * For every case it runs forward, backward-data and backward-weights convolution through the
 * Find path (GetWorkSpaceSize -> Find -> legacy run-call) and the immediate path
 * (GetSolutionCount -> GetSolution -> Immediate), and compares each result with a naive
 * double-precision reference written here, on strided tensors of any layout.
 *
 * Usage: conv_client [--quick]    (--quick runs a small subset, e.g. under valgrind)
 * Prints "<N> passed, <M> failed" and exits with status 1 if anything failed.
 */
#include <hipconv/miopen.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DIMS 5

static int g_passed = 0;
static int g_failed = 0;

#define CHECK(call)                                                                            \
    do                                                                                         \
    {                                                                                          \
        miopenStatus_t st_ = (call);                                                           \
        if(st_ != miopenStatusSuccess)                                                         \
        {                                                                                      \
            fprintf(stderr, "%s:%d: %s -> %s\n", __FILE__, __LINE__, #call,                   \
                    miopenGetErrorString(st_));                                                \
            return -1;                                                                         \
        }                                                                                      \
    } while(0)

/* ---- element conversion ---------------------------------------------------------------- */

static uint16_t float_to_half(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    int32_t exp   = (int32_t)((x >> 23) & 0xff) - 127 + 15;
    uint32_t mant = x & 0x7fffffu;
    if(exp >= 31)
        return (uint16_t)(sign | 0x7c00u);
    if(exp <= 0)
    {
        if(exp < -10)
            return (uint16_t)sign;
        mant |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t half  = mant >> shift;
        uint32_t rem   = mant & ((1u << shift) - 1);
        uint32_t mid   = 1u << (shift - 1);
        if(rem > mid || (rem == mid && (half & 1)))
            half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)exp << 10) | (mant >> 13);
    uint32_t rem  = mant & 0x1fffu;
    if(rem > 0x1000u || (rem == 0x1000u && (half & 1)))
        half++;
    return (uint16_t)half;
}

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp  = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ffu;
    uint32_t x;
    if(exp == 0)
    {
        float f = ldexpf((float)mant, -24);
        return sign ? -f : f;
    }
    if(exp == 31)
        x = sign | 0x7f800000u | (mant << 13);
    else
        x = sign | ((exp - 15 + 127) << 23) | (mant << 13);
    float f;
    memcpy(&f, &x, 4);
    return f;
}

static uint16_t float_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

static float bf16_to_float(uint16_t b)
{
    uint32_t x = (uint32_t)b << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

static size_t type_size(miopenDataType_t t) { return t == miopenFloat ? 4 : 2; }

static const char* type_name(miopenDataType_t t)
{
    return t == miopenFloat ? "f32" : t == miopenHalf ? "f16" : "bf16";
}

static double load(const void* buf, miopenDataType_t t, size_t i)
{
    if(t == miopenFloat)
        return ((const float*)buf)[i];
    if(t == miopenHalf)
        return half_to_float(((const uint16_t*)buf)[i]);
    return bf16_to_float(((const uint16_t*)buf)[i]);
}

static void store(void* buf, miopenDataType_t t, size_t i, double v)
{
    if(t == miopenFloat)
        ((float*)buf)[i] = (float)v;
    else if(t == miopenHalf)
        ((uint16_t*)buf)[i] = float_to_half((float)v);
    else
        ((uint16_t*)buf)[i] = float_to_bf16((float)v);
}

/* ---- strided tensors ------------------------------------------------------------------- */

typedef struct
{
    int nd;              /* 4 or 5 */
    int dims[MAX_DIMS];  /* N, C, spatial... */
    int strides[MAX_DIMS];
    size_t space;        /* elements a buffer needs */
    size_t count;        /* logical elements */
} Tensor;

static void tensor_init(Tensor* t, int nd, const int* dims, int channels_last, int pad_rows)
{
    t->nd = nd;
    memcpy(t->dims, dims, sizeof(int) * (size_t)nd);
    int order[MAX_DIMS];
    int k = 0;
    order[k++] = 0;
    if(!channels_last)
        order[k++] = 1;
    for(int i = 2; i < nd; i++)
        order[k++] = i;
    if(channels_last)
        order[k++] = 1;
    int running = 1;
    for(int i = nd - 1; i >= 0; i--)
    {
        int axis         = order[i];
        t->strides[axis] = running;
        running *= dims[axis];
        /* An optional gap after the innermost dimension: a non-packed view. */
        if(i == nd - 1 && pad_rows)
            running += 3;
    }
    t->space = 1;
    t->count = 1;
    for(int i = 0; i < nd; i++)
    {
        t->space += (size_t)(dims[i] - 1) * (size_t)t->strides[i];
        t->count *= (size_t)dims[i];
    }
}

/* Offset of (n, c, p0, p1, p2) where spatial positions are front-padded to 3. */
static size_t offset(const Tensor* t, int n, int c, const int* pos3)
{
    size_t o = (size_t)n * t->strides[0] + (size_t)c * t->strides[1];
    int ns   = t->nd - 2;
    for(int i = 0; i < ns; i++)
        o += (size_t)pos3[3 - ns + i] * (size_t)t->strides[2 + i];
    return o;
}

/* ---- cases ----------------------------------------------------------------------------- */

typedef struct
{
    const char* name;
    miopenDataType_t dtype;
    int nsp; /* 2 or 3 spatial dims */
    int n, c, k, groups;
    int in[3], ker[3], pad[3], stride[3], dil[3];
    int extra[3];      /* dx larger than the forward formula needs (transposed-conv pattern) */
    int channels_last; /* NHWC / NDHWC strides */
    int strided_x;     /* x is a non-packed view */
    int depthwise_mode;
    int quick;
} Case;

/* Geometry front-padded to 3 spatial dims. */
typedef struct
{
    int in[3], ker[3], pad[3], stride[3], dil[3], out[3];
} Geom3;

static Geom3 geom3(const Case* cs)
{
    Geom3 g;
    int off = 3 - cs->nsp;
    for(int i = 0; i < 3; i++)
    {
        g.in[i] = g.ker[i] = g.stride[i] = g.dil[i] = 1;
        g.pad[i]                                    = 0;
    }
    for(int i = 0; i < cs->nsp; i++)
    {
        g.in[off + i]     = cs->in[i] + cs->extra[i];
        g.ker[off + i]    = cs->ker[i];
        g.pad[off + i]    = cs->pad[i];
        g.stride[off + i] = cs->stride[i];
        g.dil[off + i]    = cs->dil[i];
    }
    for(int i = 0; i < 3; i++)
    {
        int in = i < off ? 1 : cs->in[i - off];
        g.out[i] = (in + 2 * g.pad[i] - g.dil[i] * (g.ker[i] - 1) - 1) / g.stride[i] + 1;
    }
    return g;
}

/* Reference convolutions in double over strided tensors. */
typedef enum
{
    FWD = 0,
    BWD_DATA = 1,
    BWD_WEIGHTS = 2
} Dir;

static const char* dir_name(Dir d)
{
    return d == FWD ? "fwd" : d == BWD_DATA ? "bwd-data" : "bwd-weights";
}

/* Accumulates into a packed double array indexed by the output tensor's logical order. */
static size_t packed_index(const Tensor* t, int n, int c, const int* pos3)
{
    int ns    = t->nd - 2;
    size_t i  = (size_t)n * t->dims[1] + (size_t)c;
    for(int a = 0; a < ns; a++)
        i = i * (size_t)t->dims[2 + a] + (size_t)pos3[3 - ns + a];
    return i;
}

static void reference(const Case* cs, Dir dir, const Tensor* tx, const void* x, const Tensor* tw,
                      const void* w, const Tensor* ty, const void* y, double* out)
{
    Geom3 g = geom3(cs);
    int cg  = cs->c / cs->groups;
    int kg  = cs->k / cs->groups;
    const Tensor* to = dir == FWD ? ty : dir == BWD_DATA ? tx : tw;
    memset(out, 0, sizeof(double) * to->count);
    for(int n = 0; n < cs->n; n++)
        for(int k = 0; k < cs->k; k++)
        {
            int grp = k / kg;
            int o[3];
            for(o[0] = 0; o[0] < g.out[0]; o[0]++)
                for(o[1] = 0; o[1] < g.out[1]; o[1]++)
                    for(o[2] = 0; o[2] < g.out[2]; o[2]++)
                    {
                        double dyv = dir == FWD ? 0.0 : load(y, cs->dtype, offset(ty, n, k, o));
                        double acc = 0.0;
                        for(int cc = 0; cc < cg; cc++)
                        {
                            int c = grp * cg + cc;
                            int r[3];
                            for(r[0] = 0; r[0] < g.ker[0]; r[0]++)
                                for(r[1] = 0; r[1] < g.ker[1]; r[1]++)
                                    for(r[2] = 0; r[2] < g.ker[2]; r[2]++)
                                    {
                                        int ip[3];
                                        int inside = 1;
                                        for(int a = 0; a < 3; a++)
                                        {
                                            ip[a] = o[a] * g.stride[a] - g.pad[a] + r[a] * g.dil[a];
                                            if(ip[a] < 0 || ip[a] >= g.in[a])
                                                inside = 0;
                                        }
                                        if(!inside)
                                            continue;
                                        size_t wo = offset(tw, k, cc, r);
                                        if(dir == FWD)
                                            acc += load(x, cs->dtype, offset(tx, n, c, ip)) *
                                                   load(w, cs->dtype, wo);
                                        else if(dir == BWD_DATA)
                                            out[packed_index(tx, n, c, ip)] +=
                                                dyv * load(w, cs->dtype, wo);
                                        else
                                            out[packed_index(tw, k, cc, r)] +=
                                                dyv * load(x, cs->dtype, offset(tx, n, c, ip));
                                    }
                        }
                        if(dir == FWD)
                            out[packed_index(ty, n, k, o)] = acc;
                    }
        }
}

static unsigned g_seed = 12345u;

/* Values on a 1/64 grid in [-1, 1): exact in every type. */
static void fill(void* buf, const Tensor* t, miopenDataType_t dt, double gap_value)
{
    for(size_t i = 0; i < t->space; i++)
        store(buf, dt, i, gap_value);
    int pos[3] = {0, 0, 0};
    int ns     = t->nd - 2;
    size_t total = t->count;
    for(size_t lin = 0; lin < total; lin++)
    {
        size_t rem = lin;
        int idx[MAX_DIMS];
        for(int a = t->nd - 1; a >= 0; a--)
        {
            idx[a] = (int)(rem % (size_t)t->dims[a]);
            rem /= (size_t)t->dims[a];
        }
        for(int a = 0; a < 3; a++)
            pos[a] = 0;
        for(int a = 0; a < ns; a++)
            pos[3 - ns + a] = idx[2 + a];
        g_seed      = g_seed * 1103515245u + 12345u;
        double v    = (double)((int)((g_seed >> 16) % 128u) - 64) / 64.0;
        store(buf, dt, offset(t, idx[0], idx[1], pos), v);
    }
}

static int compare(const Case* cs, Dir dir, const char* path, const Tensor* t, const void* got,
                   const double* want)
{
    double tol = cs->dtype == miopenFloat ? 1e-5 : cs->dtype == miopenHalf ? 2e-3 : 1.6e-2;
    double scale = 1e-3, err = 0.0;
    for(size_t i = 0; i < t->count; i++)
        if(fabs(want[i]) > scale)
            scale = fabs(want[i]);
    int pos[3];
    int ns = t->nd - 2;
    for(size_t lin = 0; lin < t->count; lin++)
    {
        size_t rem = lin;
        int idx[MAX_DIMS];
        for(int a = t->nd - 1; a >= 0; a--)
        {
            idx[a] = (int)(rem % (size_t)t->dims[a]);
            rem /= (size_t)t->dims[a];
        }
        for(int a = 0; a < 3; a++)
            pos[a] = 0;
        for(int a = 0; a < ns; a++)
            pos[3 - ns + a] = idx[2 + a];
        double g = load(got, cs->dtype, offset(t, idx[0], idx[1], pos));
        double e = isnan(g) ? INFINITY : fabs(g - want[lin]) / scale;
        if(e > err)
            err = e;
    }
    int ok = err <= tol;
    if(ok)
        g_passed++;
    else
        g_failed++;
    if(!ok || getenv("CONV_CLIENT_VERBOSE"))
        printf("%s %-28s %-4s %-11s %-9s max rel err %.3g (tol %.3g)\n", ok ? "ok  " : "FAIL",
               cs->name, type_name(cs->dtype), dir_name(dir), path, err, tol);
    return ok;
}

static int set_tensor(miopenTensorDescriptor_t d, miopenDataType_t dt, const Tensor* t,
                      int use_layout_api)
{
    if(use_layout_api)
    {
        miopenTensorLayout_t layout = t->nd == 4 ? miopenTensorNHWC : miopenTensorNDHWC;
        CHECK(miopenSetNdTensorDescriptorWithLayout(d, dt, layout, t->dims, t->nd));
    }
    else
    {
        CHECK(miopenSetTensorDescriptor(d, dt, t->nd, t->dims, t->strides));
    }
    /* Read it back. */
    miopenDataType_t got_t;
    int dims[MAX_DIMS], strides[MAX_DIMS], nd = 0;
    CHECK(miopenGetTensorDescriptorSize(d, &nd));
    CHECK(miopenGetTensorDescriptor(d, &got_t, dims, strides));
    size_t bytes = 0;
    CHECK(miopenGetTensorNumBytes(d, &bytes));
    if(nd != t->nd || got_t != dt || memcmp(dims, t->dims, sizeof(int) * (size_t)nd) != 0 ||
       memcmp(strides, t->strides, sizeof(int) * (size_t)nd) != 0 ||
       bytes != t->space * type_size(dt))
    {
        fprintf(stderr, "tensor descriptor read-back differs\n");
        return -1;
    }
    return 0;
}

static void* xmalloc(size_t bytes)
{
    void* p = malloc(bytes ? bytes : 1);
    if(!p)
    {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

static int run_case(miopenHandle_t h, const Case* cs)
{
    int nd  = cs->nsp + 2;
    Geom3 g = geom3(cs);
    int xd[MAX_DIMS] = {cs->n, cs->c}, wd[MAX_DIMS] = {cs->k, cs->c / cs->groups},
        yd[MAX_DIMS] = {cs->n, cs->k};
    for(int i = 0; i < cs->nsp; i++)
    {
        xd[2 + i] = cs->in[i] + cs->extra[i];
        wd[2 + i] = cs->ker[i];
        yd[2 + i] = g.out[3 - cs->nsp + i];
    }
    Tensor tx, tw, ty;
    tensor_init(&tx, nd, xd, cs->channels_last, cs->strided_x);
    tensor_init(&tw, nd, wd, cs->channels_last, 0);
    tensor_init(&ty, nd, yd, cs->channels_last, 0);

    miopenTensorDescriptor_t dx, dw, dy, dtmp;
    miopenConvolutionDescriptor_t conv;
    CHECK(miopenCreateTensorDescriptor(&dx));
    CHECK(miopenCreateTensorDescriptor(&dw));
    CHECK(miopenCreateTensorDescriptor(&dy));
    CHECK(miopenCreateTensorDescriptor(&dtmp));
    CHECK(miopenCreateConvolutionDescriptor(&conv));
    int layout_api = cs->channels_last && !cs->strided_x;
    if(set_tensor(dx, cs->dtype, &tx, 0) || set_tensor(dw, cs->dtype, &tw, layout_api) ||
       set_tensor(dy, cs->dtype, &ty, layout_api))
        return -1;
    miopenConvolutionMode_t mode = cs->depthwise_mode ? miopenDepthwise : miopenConvolution;
    if(cs->nsp == 2 && !cs->depthwise_mode)
    {
        CHECK(miopenInitConvolutionDescriptor(conv, mode, cs->pad[0], cs->pad[1], cs->stride[0],
                                              cs->stride[1], cs->dil[0], cs->dil[1]));
    }
    else
    {
        CHECK(miopenInitConvolutionNdDescriptor(conv, cs->nsp, cs->pad, cs->stride, cs->dil, mode));
    }
    CHECK(miopenSetConvolutionGroupCount(conv, cs->groups));
    CHECK(miopenSetConvolutionAttribute(conv, MIOPEN_CONVOLUTION_ATTRIB_DETERMINISTIC, 1));

    /* The library's output size agrees with ours (for the forward formula's input). */
    if(!cs->extra[0] && !cs->extra[1] && !cs->extra[2])
    {
        int out_nd = 0, out[MAX_DIMS];
        CHECK(miopenGetConvolutionNdForwardOutputDim(conv, dx, dw, &out_nd, out));
        if(out_nd != nd || memcmp(out, yd, sizeof(int) * (size_t)nd) != 0)
        {
            fprintf(stderr, "%s: output dims differ\n", cs->name);
            return -1;
        }
    }

    size_t es = type_size(cs->dtype);
    void* x   = xmalloc(tx.space * es);
    void* w   = xmalloc(tw.space * es);
    void* y   = xmalloc(ty.space * es);
    fill(x, &tx, cs->dtype, 0.0);
    fill(w, &tw, cs->dtype, 0.0);
    fill(y, &ty, cs->dtype, 0.0);
    size_t max_count = tx.count > ty.count ? tx.count : ty.count;
    if(tw.count > max_count)
        max_count = tw.count;
    double* want = xmalloc(sizeof(double) * max_count);

    for(int d = 0; d < 3; d++)
    {
        Dir dir          = (Dir)d;
        const Tensor* to = dir == FWD ? &ty : dir == BWD_DATA ? &tx : &tw;
        void* outbuf     = xmalloc(to->space * es);
        /* The inputs of each direction are the buffers filled above. */
        reference(cs, dir, &tx, x, &tw, w, &ty, y, want);
        for(int path = 0; path < 2; path++)
        {
            /* Poison the output: every element must be overwritten. */
            for(size_t i = 0; i < to->space; i++)
                store(outbuf, cs->dtype, i, 1000.0);
            if(path == 0)
            {
                size_t ws_size = 0;
                if(dir == FWD)
                    CHECK(miopenConvolutionForwardGetWorkSpaceSize(h, dw, dx, conv, dy, &ws_size));
                else if(dir == BWD_DATA)
                    CHECK(miopenConvolutionBackwardDataGetWorkSpaceSize(h, dy, dw, conv, dx,
                                                                        &ws_size));
                else
                    CHECK(miopenConvolutionBackwardWeightsGetWorkSpaceSize(h, dy, dx, conv, dw,
                                                                           &ws_size));
                void* ws = xmalloc(ws_size);
                miopenConvAlgoPerf_t perf;
                int returned = 0;
                if(dir == FWD)
                    CHECK(miopenFindConvolutionForwardAlgorithm(h, dx, x, dw, w, conv, dy, outbuf, 1,
                                                                &returned, &perf, ws, ws_size, 0));
                else if(dir == BWD_DATA)
                    CHECK(miopenFindConvolutionBackwardDataAlgorithm(
                        h, dy, y, dw, w, conv, dx, outbuf, 1, &returned, &perf, ws, ws_size, 0));
                else
                    CHECK(miopenFindConvolutionBackwardWeightsAlgorithm(
                        h, dy, y, dx, x, conv, dw, outbuf, 1, &returned, &perf, ws, ws_size, 0));
                if(returned != 1 || perf.fwd_algo != miopenConvolutionFwdAlgoGEMM ||
                   !(perf.time > 0.0f) || perf.memory > ws_size)
                {
                    fprintf(stderr, "%s: unexpected Find result\n", cs->name);
                    return -1;
                }
                for(size_t i = 0; i < to->space; i++)
                    store(outbuf, cs->dtype, i, 1000.0);
                const float alpha = 1.0f, beta = 0.0f;
                if(dir == FWD)
                    CHECK(miopenConvolutionForward(h, &alpha, dx, x, dw, w, conv, perf.fwd_algo,
                                                   &beta, dy, outbuf, ws, perf.memory));
                else if(dir == BWD_DATA)
                    CHECK(miopenConvolutionBackwardData(h, &alpha, dy, y, dw, w, conv,
                                                        perf.bwd_data_algo, &beta, dx, outbuf, ws,
                                                        perf.memory));
                else
                    CHECK(miopenConvolutionBackwardWeights(h, &alpha, dy, y, dx, x, conv,
                                                           perf.bwd_weights_algo, &beta, dw,
                                                           outbuf, ws, perf.memory));
                free(ws);
                compare(cs, dir, "find", to, outbuf, want);
            }
            else
            {
                size_t count = 0, got = 0;
                miopenConvSolution_t sol[10];
                if(dir == FWD)
                {
                    CHECK(miopenConvolutionForwardGetSolutionCount(h, dw, dx, conv, dy, &count));
                    CHECK(miopenConvolutionForwardGetSolution(h, dw, dx, conv, dy, 10, &got, sol));
                }
                else if(dir == BWD_DATA)
                {
                    CHECK(miopenConvolutionBackwardDataGetSolutionCount(h, dy, dw, conv, dx,
                                                                        &count));
                    CHECK(miopenConvolutionBackwardDataGetSolution(h, dy, dw, conv, dx, 10, &got,
                                                                   sol));
                }
                else
                {
                    CHECK(miopenConvolutionBackwardWeightsGetSolutionCount(h, dy, dx, conv, dw,
                                                                           &count));
                    CHECK(miopenConvolutionBackwardWeightsGetSolution(h, dy, dx, conv, dw, 10, &got,
                                                                      sol));
                }
                if(count < 1 || count > 10 || got < 1 || got > count)
                {
                    fprintf(stderr, "%s: unexpected solution count\n", cs->name);
                    return -1;
                }
                void* ws = xmalloc(sol[0].workspace_size);
                if(dir == FWD)
                {
                    CHECK(miopenConvolutionForwardCompileSolution(h, dw, dx, conv, dy,
                                                                  sol[0].solution_id));
                    CHECK(miopenConvolutionForwardImmediate(h, dw, w, dx, x, conv, dy, outbuf, ws,
                                                            sol[0].workspace_size,
                                                            sol[0].solution_id));
                }
                else if(dir == BWD_DATA)
                    CHECK(miopenConvolutionBackwardDataImmediate(h, dy, y, dw, w, conv, dx, outbuf,
                                                                 ws, sol[0].workspace_size,
                                                                 sol[0].solution_id));
                else
                    CHECK(miopenConvolutionBackwardWeightsImmediate(h, dy, y, dx, x, conv, dw,
                                                                    outbuf, ws,
                                                                    sol[0].workspace_size,
                                                                    sol[0].solution_id));
                free(ws);
                compare(cs, dir, "immediate", to, outbuf, want);
            }
        }
        free(outbuf);
    }
    free(want);
    free(x);
    free(w);
    free(y);
    CHECK(miopenDestroyTensorDescriptor(dx));
    CHECK(miopenDestroyTensorDescriptor(dw));
    CHECK(miopenDestroyTensorDescriptor(dy));
    CHECK(miopenDestroyTensorDescriptor(dtmp));
    CHECK(miopenDestroyConvolutionDescriptor(conv));
    return 0;
}

/* A few error paths a C caller can rely on. */
static int check_errors(miopenHandle_t h)
{
    int ok = 1;
    ok &= miopenCreate(NULL) == miopenStatusBadParm;
    ok &= miopenDestroy(NULL) == miopenStatusSuccess;
    ok &= miopenDestroyTensorDescriptor(NULL) == miopenStatusSuccess;
    ok &= miopenSetStream(NULL, NULL) == miopenStatusBadParm;
    ok &= strcmp(miopenGetErrorString(miopenStatusNotImplemented), "miopenStatusNotImplemented") == 0;
    size_t major = 0, minor = 0, patch = 0;
    ok &= miopenGetVersion(&major, &minor, &patch) == miopenStatusSuccess && major == 3;
    miopenTensorDescriptor_t t;
    ok &= miopenCreateTensorDescriptor(&t) == miopenStatusSuccess;
    ok &= miopenSetTensorDescriptor(t, miopenFloat, 0, NULL, NULL) == miopenStatusInvalidValue;
    ok &= miopenDestroyTensorDescriptor(t) == miopenStatusSuccess;
    ok &= miopenSet4dTensorDescriptor(t, miopenFloat, 1, 1, 1, 1) == miopenStatusBadParm;
    miopenAcceleratorQueue_t s = NULL;
    ok &= miopenGetStream(h, &s) == miopenStatusSuccess;
    if(ok)
        g_passed++;
    else
    {
        g_failed++;
        printf("FAIL error-path checks\n");
    }
    return 0;
}

#define C2(a, b) {a, b, 0}
#define C3(a, b, c) {a, b, c}

int main(int argc, char** argv)
{
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    const Case cases[] = {
        /* name, dtype, nsp, n, c, k, g, in, ker, pad, stride, dil, extra, nhwc, strided_x,
           depthwise, quick */
        {"plain 3x3", miopenFloat, 2, 2, 3, 4, 1, C2(7, 6), C2(3, 3), C2(1, 1), C2(1, 1), C2(1, 1),
         C2(0, 0), 0, 0, 0, 1},
        {"stride+asym pad", miopenFloat, 2, 2, 4, 5, 1, C2(11, 9), C2(3, 2), C2(1, 0), C2(2, 3),
         C2(1, 1), C2(0, 0), 0, 0, 0, 0},
        {"dilation", miopenFloat, 2, 1, 3, 4, 1, C2(12, 10), C2(3, 3), C2(2, 1), C2(1, 1),
         C2(2, 3), C2(0, 0), 0, 0, 0, 0},
        {"groups", miopenFloat, 2, 2, 6, 9, 3, C2(7, 7), C2(3, 3), C2(1, 1), C2(1, 1), C2(1, 1),
         C2(0, 0), 0, 0, 0, 0},
        {"depthwise NHWC", miopenFloat, 2, 2, 4, 8, 4, C2(8, 7), C2(3, 3), C2(1, 1), C2(2, 1),
         C2(1, 1), C2(0, 0), 1, 0, 1, 1},
        {"NHWC groups+stride", miopenFloat, 2, 2, 8, 4, 2, C2(9, 9), C2(3, 3), C2(1, 1), C2(2, 2),
         C2(1, 1), C2(0, 0), 1, 0, 0, 0},
        {"strided view x", miopenFloat, 2, 2, 3, 4, 1, C2(6, 5), C2(3, 3), C2(1, 1), C2(1, 1),
         C2(1, 1), C2(0, 0), 0, 1, 0, 0},
        {"pointwise", miopenFloat, 2, 2, 8, 6, 1, C2(5, 5), C2(1, 1), C2(0, 0), C2(1, 1), C2(1, 1),
         C2(0, 0), 0, 0, 0, 0},
        {"bwd-data larger dx", miopenFloat, 2, 2, 3, 4, 1, C2(9, 9), C2(3, 3), C2(1, 1), C2(2, 2),
         C2(1, 1), C2(1, 1), 0, 0, 0, 0},
        {"3-D", miopenFloat, 3, 1, 2, 3, 1, C3(5, 6, 4), C3(3, 3, 2), C3(1, 1, 0), C3(1, 2, 1),
         C3(1, 1, 1), C3(0, 0, 0), 0, 0, 0, 1},
        {"3-D NDHWC groups dil", miopenFloat, 3, 2, 4, 4, 2, C3(6, 5, 5), C3(2, 3, 2),
         C3(1, 1, 0), C3(1, 1, 2), C3(2, 1, 1), C3(0, 0, 0), 1, 0, 0, 0},
        {"f16 groups", miopenHalf, 2, 2, 4, 4, 2, C2(7, 7), C2(3, 3), C2(1, 1), C2(1, 1),
         C2(1, 1), C2(0, 0), 0, 0, 0, 1},
        {"f16 NHWC stride dil", miopenHalf, 2, 2, 3, 5, 1, C2(10, 9), C2(3, 3), C2(2, 1),
         C2(2, 2), C2(2, 1), C2(0, 0), 1, 0, 0, 0},
        {"f16 3-D", miopenHalf, 3, 1, 3, 2, 1, C3(4, 5, 5), C3(2, 3, 3), C3(0, 1, 1),
         C3(1, 1, 1), C3(1, 1, 1), C3(0, 0, 0), 0, 0, 0, 0},
        {"bf16 plain", miopenBFloat16, 2, 2, 3, 4, 1, C2(7, 6), C2(3, 3), C2(1, 1), C2(1, 1),
         C2(1, 1), C2(0, 0), 0, 0, 0, 1},
        {"bf16 NHWC groups", miopenBFloat16, 2, 2, 6, 6, 3, C2(8, 8), C2(3, 3), C2(1, 1),
         C2(2, 2), C2(1, 1), C2(0, 0), 1, 0, 0, 0},
        {"bf16 3-D NDHWC", miopenBFloat16, 3, 1, 2, 4, 1, C3(4, 5, 4), C3(2, 2, 3), C3(1, 0, 1),
         C3(2, 1, 1), C3(1, 2, 1), C3(0, 0, 0), 1, 0, 0, 0},
    };
    miopenHandle_t h;
    CHECK(miopenCreate(&h));
    CHECK(miopenSetStream(h, NULL));
    check_errors(h);
    for(size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    {
        if(quick && !cases[i].quick)
            continue;
        if(run_case(h, &cases[i]) != 0)
        {
            printf("FAIL %s: setup or call failed\n", cases[i].name);
            g_failed++;
        }
    }
    CHECK(miopenDestroy(h));
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}
