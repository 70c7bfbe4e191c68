//! The embedding worker: one thread owns the embedding model; texts queued together (or arriving
//! within an optional window) are embedded as one batch. Every caller waits at most its deadline:
//! past it, the request goes on without its embedding (counted in
//! `frugal_embedding_deadline_skips_total`), never fails for want of one. Workers are shared
//! process-wide per model folder, so a policy reload does not load the model again.
//!
//! A request whose embedding could not be ready within its deadline, given the texts ahead of it
//! (queued, and in the batch being embedded) and the time a text has recently taken, goes on at
//! once (`overloaded`) instead of waiting out its deadline for nothing: under overload the
//! semantic tier is skipped for some requests, but none is held up by it.
//!
//! Texts come in two lanes. A request waiting for its embedding is urgent; a stored question
//! embedded after its answer was sent ([`EmbedWorker::embed_in_background`]) is not, and is
//! embedded only when no request waits, in small batches, so it never delays one by more than
//! such a batch.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use frugal_cache::{EmbedError, Embedder, MiniLmEmbedder, MiniLmOptions, ModelPaths};
use tokio::sync::oneshot;

use crate::metrics;

/// Most background texts embedded in one batch: small, so a request that arrives meanwhile
/// waits for little.
const BACKGROUND_BATCH: usize = 4;

/// How long a background text may wait behind requests' own embeddings before it is dropped.
pub const BACKGROUND_DEADLINE: Duration = Duration::from_secs(30);

/// How the worker batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchOptions {
    /// Most texts in one batch.
    pub max_batch: usize,
    /// How long the first text of a batch waits for company. Zero takes what is queued and
    /// waits for nothing: texts that arrive while a batch runs form the next one, so batches
    /// grow with load and a lone request pays no wait.
    pub window: Duration,
    /// Texts waiting beyond this many (in each lane) are skipped at once.
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

/// Which lane a text waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    /// A request waits for it.
    Urgent,
    /// Nobody waits: a stored question to index.
    Background,
}

/// The texts waiting, by lane.
#[derive(Default)]
struct Lanes {
    urgent: VecDeque<Job>,
    background: VecDeque<Job>,
    /// Set when the handle is dropped: the thread stops once the lanes are empty.
    closed: bool,
}

