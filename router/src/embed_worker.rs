//! The embedding worker: one thread owns the embedding model; texts queued together (or arriving
//! within an optional window) are embedded as one batch. Every caller waits at most its deadline:
//! past it, the request goes on without its embedding (counted in
//! `frugal_embedding_deadline_skips_total`), never fails for want of one. Workers are shared
//! process-wide per model folder, so a policy reload does not load the model again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use frugal_cache::{EmbedError, Embedder, MiniLmEmbedder, MiniLmOptions, ModelPaths};
use tokio::sync::oneshot;

use crate::metrics;

/// How the worker batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchOptions {
    /// Most texts in one batch.
    pub max_batch: usize,
    /// How long the first text of a batch waits for company. Zero takes what is queued and
    /// waits for nothing: texts that arrive while a batch runs form the next one, so batches
    /// grow with load and a lone request pays no wait.
    pub window: Duration,
    /// Texts waiting beyond this many are skipped at once.
    pub queue: usize,
}

impl Default for BatchOptions {
    fn default() -> Self {
        Self {
            max_batch: 16,
            window: Duration::ZERO,
            queue: 1024,
        }
    }
}

struct Job {
    text: String,
    reply: oneshot::Sender<Vec<f32>>,
}

/// A handle to a running embedding worker; cheap to clone through an `Arc`.
pub struct EmbedWorker {
    jobs: SyncSender<Job>,
    dim: usize,
    /// The model, for [`EmbedWorker::fits`] (the worker thread holds it too).
    embedder: Arc<dyn Embedder>,
}

impl std::fmt::Debug for EmbedWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbedWorker")
            .field("dim", &self.dim)
            .finish()
    }
}

impl EmbedWorker {
    /// Starts a worker thread that owns `embedder`.
    pub fn spawn(embedder: Arc<dyn Embedder>, options: BatchOptions) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::sync_channel::<Job>(options.queue.max(1));
        let dim = embedder.dim();
        metrics::register_embedding_skips();
        let model = Arc::clone(&embedder);
        std::thread::Builder::new()
            .name("frugal-embed".into())
            .spawn(move || run(model.as_ref(), &queue, options))?;
        Ok(Self {
            jobs,
            dim,
            embedder,
        })
    }

    /// Length of the vectors this worker returns.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Whether `text` is at most `max_tokens` tokens and the model reads all of it (see
    /// [`Embedder::fits_within`]); answered on the calling thread, without queueing.
    pub fn fits_within(&self, text: &str, max_tokens: usize) -> bool {
        self.embedder.fits_within(text, max_tokens)
    }

    /// The unit-length embedding of `text`, or `None` if it is not ready within `deadline`.
    pub async fn embed(&self, text: &str, deadline: Duration) -> Option<Vec<f32>> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            text: text.to_string(),
            reply,
        };
        if let Err(e) = self.jobs.try_send(job) {
            let why = match e {
                TrySendError::Full(_) => "queue_full",
                TrySendError::Disconnected(_) => "worker_stopped",
            };
            metrics::record_embedding_skip(why);
            return None;
        }
        match tokio::time::timeout(deadline, answer).await {
            Ok(Ok(vector)) => Some(vector),
            Ok(Err(_)) => {
                metrics::record_embedding_skip("failed");
                None
            }
            Err(_) => {
                metrics::record_embedding_skip("deadline");
                None
            }
        }
    }
}

impl EmbedWorker {
    /// Embeddings of several texts (batched together by the worker), or `None` if any is not
    /// ready within `deadline`.
    pub async fn embed_many(&self, texts: &[&str], deadline: Duration) -> Option<Vec<Vec<f32>>> {
        let mut answers = Vec::with_capacity(texts.len());
        for text in texts {
            let (reply, answer) = oneshot::channel();
            let job = Job {
                text: (*text).to_string(),
                reply,
            };
            if self.jobs.try_send(job).is_err() {
                metrics::record_embedding_skip("queue_full");
                return None;
            }
            answers.push(answer);
        }
        let all = futures::future::join_all(answers);
        match tokio::time::timeout(deadline, all).await {
            Ok(vectors) => vectors.into_iter().collect::<Result<Vec<_>, _>>().ok(),
            Err(_) => {
                metrics::record_embedding_skip("deadline");
                None
            }
        }
    }
}

fn run(embedder: &dyn Embedder, queue: &mpsc::Receiver<Job>, options: BatchOptions) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        let until = Instant::now() + options.window;
        while batch.len() < options.max_batch {
            let left = until.saturating_duration_since(Instant::now());
            match queue.recv_timeout(left) {
                Ok(job) => batch.push(job),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        // Callers that gave up (deadline passed) need no work.
        batch.retain(|job| !job.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let started = Instant::now();
        let texts: Vec<&str> = batch.iter().map(|j| j.text.as_str()).collect();
        match embedder.embed(&texts) {
            Ok(vectors) => {
                metrics::record_embedding_batch(batch.len(), started.elapsed());
                for (job, vector) in batch.into_iter().zip(vectors) {
                    // A caller that stopped waiting just drops the answer.
                    let _ = job.reply.send(vector);
                }
            }
            Err(e) => tracing::warn!(error = %e, "embedding a batch failed"),
        }
    }
}

/// Settings for the process's embedding model.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmbedderConfig {
    /// Folder filled by `scripts/fetch-models.sh` (`FRUGAL_MODEL_DIR` overrides it).
    pub model_dir: PathBuf,
    /// ONNX Runtime intra-op threads; `None` uses every core.
    pub threads: Option<usize>,
    /// Batching.
    pub batch: BatchOptions,
}

