//! Drives random sequences of C ABI calls from a byte stream: live, destroyed, NULL, garbage
//! and wrong-kind objects; random lengths, strides, types, modes, attributes and ids; NULL or
//! valid out-pointers; workspaces that are missing, small, misaligned or right.
//!
//! Every call must return a status without crashing. Buffers handed to the library always
//! cover what the descriptors say (sized with `miopenGetTensorNumBytes`), because the library
//! trusts the caller for that, as MIOpen does. Shared by the stable stress test
//! (`tests/ffi_stress.rs`) and the cargo-fuzz target (`fuzz/fuzz_targets/abi_sequence.rs`).

#![allow(dead_code)]

use hipconv::ffi::*;
use std::ffi::c_void;
use std::ptr::{null, null_mut};

/// Bytes that steer the driver; an exhausted source yields zeros.
pub trait Source {
    fn byte(&mut self) -> u8;

    fn below(&mut self, n: usize) -> usize {
        let v = (self.byte() as usize) << 8 | self.byte() as usize;
        v % n.max(1)
    }

    /// An integer in `lo..=hi`.
    fn int(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as usize) as i64
    }

    fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }
}

/// A byte slice as a source (for fuzzing).
pub struct Bytes<'a>(pub &'a [u8], pub usize);

impl Source for Bytes<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.0.get(self.1).copied().unwrap_or(0);
        self.1 += 1;
        b
    }
}

/// A seeded generator as a source (for the stable stress test).
pub struct SplitMix(pub u64);

impl Source for SplitMix {
    fn byte(&mut self) -> u8 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        (z ^ (z >> 31)) as u8
    }
}

const GARBAGE: usize = 0xdead_beef_0000;

/// Live objects plus destroyed ones (kept to be reused as stale pointers).
#[derive(Default)]
pub struct Driver {
    handles: Vec<usize>,
    tensors: Vec<usize>,
    convs: Vec<usize>,
    dead: Vec<usize>,
    /// Calls made and calls that returned success.
    pub calls: usize,
    pub successes: usize,
}

/// A zeroed, 8-byte aligned host buffer.
struct Buf(Vec<u64>);

impl Buf {
    fn new(bytes: usize) -> Self {
        Buf(vec![0; bytes.div_ceil(8) + 1])
    }
    fn ptr(&mut self) -> *mut c_void {
        self.0.as_mut_ptr() as *mut c_void
    }
    fn bytes(&self) -> usize {
        self.0.len() * 8
    }
}

impl Driver {
    fn record(&mut self, s: miopenStatus_t) {
        self.calls += 1;
        if s == miopenStatusSuccess {
            self.successes += 1;
        }
        // Every status is a known enumerator with a name.
        assert!((0..=10).contains(&s.0), "unexpected status {}", s.0);
    }

    fn pick(&self, src: &mut impl Source, live: &[usize]) -> usize {
        match src.below(10) {
            0 => 0,
            1 => GARBAGE,
            2 => self
                .dead
                .get(src.below(self.dead.len()))
                .copied()
                .unwrap_or(0),
            3 => {
                // An object of another kind.
                let all: Vec<usize> = [&self.handles, &self.tensors, &self.convs]
                    .into_iter()
                    .flatten()
                    .copied()
                    .collect();
                all.get(src.below(all.len())).copied().unwrap_or(GARBAGE)
            }
            _ => live.get(src.below(live.len())).copied().unwrap_or(0),
        }
    }

    fn handle(&self, src: &mut impl Source) -> miopenHandle_t {
        self.pick(src, &self.handles) as miopenHandle_t
    }
    fn tensor(&self, src: &mut impl Source) -> miopenTensorDescriptor_t {
        self.pick(src, &self.tensors) as miopenTensorDescriptor_t
    }
    fn conv(&self, src: &mut impl Source) -> miopenConvolutionDescriptor_t {
        self.pick(src, &self.convs) as miopenConvolutionDescriptor_t
    }

