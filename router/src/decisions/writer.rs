//! The decision log's writer: a thread that appends JSON lines to the file and rotates it by
//! size (`decisions.jsonl` → `decisions.jsonl.1` → … → `.{keep}`, the oldest dropped).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::time::Duration;

use super::record::DecisionRecord;
use crate::metrics;
use crate::policy::DecisionLogPolicy;

/// Records queued for the writer at most; past it, records are dropped and counted.
const QUEUE: usize = 8192;

/// Where records go.
#[derive(Debug)]
pub struct DecisionLog {
    sender: SyncSender<DecisionRecord>,
    log_prompts: bool,
}

impl DecisionLog {
    /// Opens (or creates) the log file and starts its writer thread; an error when the file
    /// cannot be opened, so `serve` refuses to start instead of logging nothing.
    pub fn start(policy: &DecisionLogPolicy) -> std::io::Result<Self> {
        if let Some(dir) = policy.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = open(&policy.path)?;
        let (sender, receiver) = sync_channel(QUEUE);
        let writer = Writer {
            path: policy.path.clone(),
            max_bytes: policy.max_bytes,
            keep: policy.keep,
            written: file.metadata().map_or(0, |m| m.len()),
            out: BufWriter::new(file),
        };
        std::thread::Builder::new()
            .name("frugal-decision-log".into())
            .spawn(move || writer.run(receiver))?;
        Ok(Self {
            sender,
            log_prompts: policy.log_prompts,
        })
    }

    /// A log whose records go to the returned receiver instead of a file (`frugal replay`
    /// reads them), with `capacity` queued at most.
    pub fn channel(log_prompts: bool, capacity: usize) -> (Self, Receiver<DecisionRecord>) {
        let (sender, receiver) = sync_channel(capacity);
        (
            Self {
                sender,
                log_prompts,
            },
            receiver,
        )
    }

    /// Whether records carry the prompt and answer text.
    pub fn log_prompts(&self) -> bool {
        self.log_prompts
    }

    /// Queues a record; drops it (counted) when the writer is behind.
    pub fn write(&self, record: DecisionRecord) {
        match self.sender.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                metrics::record_decision_dropped();
            }
        }
    }
}

/// A finished record and the log it goes to: written now, or once a shadow comparison has
/// added its verdict.
#[derive(Debug)]
pub struct PendingRecord {
    /// The log.
    pub log: std::sync::Arc<DecisionLog>,
    /// The record.
    pub record: DecisionRecord,
}

impl PendingRecord {
    /// Queues the record.
    pub fn write(self) {
        self.log.write(self.record);
    }
}

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

struct Writer {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    written: u64,
    out: BufWriter<File>,
}

impl Writer {
    fn run(mut self, records: Receiver<DecisionRecord>) {
        loop {
            match records.recv_timeout(Duration::from_millis(200)) {
                Ok(record) => {
                    if let Err(e) = self.append(&record) {
                        tracing::warn!(error = %e, path = %self.path.display(), "cannot write the decision log");
                        metrics::record_decision_dropped();
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    let _ = self.out.flush();
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = self.out.flush();
                    return;
                }
            }
        }
    }

    fn append(&mut self, record: &DecisionRecord) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        line.push(b'\n');
        if self.written > 0 && self.written + line.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        self.out.write_all(&line)?;
        self.written += line.len() as u64;
        Ok(())
    }

    /// `path` → `path.1`, `path.1` → `path.2`, …; the oldest past `keep` is removed.
    fn rotate(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        let numbered = |n: usize| PathBuf::from(format!("{}.{n}", self.path.display()));
        if self.keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            let _ = std::fs::remove_file(numbered(self.keep));
            for n in (1..self.keep).rev() {
                if numbered(n).exists() {
                    std::fs::rename(numbered(n), numbered(n + 1))?;
                }
            }
            std::fs::rename(&self.path, numbered(1))?;
        }
        self.out = BufWriter::new(open(&self.path)?);
        self.written = 0;
        Ok(())
    }
}