type Registry = Mutex<HashMap<EmbedderConfig, Arc<EmbedWorker>>>;

/// The worker for `config`, loading the model on first use; later calls with the same config
/// (e.g. after a policy reload) share it.
pub fn shared(config: &EmbedderConfig) -> Result<Arc<EmbedWorker>, EmbedError> {
    static WORKERS: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    let workers = WORKERS.get_or_init(Default::default);
    let mut workers = workers.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(worker) = workers.get(config) {
        return Ok(worker.clone());
    }
    let paths = ModelPaths::from_env_or(&config.model_dir);
    let options = MiniLmOptions {
        intra_threads: config.threads,
        ..MiniLmOptions::default()
    };
    let started = Instant::now();
    let embedder = MiniLmEmbedder::load(&paths, &options)?;
    tracing::info!(
        dir = %paths.embedder_dir.display(),
        millis = started.elapsed().as_millis() as u64,
        "embedding model loaded"
    );
    let worker = EmbedWorker::spawn(Arc::new(embedder), config.batch).map_err(|e| {
        EmbedError::ModelFile {
            path: Path::new("frugal-embed thread").to_path_buf(),
            source: e,
        }
    })?;
    let worker = Arc::new(worker);
    workers.insert(config.clone(), worker.clone());
    Ok(worker)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Embeds a text as its length, and counts the batches it saw.
    struct Lengths {
        batches: Mutex<Vec<usize>>,
        delay: Duration,
    }

    impl Embedder for Lengths {
        fn dim(&self) -> usize {
            1
        }

        fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
            std::thread::sleep(self.delay);
            self.batches
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(texts.len());
            Ok(texts.iter().map(|t| vec![t.len() as f32]).collect())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_texts_share_a_batch_and_get_their_own_vector() {
        let embedder = Arc::new(Lengths {
            batches: Mutex::new(Vec::new()),
            delay: Duration::ZERO,
        });
        let options = BatchOptions {
            window: Duration::from_millis(50),
            ..BatchOptions::default()
        };
        let worker = Arc::new(EmbedWorker::spawn(embedder.clone(), options).unwrap());
        let tasks: Vec<_> = (1..=5)
            .map(|n| {
                let worker = worker.clone();
                tokio::spawn(
                    async move { worker.embed(&"x".repeat(n), Duration::from_secs(5)).await },
                )
            })
            .collect();
        for (n, task) in (1..=5).zip(tasks) {
            assert_eq!(task.await.unwrap(), Some(vec![n as f32]));
        }
        let batches = embedder.batches.lock().unwrap().clone();
        assert!(batches.len() < 5, "no batching happened: {batches:?}");
        assert_eq!(batches.iter().sum::<usize>(), 5);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_texts_come_back_in_order() {
        let embedder = Arc::new(Lengths {
            batches: Mutex::new(Vec::new()),
            delay: Duration::ZERO,
        });
        let worker = EmbedWorker::spawn(embedder, BatchOptions::default()).unwrap();
        let vectors = worker
            .embed_many(&["a", "bbb", "cc"], Duration::from_secs(5))
            .await;
        assert_eq!(vectors, Some(vec![vec![1.0], vec![3.0], vec![2.0]]));
    }

    #[tokio::test]
    async fn a_slow_embedding_is_skipped_at_the_deadline() {
        let embedder = Arc::new(Lengths {
            batches: Mutex::new(Vec::new()),
            delay: Duration::from_millis(300),
        });
        let worker = EmbedWorker::spawn(embedder, BatchOptions::default()).unwrap();
        let started = Instant::now();
        assert_eq!(worker.embed("late", Duration::from_millis(20)).await, None);
        assert!(started.elapsed() < Duration::from_millis(250));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_sheds_at_once_instead_of_waiting() {
        let embedder = Arc::new(Lengths {
            batches: Mutex::new(Vec::new()),
            delay: Duration::from_secs(1),
        });
        let options = BatchOptions {
            max_batch: 1,
            queue: 1,
            ..BatchOptions::default()
        };
        let worker = Arc::new(EmbedWorker::spawn(embedder, options).unwrap());
        // At most one text is embedded and one waits; a third, whatever the timing, finds the
        // queue full and goes on without its embedding (the semantic tier is skipped) at once,
        // not after its deadline or the embeddings ahead of it.
        let calls: Vec<_> = ["first", "second", "third"]
            .into_iter()
            .map(|text| {
                let worker = worker.clone();
                tokio::spawn(async move {
                    let started = Instant::now();
                    let vector = worker.embed(text, Duration::from_secs(10)).await;
                    (vector, started.elapsed())
                })
            })
            .collect();
        let mut shed = 0;
        for call in calls {
            let (vector, waited) = call.await.unwrap();
            if vector.is_none() {
                shed += 1;
                assert!(waited < Duration::from_millis(900), "shed after {waited:?}");
            }
        }
        assert!((1..=2).contains(&shed), "{shed} shed");
    }
}