    fn remove(list: &mut Vec<usize>, src: &mut impl Source) -> Option<usize> {
        if list.is_empty() {
            None
        } else {
            let i = src.below(list.len());
            Some(list.swap_remove(i))
        }
    }

    /// A buffer covering `d` (or a small one when `d` is not a valid descriptor).
    fn buffer_for(d: miopenTensorDescriptor_t) -> Buf {
        let mut bytes = 0usize;
        // SAFETY: `bytes` is a valid out-pointer; the descriptor is looked up, not dereferenced.
        if unsafe { miopenGetTensorNumBytes(d, &mut bytes) } != miopenStatusSuccess {
            bytes = 64;
        }
        Buf::new(bytes)
    }

    /// A workspace choice: (buffer kept alive, pointer, claimed size).
    fn workspace(src: &mut impl Source, needed: usize) -> (Buf, *mut c_void, usize) {
        let mut buf = Buf::new(needed.max(16));
        let full = buf.bytes() - 8;
        match src.below(5) {
            0 => (buf, null_mut(), 0),
            1 => (buf, null_mut(), src.below(1 << 20)),
            2 => {
                let small = src.below(full);
                let p = buf.ptr();
                (buf, p, small)
            }
            3 => {
                // Misaligned but valid for the claimed size.
                let p = (buf.ptr() as *mut u8).wrapping_add(1) as *mut c_void;
                (buf, p, full - 1)
            }
            _ => {
                let p = buf.ptr();
                (buf, p, full)
            }
        }
    }

    fn ints(src: &mut impl Source, lo: i64, hi: i64) -> [i32; 8] {
        std::array::from_fn(|_| src.int(lo, hi) as i32)
    }

