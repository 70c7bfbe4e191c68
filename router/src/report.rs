//! `frugal report`: the savings endpoint as a table a finance person can read.

use std::fmt::Write;

use crate::ledger::{SavingsReport, Totals};

/// Renders a savings report as a plain-text table.
pub fn render(report: &SavingsReport) -> String {
    let mut out = String::new();
    let t = &report.total;
    let _ = writeln!(
        out,
        "frugal savings over {} ({} request{})\n",
        span(report.window_seconds),
        t.requests,
        if t.requests == 1 { "" } else { "s" }
    );
    let _ = writeln!(
        out,
        "{:<16} {:>9} {:>12} {:>12} {:>12} {:>7} {:>12} {:>12}",
        "tenant",
        "requests",
        "baseline $",
        "actual $",
        "saved $",
        "saved",
        "base $/req",
        "actual $/req"
    );
    row(&mut out, "TOTAL", t);
    for (tenant, totals) in &report.tenants {
        row(&mut out, tenant, totals);
    }
    let _ = writeln!(out, "\nsaved by lever (all tenants):");
    for (lever, saved) in [
        ("trim", t.by_lever.trim),
        ("cache", t.by_lever.cache),
        ("route", t.by_lever.route),
        ("prompt_cache", t.by_lever.prompt_cache),
    ] {
        let _ = writeln!(
            out,
            "  {lever:<12} {:>14} {:>7}",
            money(saved),
            percent(saved, t.baseline_usd)
        );
    }
    let _ = writeln!(
        out,
        "\ncache hits {}   escalations {}   trimmed tokens {}   upstream calls {}",
        t.cache_hits, t.escalations, t.trimmed_tokens, t.upstream_attempts
    );
    if t.upstream_input_tokens > 0 {
        let _ = writeln!(
            out,
            "provider prompt cache: {} of {} input tokens read from it ({}), {} written to it",
            t.prompt_cached_tokens,
            t.upstream_input_tokens,
            percent(
                t.prompt_cached_tokens as f64,
                t.upstream_input_tokens as f64
            ),
            t.prompt_cache_write_tokens
        );
    }
    out
}

fn row(out: &mut String, name: &str, t: &Totals) {
    let per = |usd: f64| {
        if t.requests == 0 {
            0.0
        } else {
            usd / t.requests as f64
        }
    };
    let _ = writeln!(
        out,
        "{:<16} {:>9} {:>12} {:>12} {:>12} {:>7} {:>12} {:>12}",
        name,
        t.requests,
        money(t.baseline_usd),
        money(t.actual_usd),
        money(t.saved_usd),
        percent(t.saved_usd, t.baseline_usd),
        money(per(t.baseline_usd)),
        money(per(t.actual_usd)),
    );
}

fn money(usd: f64) -> String {
    format!("{usd:.6}")
}

fn percent(part: f64, whole: f64) -> String {
    if whole == 0.0 {
        "-".into()
    } else {
        format!("{:.1}%", 100.0 * part / whole)
    }
}

fn span(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}
