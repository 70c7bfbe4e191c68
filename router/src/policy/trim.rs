//! The `trim:` section, checked.

use super::compile::Errors;
use super::raw::RawTrim;
use crate::trim::{Strategy, Tokenizer};

/// Whether trimming changes requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrimMode {
    /// No trimming.
    Off,
    /// Trims are computed and counted; requests go out unchanged.
    Shadow,
    /// Context is trimmed.
    On,
}

impl TrimMode {
    /// The metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Shadow => "shadow",
            Self::On => "on",
        }
    }
}

/// Checked trim settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrimPolicy {
    /// Off, shadow or on.
    pub mode: TrimMode,
    /// Most tokens a request's context keeps.
    pub max_context_tokens: usize,
    /// Chunks every document keeps when the cap allows.
    pub min_keep_per_document: usize,
    /// Tag names marking context in user messages.
    pub markers: Vec<String>,
    /// Whether tool messages are context.
    pub tool_messages: bool,
    /// Tokenizer of the cap.
    pub tokenizer: Tokenizer,
    /// How chunks are ranked.
    pub strategy: Strategy,
}

impl Default for TrimPolicy {
    fn default() -> Self {
        Self {
            mode: TrimMode::Off,
            max_context_tokens: 1500,
            min_keep_per_document: 1,
            markers: vec!["document".into(), "context".into()],
            tool_messages: true,
            tokenizer: Tokenizer::O200kBase,
            strategy: Strategy::FrugalLexical,
        }
    }
}

/// Checks the `trim:` section.
pub(super) fn compile_trim(raw: Option<&RawTrim>, errors: &mut Errors) -> TrimPolicy {
    let defaults = TrimPolicy::default();
    let Some(raw) = raw else { return defaults };
    let mode = match raw.mode.as_ref().map(|m| m.name()) {
        None | Some("on") => TrimMode::On,
        Some("off") => TrimMode::Off,
        Some("shadow") => TrimMode::Shadow,
        Some(other) => {
            errors.push(
                "trim.mode",
                format!("`{other}` is not a mode: use off, shadow or on"),
            );
            TrimMode::Off
        }
    };
    if raw.max_context_tokens == 0 {
        errors.push("trim.max_context_tokens", "must be at least 1");
    }
    let markers = raw.markers.clone().unwrap_or(defaults.markers);
    for marker in &markers {
        let valid = !marker.is_empty()
            && marker
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            errors.push(
                "trim.markers",
                format!("`{marker}` is not a tag name (letters, digits, `_`, `-`)"),
            );
        }
    }
    let tool_messages = raw.tool_messages.unwrap_or(true);
    if markers.is_empty() && !tool_messages && mode != TrimMode::Off {
        errors.push(
            "trim.markers",
            "no markers and `tool_messages: false` leave nothing to trim: name a marker, or set `mode: off`",
        );
    }
    let tokenizer = match raw.tokenizer.as_deref() {
        None | Some("o200k_base") => Tokenizer::O200kBase,
        Some("cl100k_base") => Tokenizer::Cl100kBase,
        Some(other) => {
            errors.push(
                "trim.tokenizer",
                format!("`{other}` is not a tokenizer: use o200k_base or cl100k_base"),
            );
            Tokenizer::O200kBase
        }
    };
    let strategy = match raw.strategy.as_deref() {
        None | Some("frugal_lexical") => Strategy::FrugalLexical,
        Some("frugal") => Strategy::Frugal,
        Some(other) => {
            errors.push(
                "trim.strategy",
                format!("`{other}` is not a strategy: use frugal_lexical or frugal"),
            );
            Strategy::FrugalLexical
        }
    };
    TrimPolicy {
        mode,
        strategy,
        max_context_tokens: raw.max_context_tokens,
        min_keep_per_document: raw.min_keep_per_document.unwrap_or(1),
        markers,
        tool_messages,
        tokenizer,
    }
}