    /// Makes one random call.
    pub fn step(&mut self, src: &mut impl Source) {
        let op = src.below(30);
        if op >= 26 {
            // SAFETY: as below.
            unsafe { self.coherent(src) };
            return;
        }
        // SAFETY (whole match): every pointer argument is NULL, a live local of the right type
        // and size, or an object pointer the library only looks up; data buffers cover their
        // descriptors.
        unsafe {
            match op {
                0 => {
                    if self.handles.len() < 4 {
                        let mut h = null_mut();
                        let s = miopenCreate(if src.below(8) == 0 {
                            null_mut()
                        } else {
                            &mut h
                        });
                        self.record(s);
                        if s == miopenStatusSuccess {
                            self.handles.push(h as usize);
                        }
                    }
                }
                1 | 3 | 5 => {
                    let destroy: unsafe extern "C" fn(usize) -> miopenStatus_t = match op {
                        1 => destroy_handle,
                        3 => destroy_tensor,
                        _ => destroy_conv,
                    };
                    // Usually a live object; sometimes NULL, garbage, stale or another kind.
                    let odd = src.below(4) == 0;
                    let p = if odd { Some(self.pick(src, &[])) } else { None };
                    let list = match op {
                        1 => &mut self.handles,
                        3 => &mut self.tensors,
                        _ => &mut self.convs,
                    };
                    let live = match p {
                        Some(p) => list
                            .iter()
                            .position(|&q| q == p)
                            .map(|i| list.swap_remove(i)),
                        None => Self::remove(list, src),
                    };
                    match (live, p) {
                        (Some(p), _) => {
                            let s = destroy(p);
                            assert_eq!(s, miopenStatusSuccess);
                            self.record(s);
                            self.dead.push(p);
                            if self.dead.len() > 64 {
                                self.dead.remove(0);
                            }
                        }
                        (None, Some(p)) => {
                            let s = destroy(p);
                            self.record(s);
                        }
                        (None, None) => {}
                    }
                }
                2 => {
                    if self.tensors.len() < 12 {
                        let mut t = null_mut();
                        let s = miopenCreateTensorDescriptor(&mut t);
                        self.record(s);
                        self.tensors.push(t as usize);
                    }
                }
                4 => {
                    if self.convs.len() < 6 {
                        let mut c = null_mut();
                        let s = miopenCreateConvolutionDescriptor(&mut c);
                        self.record(s);
                        self.convs.push(c as usize);
                    }
                }
                6 => {
                    let t = self.tensor(src);
                    let dt = miopenDataType_t(src.int(-1, 10) as i32);
                    let v = Self::ints(src, -1, 5);
                    let s = miopenSet4dTensorDescriptor(t, dt, v[0], v[1], v[2], v[3]);
                    self.record(s);
                }
                7 => {
                    let t = self.tensor(src);
                    let dt = miopenDataType_t(src.int(-1, 7) as i32);
                    let v = Self::ints(src, 1, 4);
                    let st = Self::ints(src, -1, 40);
                    let s = miopenSet4dTensorDescriptorEx(
                        t, dt, v[0], v[1], v[2], v[3], st[0], st[1], st[2], st[3],
                    );
                    self.record(s);
                }
                8 | 9 => {
                    let t = self.tensor(src);
                    let dt = miopenDataType_t(src.int(-1, 7) as i32);
                    let nd = src.int(-1, 9) as i32;
                    let dims = Self::ints(src, 0, 5);
                    let packed = src.flag();
                    // Strides: packed-ish (descending products) or random.
                    let mut strides = Self::ints(src, 0, 40);
                    if packed {
                        let mut run = 1;
                        for i in (0..8).rev() {
                            strides[i] = run;
                            run *= dims[i].max(1);
                        }
                    }
                    let dims_p = if src.below(10) == 0 {
                        null()
                    } else {
                        dims.as_ptr()
                    };
                    let strides_p = if src.flag() { null() } else { strides.as_ptr() };
                    let s = if op == 8 {
                        miopenSetTensorDescriptor(t, dt, nd, dims_p, strides_p)
                    } else {
                        let d2: [usize; 8] = std::array::from_fn(|i| dims[i].max(0) as usize);
                        let s2: [usize; 8] = std::array::from_fn(|i| strides[i].max(0) as usize);
                        let d2p = if dims_p.is_null() {
                            null()
                        } else {
                            d2.as_ptr()
                        };
                        let s2p = if strides_p.is_null() {
                            null()
                        } else {
                            s2.as_ptr()
                        };
                        miopenSetTensorDescriptorV2(t, dt, nd, d2p, s2p)
                    };
                    self.record(s);
                }
                10 => {
                    let t = self.tensor(src);
                    let lens = Self::ints(src, 0, 4);
                    let layout = miopenTensorLayout_t(src.int(-1, 9) as i32);
                    let n = src.int(-1, 8) as i32;
                    let s = miopenSetNdTensorDescriptorWithLayout(
                        t,
                        miopenFloat,
                        layout,
                        lens.as_ptr(),
                        n,
                    );
                    self.record(s);
                }
                11 => {
                    let t = self.tensor(src);
                    let mut v = [0i32; 8];
                    let mut dt = miopenFloat;
                    let p = v.as_mut_ptr();
                    let null_some = src.flag();
                    let s = match src.below(4) {
                        0 => miopenGet4dTensorDescriptor(
                            t,
                            &mut dt,
                            p,
                            p.add(1),
                            p.add(2),
                            if null_some { null_mut() } else { p.add(3) },
                            p.add(4),
                            p.add(5),
                            p.add(6),
                            p.add(7),
                        ),
                        1 => {
                            miopenGetTensorDescriptorSize(t, if null_some { null_mut() } else { p })
                        }
                        2 => {
                            let mut strides = [0i32; 8];
                            miopenGetTensorDescriptor(
                                t,
                                &mut dt,
                                if null_some { null_mut() } else { p },
                                strides.as_mut_ptr(),
                            )
                        }
                        _ => {
                            let mut bytes = 0usize;
                            miopenGetTensorNumBytes(
                                t,
                                if null_some { null_mut() } else { &mut bytes },
                            )
                        }
                    };
                    self.record(s);
                }
                12 => {
                    let c = self.conv(src);
                    let v = Self::ints(src, -1, 3);
                    let mode = miopenConvolutionMode_t(src.int(-1, 4) as i32);
                    let s = miopenInitConvolutionDescriptor(
                        c, mode, v[0], v[1], v[2], v[3], v[4], v[5],
                    );
                    self.record(s);
                }
                13 => {
                    let c = self.conv(src);
                    let sd = src.int(-1, 7) as i32;
                    let pads = Self::ints(src, -1, 2);
                    let strides = Self::ints(src, 0, 3);
                    let dil = Self::ints(src, 0, 2);
                    let mode = miopenConvolutionMode_t(src.int(0, 3) as i32);
                    let pp = if src.below(10) == 0 {
                        null()
                    } else {
                        pads.as_ptr()
                    };
                    let s = miopenInitConvolutionNdDescriptor(
                        c,
                        sd,
                        pp,
                        strides.as_ptr(),
                        dil.as_ptr(),
                        mode,
                    );
                    self.record(s);
                }
                14 => {
                    let c = self.conv(src);
                    let (mut a, mut b, mut d) = ([0i32; 8], [0i32; 8], [0i32; 8]);
                    let mut mode = miopenConvolution;
                    let mut sd = 0;
                    let s = match src.below(3) {
                        0 => {
                            let p = a.as_mut_ptr();
                            miopenGetConvolutionDescriptor(
                                c,
                                &mut mode,
                                p,
                                p.add(1),
                                p.add(2),
                                p.add(3),
                                p.add(4),
                                p.add(5),
                            )
                        }
                        1 => miopenGetConvolutionNdDescriptor(
                            c,
                            src.int(-1, 7) as i32,
                            &mut sd,
                            a.as_mut_ptr(),
                            b.as_mut_ptr(),
                            if src.flag() {
                                null_mut()
                            } else {
                                d.as_mut_ptr()
                            },
                            &mut mode,
                        ),
                        _ => miopenGetConvolutionSpatialDim(
                            c,
                            if src.flag() { null_mut() } else { &mut sd },
                        ),
                    };
                    self.record(s);
                }
                15 => {
                    let c = self.conv(src);
                    let mut g = 0;
                    let s = if src.flag() {
                        miopenSetConvolutionGroupCount(c, src.int(-1, 4) as i32)
                    } else {
                        miopenGetConvolutionGroupCount(c, &mut g)
                    };
                    self.record(s);
                }
                16 => {
                    let c = self.conv(src);
                    let adj = Self::ints(src, -1, 2);
                    let s = if src.flag() {
                        miopenSetTransposeConvOutputPadding(c, adj[0], adj[1])
                    } else {
                        miopenSetTransposeConvNdOutputPadding(
                            c,
                            src.int(-1, 7) as i32,
                            adj.as_ptr(),
                        )
                    };
                    self.record(s);
                }
                17 => {
                    let c = self.conv(src);
                    let attr = miopenConvolutionAttrib_t(src.int(-1, 5) as i32);
                    let mut v = 0;
                    let s = if src.flag() {
                        miopenSetConvolutionAttribute(c, attr, src.int(-2, 3) as i32)
                    } else {
                        miopenGetConvolutionAttribute(c, attr, &mut v)
                    };
                    self.record(s);
                }
                18 => {
                    let c = self.conv(src);
                    let mut m = miopenConvolutionFindModeNormal;
                    let s = if src.flag() {
                        miopenSetConvolutionFindMode(
                            c,
                            miopenConvolutionFindMode_t(src.int(-1, 8) as i32),
                        )
                    } else {
                        miopenGetConvolutionFindMode(c, &mut m)
                    };
                    self.record(s);
                }
                19 => {
                    let (c, x, w) = (self.conv(src), self.tensor(src), self.tensor(src));
                    let mut v = [0i32; 8];
                    let p = v.as_mut_ptr();
                    let mut nd = 0;
                    let s = if src.flag() {
                        miopenGetConvolutionForwardOutputDim(
                            c,
                            x,
                            w,
                            p,
                            p.add(1),
                            p.add(2),
                            p.add(3),
                        )
                    } else {
                        miopenGetConvolutionNdForwardOutputDim(c, x, w, &mut nd, p)
                    };
                    self.record(s);
                }
                20..=23 => {
                    let h = self.handle(src);
                    let c = self.conv(src);
                    let (x, w, y) = (self.tensor(src), self.tensor(src), self.tensor(src));
                    self.convolution(src, op, h, c, [x, w, y]);
                }
                24 => {
                    let h = self.handle(src);
                    let (b, y) = (self.tensor(src), self.tensor(src));
                    let (mut bb, mut yb) = (Self::buffer_for(b), Self::buffer_for(y));
                    let (alpha, beta) = (src.int(-1, 2) as f64, src.int(-1, 1) as f64);
                    let ap = if src.below(8) == 0 {
                        null()
                    } else {
                        &alpha as *const f64 as *const c_void
                    };
                    let s = if src.flag() {
                        miopenConvolutionForwardBias(
                            h,
                            ap,
                            b,
                            bb.ptr(),
                            &beta as *const f64 as *const c_void,
                            y,
                            yb.ptr(),
                        )
                    } else {
                        miopenConvolutionBackwardBias(
                            h,
                            ap,
                            y,
                            yb.ptr(),
                            &beta as *const f64 as *const c_void,
                            b,
                            bb.ptr(),
                        )
                    };
                    self.record(s);
                }
                _ => {
                    let h = self.handle(src);
                    let mut stream = null_mut();
                    let mut t = 0f32;
                    let (mut a, mut b, mut c) = (0usize, 0usize, 0usize);
                    let s = match src.below(6) {
                        0 => miopenSetStream(h, src.below(1 << 16) as miopenAcceleratorQueue_t),
                        1 => miopenGetStream(h, if src.flag() { null_mut() } else { &mut stream }),
                        2 => miopenEnableProfiling(h, src.flag()),
                        3 => miopenGetKernelTime(h, if src.flag() { null_mut() } else { &mut t }),
                        4 => miopenGetVersion(&mut a, null_mut(), &mut c),
                        _ => {
                            let _ = miopenGetErrorString(miopenStatus_t(src.int(-3, 12) as i32));
                            miopenGetVersion(&mut a, &mut b, null_mut())
                        }
                    };
                    self.record(s);
                }
            }
        }
    }