/// What the handle and the thread share.
struct Queue {
    lanes: Mutex<Lanes>,
    ready: Condvar,
    capacity: usize,
    /// Recent time per text in a batch, in nanoseconds (a moving average; 0 until the first
    /// batch): what a text queued behind others can expect to wait for each of them.
    per_text_nanos: AtomicU64,
    /// Texts in the batch being embedded now (0 between batches): a text queued now waits for
    /// them too.
    in_flight: AtomicUsize,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Lanes> {
        self.lanes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a job, or hands it back with why not: its lane is full, or (for an urgent one
    /// with a `deadline`) the texts ahead of it would take longer than that.
    fn push(&self, lane: Lane, job: Job, deadline: Option<Duration>) -> Result<(), &'static str> {
        let mut lanes = self.lock();
        let queue = match lane {
            Lane::Urgent => &mut lanes.urgent,
            Lane::Background => &mut lanes.background,
        };
        if queue.len() >= self.capacity {
            return Err("queue_full");
        }
        if let Some(deadline) = deadline {
            let per_text = self.per_text_nanos.load(Ordering::Relaxed);
            let ahead = queue.len() + self.in_flight.load(Ordering::Relaxed);
            let ahead = u64::try_from(ahead).unwrap_or(u64::MAX);
            if per_text.saturating_mul(ahead.saturating_add(1)) > nanos(deadline) {
                return Err("overloaded");
            }
        }
        queue.push_back(job);
        drop(lanes);
        self.ready.notify_one();
        Ok(())
    }

    /// Folds a batch's time into the moving average of the time per text.
    fn observe(&self, texts: usize, took: Duration) {
        let Some(per_text) = nanos(took).checked_div(texts as u64) else {
            return;
        };
        let old = self.per_text_nanos.load(Ordering::Relaxed);
        let new = if old == 0 {
            per_text
        } else {
            // Weight 1/8: a few batches move it, one odd batch does not.
            old - old / 8 + per_text / 8
        };
        self.per_text_nanos.store(new, Ordering::Relaxed);
    }

    /// The next batch: urgent texts first (waiting up to `window` for company), background
    /// ones only when none is urgent; `None` once the handle is gone and nothing waits.
    fn next_batch(&self, options: BatchOptions) -> Option<Vec<Job>> {
        let mut lanes = self.lock();
        loop {
            if !lanes.urgent.is_empty() {
                break;
            }
            if !lanes.background.is_empty() {
                let take = lanes.background.len().min(BACKGROUND_BATCH);
                return Some(lanes.background.drain(..take).collect());
            }
            if lanes.closed {
                return None;
            }
            lanes = self
                .ready
                .wait(lanes)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let max = options.max_batch.max(1);
        let until = Instant::now() + options.window;
        while lanes.urgent.len() < max {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() || lanes.closed {
                break;
            }
            lanes = self
                .ready
                .wait_timeout(lanes, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        let take = lanes.urgent.len().min(max);
        Some(lanes.urgent.drain(..take).collect())
    }
}

/// A duration in nanoseconds, saturating.
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// A handle to a running embedding worker; cheap to clone through an `Arc`.
pub struct EmbedWorker {
    queue: Arc<Queue>,
    dim: usize,
    /// The model, for [`EmbedWorker::fits_within`] (the worker thread holds it too).
    embedder: Arc<dyn Embedder>,
}

impl std::fmt::Debug for EmbedWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbedWorker")
            .field("dim", &self.dim)
            .finish()
    }
}

impl Drop for EmbedWorker {
    fn drop(&mut self) {
        self.queue.lock().closed = true;
        self.queue.ready.notify_all();
    }
}

impl EmbedWorker {
    /// Starts a worker thread that owns `embedder`.
    pub fn spawn(embedder: Arc<dyn Embedder>, options: BatchOptions) -> std::io::Result<Self> {
        let queue = Arc::new(Queue {
            lanes: Mutex::new(Lanes::default()),
            ready: Condvar::new(),
            capacity: options.queue.max(1),
            per_text_nanos: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        });
        let dim = embedder.dim();
        metrics::register_embedding_skips();
        let model = Arc::clone(&embedder);
        let jobs = Arc::clone(&queue);
        std::thread::Builder::new()
            .name("frugal-embed".into())
            .spawn(move || run(model.as_ref(), &jobs, options))?;
        Ok(Self {
            queue,
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
        self.embed_in(Lane::Urgent, text, deadline, Some(deadline))
            .await
    }

    /// The embedding of `text` for a caller nobody waits on: it is computed only when no
    /// request waits for its own, and given up after [`BACKGROUND_DEADLINE`].
    pub async fn embed_in_background(&self, text: &str) -> Option<Vec<f32>> {
        self.embed_in(Lane::Background, text, BACKGROUND_DEADLINE, None)
            .await
    }

    /// Queues `text` in `lane` and waits up to `deadline` for its vector; with `shed`, gives
    /// up at once when the texts ahead would not leave it time to be embedded within it.
    async fn embed_in(
        &self,
        lane: Lane,
        text: &str,
        deadline: Duration,
        shed: Option<Duration>,
    ) -> Option<Vec<f32>> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            text: text.to_string(),
            reply,
        };
        if let Err(why) = self.queue.push(lane, job, shed) {
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
            if let Err(why) = self.queue.push(Lane::Urgent, job, None) {
                metrics::record_embedding_skip(why);
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

fn run(embedder: &dyn Embedder, queue: &Queue, options: BatchOptions) {
    while let Some(mut batch) = queue.next_batch(options) {
        // Callers that gave up (deadline passed) need no work.
        batch.retain(|job| !job.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let started = Instant::now();
        let texts: Vec<&str> = batch.iter().map(|j| j.text.as_str()).collect();
        queue.in_flight.store(texts.len(), Ordering::Relaxed);
        let embedded = embedder.embed(&texts);
        queue.in_flight.store(0, Ordering::Relaxed);
        match embedded {
            Ok(vectors) => {
                let took = started.elapsed();
                queue.observe(batch.len(), took);
                metrics::record_embedding_batch(batch.len(), took);
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
    /// ONNX Runtime intra-op threads; `None` uses [`default_threads`].
    pub threads: Option<usize>,
    /// Batching.
    pub batch: BatchOptions,
}

/// The embedding threads when the policy names none: the cores this process may use (its CPU
/// quota in a container, which ONNX Runtime's own default ignores), at most
/// [`MAX_DEFAULT_THREADS`].
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(MAX_DEFAULT_THREADS)
}

/// The cap, so that a big node's cores (with no CPU quota) do not each get a thread that spins
/// beside the requests; more than 2 were not measured.
pub const MAX_DEFAULT_THREADS: usize = 4;

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
        intra_threads: Some(config.threads.unwrap_or_else(default_threads)),
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

    impl Lengths {
        /// A model that takes `delay` a batch.
        fn taking(delay: Duration) -> Arc<Self> {
            Arc::new(Self {
                batches: Mutex::new(Vec::new()),
                delay,
            })
        }
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
        let embedder = Lengths::taking(Duration::ZERO);
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
        let embedder = Lengths::taking(Duration::ZERO);
        let worker = EmbedWorker::spawn(embedder, BatchOptions::default()).unwrap();
        let vectors = worker
            .embed_many(&["a", "bbb", "cc"], Duration::from_secs(5))
            .await;
        assert_eq!(vectors, Some(vec![vec![1.0], vec![3.0], vec![2.0]]));
    }

    #[tokio::test]
    async fn a_slow_embedding_is_skipped_at_the_deadline() {
        let embedder = Lengths::taking(Duration::from_millis(300));
        let worker = EmbedWorker::spawn(embedder, BatchOptions::default()).unwrap();
        let started = Instant::now();
        assert_eq!(worker.embed("late", Duration::from_millis(20)).await, None);
        assert!(started.elapsed() < Duration::from_millis(250));
    }

    /// Queues `text` in `lane` at once (no task scheduling in between) and returns its answer.
    fn queue(worker: &EmbedWorker, lane: Lane, text: &str) -> oneshot::Receiver<Vec<f32>> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            text: text.to_string(),
            reply,
        };
        assert!(worker.queue.push(lane, job, None).is_ok());
        answer
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_waits_for_no_background_text_but_the_batch_running() {
        let embedder = Lengths::taking(Duration::from_millis(100));
        let worker = EmbedWorker::spawn(embedder.clone(), BatchOptions::default()).unwrap();
        let background: Vec<_> = (1..=9)
            .map(|n| queue(&worker, Lane::Background, &"b".repeat(n)))
            .collect();
        let urgent = queue(&worker, Lane::Urgent, &"u".repeat(20));
        assert_eq!(urgent.await.unwrap(), vec![20.0]);
        // At most the background batch already running went first, and it was a small one.
        let batches = embedder.batches.lock().unwrap().clone();
        assert!(batches.len() <= 2, "the request waited behind {batches:?}");
        assert!(
            batches.iter().all(|&n| n <= BACKGROUND_BATCH),
            "{batches:?}"
        );
        for (n, answer) in (1..=9).zip(background) {
            assert_eq!(answer.await.unwrap(), vec![n as f32]);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_that_could_not_be_embedded_in_time_goes_on_at_once() {
        let embedder = Lengths::taking(Duration::from_millis(200));
        let worker = EmbedWorker::spawn(embedder, BatchOptions::default()).unwrap();
        // The first text teaches the worker that a text takes ~200 ms.
        assert!(worker.embed("a", Duration::from_secs(5)).await.is_some());
        // With a 50 ms deadline there is no point waiting: it goes on at once.
        let started = Instant::now();
        assert_eq!(worker.embed("b", Duration::from_millis(50)).await, None);
        assert!(
            started.elapsed() < Duration::from_millis(40),
            "{:?}",
            started.elapsed()
        );
        // A deadline long enough is still served, and a background text is never shed so.
        assert!(worker.embed("c", Duration::from_secs(5)).await.is_some());
        assert!(worker.embed_in_background("d").await.is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_counts_the_batch_being_embedded_as_ahead_of_it() {
        let embedder = Lengths::taking(Duration::from_millis(100));
        let worker = Arc::new(EmbedWorker::spawn(embedder, BatchOptions::default()).unwrap());
        // A text takes ~100 ms; then a background text is being embedded when a request comes.
        assert!(worker.embed("a", Duration::from_secs(5)).await.is_some());
        let background = tokio::spawn({
            let worker = Arc::clone(&worker);
            async move { worker.embed_in_background("b").await }
        });
        while worker.queue.in_flight.load(Ordering::Relaxed) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // The queue is empty, but the request would wait for the batch running (~100 ms) and
        // then its own (~100 ms): past its 150 ms, so it goes on at once.
        let started = Instant::now();
        assert_eq!(worker.embed("c", Duration::from_millis(150)).await, None);
        assert!(
            started.elapsed() < Duration::from_millis(40),
            "{:?}",
            started.elapsed()
        );
        assert!(background.await.unwrap().is_some());
    }

    #[tokio::test]
    async fn the_thread_stops_when_the_handle_is_dropped() {
        let embedder = Lengths::taking(Duration::ZERO);
        let worker = EmbedWorker::spawn(embedder.clone(), BatchOptions::default()).unwrap();
        assert_eq!(worker.embed_in_background("abc").await, Some(vec![3.0]));
        drop(worker);
        // The thread held the only other reference to the model.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(&embedder) > 1 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(Arc::strong_count(&embedder), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_sheds_at_once_instead_of_waiting() {
        let embedder = Lengths::taking(Duration::from_secs(1));
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
