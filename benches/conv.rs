//! Criterion benchmark over the anchor suite on the CPU backend (batch 1, f32, every
//! direction). `cargo bench --bench conv -- r50_l1` filters layers.

use criterion::{Criterion, criterion_group, criterion_main};
use hipconv::suite::{anchors, directions};
use hipconv::verify::{operands, test_values};
use hipconv::{Conv, DType, Scale};
use std::hint::black_box;

fn suite(c: &mut Criterion) {
    let cases = anchors(1, DType::F32, false).expect("suite builds");
    let mut group = c.benchmark_group("cpu_f32_n1");
    group.sample_size(10);
    for case in &cases {
        for dir in directions(case) {
            let p = &case.problem;
            let (ad, bd, od) = operands(p, dir);
            let to_f32 = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<_>>();
            let a = to_f32(test_values(ad.element_space().expect("size"), 1));
            let b = to_f32(test_values(bd.element_space().expect("size"), 2));
            let mut out = vec![0f32; od.element_space().expect("size")];
            let conv = Conv::new(p.clone());
            group.bench_function(format!("{}/{}", case.name, dir.name()), |bench| {
                bench.iter(|| {
                    conv.run(
                        dir,
                        black_box(&a),
                        black_box(&b),
                        &mut out,
                        Scale::default(),
                    )
                    .expect("runs")
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, suite);
criterion_main!(benches);
