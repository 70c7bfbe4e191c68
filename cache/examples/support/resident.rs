//! The process's resident memory, for the examples that report it (shared by `#[path]`).

/// Resident set size of this process (VmRSS) in MiB (Linux); 0 where /proc is missing.
pub fn resident_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
