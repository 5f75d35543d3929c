//! Plain-text tables for the CLI.

use hipconv::verify::{BenchRecord, VerifyRecord};

pub fn print_verify(records: &[VerifyRecord]) {
    println!(
        "{:<16} {:<44} {:<8} {:<5} {:>10} {:>9} {:>9} {:>9}  ",
        "case", "problem", "dir", "dtype", "max relerr", "tolerance", "ms", "GFLOP/s"
    );
    for r in records {
        println!(
            "{:<16} {:<44} {:<8} {:<5} {:>10.2e} {:>9.1e} {:>9.2} {:>9.1}  {}",
            r.name,
            r.problem,
            r.direction,
            r.dtype.name(),
            r.max_rel_error,
            r.tolerance,
            r.ms,
            r.gflops,
            if r.passed { "ok" } else { "FAIL" }
        );
    }
}

pub fn print_bench(records: &[BenchRecord]) {
    println!(
        "{:<14} {:<8} {:<5} {:>10} {:>9} {:>12}",
        "layer", "dir", "dtype", "ms", "GFLOP/s", "workspace"
    );
    for r in records {
        println!(
            "{:<14} {:<8} {:<5} {:>10.3} {:>9.1} {:>12}",
            r.name,
            r.direction,
            r.dtype.name(),
            r.ms,
            r.gflops,
            r.workspace_bytes
        );
    }
}