    /// Workspace queries, Find, run-calls and immediate mode in a random direction.
    ///
    /// # Safety
    /// As [`Driver::step`].
    unsafe fn convolution(
        &mut self,
        src: &mut impl Source,
        op: usize,
        h: miopenHandle_t,
        c: miopenConvolutionDescriptor_t,
        [x, w, y]: [miopenTensorDescriptor_t; 3],
    ) {
        let dir = src.below(3);
        let mut size = 0usize;
        // SAFETY: valid out-pointer; objects are looked up.
        let s = unsafe {
            match dir {
                0 => miopenConvolutionForwardGetWorkSpaceSize(h, w, x, c, y, &mut size),
                1 => miopenConvolutionBackwardDataGetWorkSpaceSize(h, y, w, c, x, &mut size),
                _ => miopenConvolutionBackwardWeightsGetWorkSpaceSize(h, y, x, c, w, &mut size),
            }
        };
        self.record(s);
        if op == 20 {
            return;
        }
        let (mut xb, mut wb, mut yb) = (
            Self::buffer_for(x),
            Self::buffer_for(w),
            Self::buffer_for(y),
        );
        let (xp, wp, yp) = (xb.ptr(), wb.ptr(), yb.ptr());
        let null_data = src.below(10) == 0;
        let xp = if null_data { null_mut() } else { xp };
        let (_ws, wsp, wss) = Self::workspace(src, size);
        // SAFETY (all calls): buffers cover their descriptors; the workspace pointer is NULL
        // or valid for the claimed size; out-arrays have room for 4 results.
        unsafe {
            let s = match op {
                21 => {
                    let mut perf = [miopenConvAlgoPerf_t {
                        algo: 0,
                        time: 0.0,
                        memory: 0,
                    }; 4];
                    let mut n = 0;
                    let req = src.int(-1, 4) as i32;
                    let pp = if src.below(10) == 0 {
                        null_mut()
                    } else {
                        perf.as_mut_ptr()
                    };
                    match dir {
                        0 => miopenFindConvolutionForwardAlgorithm(
                            h,
                            x,
                            xp,
                            w,
                            wp,
                            c,
                            y,
                            yp,
                            req,
                            &mut n,
                            pp,
                            wsp,
                            wss,
                            src.flag(),
                        ),
                        1 => miopenFindConvolutionBackwardDataAlgorithm(
                            h, y, yp, w, wp, c, x, xp, req, &mut n, pp, wsp, wss, false,
                        ),
                        _ => miopenFindConvolutionBackwardWeightsAlgorithm(
                            h, y, yp, x, xp, c, w, wp, req, &mut n, pp, wsp, wss, false,
                        ),
                    }
                }
                22 => {
                    let (alpha, beta) = (src.int(-2, 2) as f64, src.int(-1, 1) as f64);
                    let a = &alpha as *const f64 as *const c_void;
                    let b = if src.below(10) == 0 {
                        null()
                    } else {
                        &beta as *const f64 as *const c_void
                    };
                    let algo = src.int(-1, 6) as i32;
                    match dir {
                        0 => miopenConvolutionForward(
                            h,
                            a,
                            x,
                            xp,
                            w,
                            wp,
                            c,
                            miopenConvFwdAlgorithm_t(algo),
                            b,
                            y,
                            yp,
                            wsp,
                            wss,
                        ),
                        1 => miopenConvolutionBackwardData(
                            h,
                            a,
                            y,
                            yp,
                            w,
                            wp,
                            c,
                            miopenConvBwdDataAlgorithm_t(algo),
                            b,
                            x,
                            xp,
                            wsp,
                            wss,
                        ),
                        _ => miopenConvolutionBackwardWeights(
                            h,
                            a,
                            y,
                            yp,
                            x,
                            xp,
                            c,
                            miopenConvBwdWeightsAlgorithm_t(algo),
                            b,
                            w,
                            wp,
                            wsp,
                            wss,
                        ),
                    }
                }
                _ => {
                    let mut count = 0usize;
                    let mut sols = [miopenConvSolution_t {
                        time: 0.0,
                        workspace_size: 0,
                        solution_id: 0,
                        algorithm: miopenConvolutionAlgoGEMM,
                    }; 4];
                    let id = [0u64, 1, 91, 97, 102, u64::MAX][src.below(6)];
                    let max = src.below(5);
                    let mut wsz = 0usize;
                    match (dir, src.below(5)) {
                        (0, 0) => {
                            miopenConvolutionForwardGetSolutionCount(h, w, x, c, y, &mut count)
                        }
                        (0, 1) => miopenConvolutionForwardGetSolution(
                            h,
                            w,
                            x,
                            c,
                            y,
                            max,
                            &mut count,
                            sols.as_mut_ptr(),
                        ),
                        (0, 2) => miopenConvolutionForwardGetSolutionWorkspaceSize(
                            h, w, x, c, y, id, &mut wsz,
                        ),
                        (0, 3) => miopenConvolutionForwardCompileSolution(h, w, x, c, y, id),
                        (0, _) => miopenConvolutionForwardImmediate(
                            h, w, wp, x, xp, c, y, yp, wsp, wss, id,
                        ),
                        (1, 0) => {
                            miopenConvolutionBackwardDataGetSolutionCount(h, y, w, c, x, &mut count)
                        }
                        (1, 1) => miopenConvolutionBackwardDataGetSolution(
                            h,
                            y,
                            w,
                            c,
                            x,
                            max,
                            null_mut(),
                            sols.as_mut_ptr(),
                        ),
                        (1, 2) => miopenConvolutionBackwardDataGetSolutionWorkspaceSize(
                            h, y, w, c, x, id, &mut wsz,
                        ),
                        (1, 3) => miopenConvolutionBackwardDataCompileSolution(h, y, w, c, x, id),
                        (1, _) => miopenConvolutionBackwardDataImmediate(
                            h, y, yp, w, wp, c, x, xp, wsp, wss, id,
                        ),
                        (_, 0) => miopenConvolutionBackwardWeightsGetSolutionCount(
                            h,
                            y,
                            x,
                            c,
                            w,
                            null_mut(),
                        ),
                        (_, 1) => miopenConvolutionBackwardWeightsGetSolution(
                            h,
                            y,
                            x,
                            c,
                            w,
                            max,
                            &mut count,
                            null_mut(),
                        ),
                        (_, 2) => miopenConvolutionBackwardWeightsGetSolutionWorkspaceSize(
                            h, y, x, c, w, id, &mut wsz,
                        ),
                        (_, 3) => {
                            miopenConvolutionBackwardWeightsCompileSolution(h, y, x, c, w, id)
                        }
                        (_, _) => miopenConvolutionBackwardWeightsImmediate(
                            h, y, yp, x, xp, c, w, wp, wsp, wss, id,
                        ),
                    }
                }
            };
            self.record(s);
        }
    }

