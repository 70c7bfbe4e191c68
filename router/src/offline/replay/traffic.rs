//! What a replay sends: rows of a traffic file turned into chat requests. A row may be
//!
//! * an OpenAI request body (`messages`, optionally `model`; a top-level `tenant` names the
//!   tenant, as `x-frugal-tenant` would);
//! * a decision-log record written with `log_prompts: true` (`messages`, `params`,
//!   `model_requested`, `tenant`);
//! * a labelled routing row (RouteLLM's `prompt` with `weak_correct`/`strong_correct` or
//!   `weak_score`/`strong_score`): one request, and its own label;
//! * a labelled cache pair (`a`, `b`, `duplicate`, as in QQP and PAWS): two requests, `a`
//!   then `b`, so a hit on `b` can be judged right or wrong.
//!
//! Decision-log lines of embeddings requests (`"endpoint": "embeddings"`) are skipped.

use std::path::Path;

use anyhow::{bail, Context as _};
use frugal_classifier::data::LabelledRow;
use serde_json::{json, Map, Value};

/// One request of the replay.
#[derive(Debug, Clone)]
pub struct Item {
    /// The request body (without `stream`: replays answer in JSON).
    pub body: Map<String, Value>,
    /// Whether the body named its model (else the replay's model is used).
    pub has_model: bool,
    /// The tenant it is billed to.
    pub tenant: String,
    /// Its place in a labelled cache pair.
    pub pair: Option<PairRole>,
}

/// Which question of a labelled pair a request asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairRole {
    /// The first question, `a`.
    First,
    /// The second question, `b`, and whether it asks the same as `a`.
    Second {
        /// The pair is labelled a duplicate.
        duplicate: bool,
    },
}

/// A traffic file, read.
#[derive(Debug, Default)]
pub struct Traffic {
    /// The requests, in order.
    pub items: Vec<Item>,
    /// Labels the file carried itself (routing rows).
    pub labels: Vec<LabelledRow>,
}

const DEFAULT_TENANT: &str = "default";

/// Which rows of a file a replay reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Pick {
    /// Every row.
    #[default]
    All,
    /// The first N rows.
    First(usize),
    /// N rows evenly spread over the file (every benchmark of a mixed file, say).
    Spread(usize),
}

impl Pick {
    fn keeps(self, index: usize, rows: usize) -> bool {
        match self {
            Self::All => true,
            Self::First(n) => index < n,
            // Row i is kept when the running count floor(i·n/rows) steps up at it.
            Self::Spread(n) if n >= rows => true,
            Self::Spread(n) => (index * n) / rows != ((index + 1) * n) / rows,
        }
    }
}

/// Reads `path` (JSON Lines, gzip or plain), the rows `pick` keeps.
pub fn read(path: &Path, pick: Pick) -> anyhow::Result<Traffic> {
    let rows: Vec<Value> = super::super::read_jsonl(path)?;
    let mut traffic = Traffic::default();
    let total = rows.len();
    for (index, row) in rows.into_iter().enumerate() {
        if !pick.keeps(index, total) {
            continue;
        }
        let line = index + 1;
        let Value::Object(row) = row else {
            bail!("{}:{line}: not a JSON object", path.display());
        };
        add_row(&mut traffic, row, path, line)
            .with_context(|| format!("{}:{line}", path.display()))?;
    }
    if traffic.items.is_empty() {
        bail!("{} has no requests", path.display());
    }
    Ok(traffic)
}