    /// Sets up a consistent problem on live objects (random small geometry, type, layout and
    /// mode) and makes one convolution call on it, so that the computing paths run too.
    ///
    /// # Safety
    /// As [`Driver::step`].
    unsafe fn coherent(&mut self, src: &mut impl Source) {
        // SAFETY (whole body): out-pointers are live locals; objects are looked up.
        unsafe {
            while self.handles.is_empty() {
                let mut h = null_mut();
                assert_eq!(miopenCreate(&mut h), miopenStatusSuccess);
                self.handles.push(h as usize);
            }
            while self.convs.is_empty() {
                let mut c = null_mut();
                assert_eq!(
                    miopenCreateConvolutionDescriptor(&mut c),
                    miopenStatusSuccess
                );
                self.convs.push(c as usize);
            }
            while self.tensors.len() < 3 {
                let mut t = null_mut();
                assert_eq!(miopenCreateTensorDescriptor(&mut t), miopenStatusSuccess);
                self.tensors.push(t as usize);
            }
            let h = self.handles[src.below(self.handles.len())] as miopenHandle_t;
            let c = self.convs[src.below(self.convs.len())] as miopenConvolutionDescriptor_t;
            let i = src.below(self.tensors.len());
            let j = (i + 1 + src.below(self.tensors.len() - 1)) % self.tensors.len();
            let k = (0..self.tensors.len()).find(|&k| k != i && k != j).unwrap();
            let [x, w, y] = [i, j, k].map(|t| self.tensors[t] as miopenTensorDescriptor_t);
            let nsp = src.int(1, 3) as usize;
            let transpose = src.below(4) == 0;
            let dtype = [miopenHalf, miopenFloat, miopenBFloat16, miopenDouble][src.below(4)];
            let g = src.int(1, 2) as usize;
            let (cin, cout, n) = (
                g * src.int(1, 2) as usize,
                g * src.int(1, 2) as usize,
                src.int(1, 2) as usize,
            );
            let mut pads = [0i32; 3];
            let mut strides = [1i32; 3];
            let mut dil = [1i32; 3];
            let mut adj = [0i32; 3];
            let mut xd = vec![n, cin];
            let mut wd = if transpose {
                vec![cin, cout / g]
            } else {
                vec![cout, cin / g]
            };
            for a in 0..nsp {
                pads[a] = src.int(0, 1) as i32;
                strides[a] = src.int(1, 2) as i32;
                dil[a] = src.int(1, 2) as i32;
                adj[a] = src.int(0, strides[a] as i64 - 1) as i32;
                xd.push(src.int(1, 6) as usize);
                wd.push(src.int(1, 3) as usize);
            }
            let mode = if transpose {
                miopenTranspose
            } else {
                miopenConvolution
            };
            self.record(miopenInitConvolutionNdDescriptor(
                c,
                nsp as i32,
                pads.as_ptr(),
                strides.as_ptr(),
                dil.as_ptr(),
                mode,
            ));
            self.record(miopenSetConvolutionGroupCount(c, g as i32));
            if transpose {
                self.record(miopenSetTransposeConvNdOutputPadding(
                    c,
                    nsp as i32,
                    adj.as_ptr(),
                ));
            }
            let channels_last = src.flag();
            let strides_of = |dims: &[usize], last: bool| -> Vec<usize> {
                let mut order: Vec<usize> = (0..dims.len()).collect();
                if last {
                    order.remove(1);
                    order.push(1);
                }
                let mut st = vec![0; dims.len()];
                let mut run = 1;
                for &a in order.iter().rev() {
                    st[a] = run;
                    run *= dims[a];
                }
                st
            };
            let set = |t: miopenTensorDescriptor_t, dims: &[usize], last: bool| {
                let st = strides_of(dims, last);
                miopenSetTensorDescriptorV2(t, dtype, dims.len() as i32, dims.as_ptr(), st.as_ptr())
            };
            self.record(set(x, &xd, channels_last));
            self.record(set(w, &wd, false));
            let mut yd = [0i32; 8];
            let mut nd = 0;
            let s = miopenGetConvolutionNdForwardOutputDim(c, x, w, &mut nd, yd.as_mut_ptr());
            self.record(s);
            if s != miopenStatusSuccess {
                return;
            }
            let yd: Vec<usize> = yd[..nd as usize].iter().map(|&v| v as usize).collect();
            self.record(set(y, &yd, channels_last));
            let op = 20 + src.below(4);
            self.convolution(src, op, h, c, [x, w, y]);
            if src.below(4) == 0 {
                // Bias over y, described by w reshaped to [1, K, 1, …].
                let mut bd = vec![1usize; yd.len()];
                bd[1] = yd[1];
                self.record(set(w, &bd, false));
                let (mut bb, mut yb) = (Self::buffer_for(w), Self::buffer_for(y));
                let (alpha, beta) = (1.0f64, 0.0f64);
                let (a, b) = (
                    &alpha as *const f64 as *const c_void,
                    &beta as *const f64 as *const c_void,
                );
                let s = if src.flag() {
                    miopenConvolutionForwardBias(h, a, w, bb.ptr(), b, y, yb.ptr())
                } else {
                    miopenConvolutionBackwardBias(h, a, y, yb.ptr(), b, w, bb.ptr())
                };
                assert_eq!(s, miopenStatusSuccess);
                self.record(s);
            }
        }
    }

    /// Destroys everything still alive.
    pub fn finish(mut self) {
        // SAFETY: only live objects are destroyed, once each.
        unsafe {
            for h in self.handles.drain(..) {
                assert_eq!(miopenDestroy(h as miopenHandle_t), miopenStatusSuccess);
            }
            for t in self.tensors.drain(..) {
                assert_eq!(
                    miopenDestroyTensorDescriptor(t as miopenTensorDescriptor_t),
                    miopenStatusSuccess
                );
            }
            for c in self.convs.drain(..) {
                assert_eq!(
                    miopenDestroyConvolutionDescriptor(c as miopenConvolutionDescriptor_t),
                    miopenStatusSuccess
                );
            }
        }
    }
}

unsafe extern "C" fn destroy_handle(p: usize) -> miopenStatus_t {
    // SAFETY: the pointer is only looked up.
    unsafe { miopenDestroy(p as miopenHandle_t) }
}

unsafe extern "C" fn destroy_tensor(p: usize) -> miopenStatus_t {
    // SAFETY: the pointer is only looked up.
    unsafe { miopenDestroyTensorDescriptor(p as miopenTensorDescriptor_t) }
}

unsafe extern "C" fn destroy_conv(p: usize) -> miopenStatus_t {
    // SAFETY: the pointer is only looked up.
    unsafe { miopenDestroyConvolutionDescriptor(p as miopenConvolutionDescriptor_t) }
}