fn add_row(
    traffic: &mut Traffic,
    row: Map<String, Value>,
    path: &Path,
    line: usize,
) -> anyhow::Result<()> {
    let text = |key: &str| row.get(key).and_then(Value::as_str).map(str::to_string);
    if text("endpoint").as_deref() == Some("embeddings") {
        // A decision-log line of an embeddings request: nothing for a chat replay to send.
        return Ok(());
    }
    let tenant = text("tenant").unwrap_or_else(|| DEFAULT_TENANT.to_string());
    if row.contains_key("a") && row.contains_key("duplicate") {
        let (Some(a), Some(b)) = (text("a"), text("b")) else {
            bail!("a cache pair needs `a` and `b` texts");
        };
        let duplicate = row
            .get("duplicate")
            .and_then(Value::as_bool)
            .context("`duplicate` must be true or false")?;
        traffic
            .items
            .push(question(&a, &tenant, Some(PairRole::First)));
        traffic
            .items
            .push(question(&b, &tenant, Some(PairRole::Second { duplicate })));
        return Ok(());
    }
    if row.contains_key("prompt") && !row.contains_key("messages") {
        let line_text = Value::Object(row.clone()).to_string();
        let mut labelled = frugal_classifier::data::parse_rows(line_text.as_bytes(), path)
            .map_err(|e| {
                anyhow::anyhow!("{}", e.to_string().replace(":1:", &format!(":{line}:")))
            })?;
        let label = labelled.pop().context("an empty routing row")?;
        traffic.items.push(question(&label.prompt, &tenant, None));
        traffic.labels.push(label);
        return Ok(());
    }
    let Some(messages) = row.get("messages").filter(|m| m.is_array()) else {
        if row.contains_key("request_id") {
            bail!(
                "a decision-log record without `messages`: replay needs a log written with \
                 `decision_log.log_prompts: true`"
            );
        }
        bail!(
            "not a request body (`messages`), a labelled routing row (`prompt`) or a cache \
             pair (`a`, `b`, `duplicate`)"
        );
    };
    let mut body = if row.contains_key("request_id") {
        // A decision-log record: the request was for `model_requested`.
        let mut body = match row.get("params") {
            Some(Value::Object(params)) => params.clone(),
            _ => Map::new(),
        };
        body.insert("messages".into(), messages.clone());
        if let Some(model) = text("model_requested") {
            body.insert("model".into(), Value::String(model));
        }
        body
    } else {
        let mut body = row.clone();
        body.remove("tenant");
        body
    };
    body.remove("stream");
    body.remove("stream_options");
    let has_model = body.contains_key("model");
    traffic.items.push(Item {
        body,
        has_model,
        tenant,
        pair: None,
    });
    Ok(())
}

/// A one-question request at temperature 0 (what an agent asking the same thing again sends).
fn question(text: &str, tenant: &str, pair: Option<PairRole>) -> Item {
    let body = json!({ "temperature": 0, "messages": [{ "role": "user", "content": text }] });
    Item {
        body: body.as_object().cloned().unwrap_or_default(),
        has_model: false,
        tenant: tenant.to_string(),
        pair,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_text(text: &str) -> anyhow::Result<Traffic> {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        read(file.path(), Pick::All)
    }

    #[test]
    fn a_spread_pick_keeps_n_rows_across_the_file() {
        let kept: Vec<usize> = (0..10).filter(|&i| Pick::Spread(3).keeps(i, 10)).collect();
        assert_eq!(kept, [3, 6, 9]);
        assert_eq!(
            (0..10).filter(|&i| Pick::Spread(20).keeps(i, 10)).count(),
            10
        );
        assert_eq!((0..10).filter(|&i| Pick::First(4).keeps(i, 10)).count(), 4);
    }

    #[test]
    fn every_row_shape_becomes_requests() {
        let traffic = read_text(concat!(
            r#"{"model": "m", "stream": true, "tenant": "acme", "messages": [{"role": "user", "content": "hi"}]}"#,
            "\n",
            r#"{"v": 1, "request_id": "r", "tenant": "t", "model_requested": "x", "messages": [{"role": "user", "content": "yo"}]}"#,
            "\n",
            r#"{"id": "m1", "benchmark": "mmlu", "prompt": "2+2?", "weak_correct": true, "strong_correct": true}"#,
            "\n",
            r#"{"id": "q", "a": "How old is Rome?", "b": "What is Rome's age?", "duplicate": true}"#,
            "\n",
            r#"{"v": 1, "request_id": "e", "tenant": "t", "endpoint": "embeddings", "model_requested": "emb"}"#,
            "\n",
        ))
        .unwrap();
        let items = &traffic.items;
        assert_eq!(items.len(), 5);
        assert_eq!(
            (items[0].tenant.as_str(), items[0].has_model),
            ("acme", true)
        );
        assert!(!items[0].body.contains_key("stream") && !items[0].body.contains_key("tenant"));
        assert_eq!(items[1].body["model"], "x");
        assert_eq!(items[1].tenant, "t");
        assert!(!items[2].has_model);
        assert_eq!(traffic.labels.len(), 1);
        assert_eq!(items[3].pair, Some(PairRole::First));
        assert_eq!(items[4].pair, Some(PairRole::Second { duplicate: true }));
    }

    #[test]
    fn a_log_without_prompts_and_unknown_rows_are_clear_errors() {
        let error = read_text(r#"{"v": 1, "request_id": "r", "tenant": "t"}"#).unwrap_err();
        assert!(
            format!("{error:#}").contains("log_prompts: true"),
            "{error:#}"
        );
        let error = read_text(r#"{"hello": 1}"#).unwrap_err();
        assert!(format!("{error:#}").contains(":1:"), "{error:#}");
        assert!(read_text("\n").is_err());
    }
}
