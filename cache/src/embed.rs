//! Text embeddings: the [`Embedder`] trait and its all-MiniLM-L6-v2 implementation.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use fastembed::{
    InitOptionsUserDefined, Pooling, QuantizationMode, TextEmbedding, TokenizerFiles,
    UserDefinedEmbeddingModel,
};
use ort::environment::Environment;

/// Turns texts into L2-normalised vectors, so that a dot product is their cosine similarity.
pub trait Embedder: Send + Sync {
    /// Length of every vector this embedder returns.
    fn dim(&self) -> usize;

    /// One unit-length vector per text, in input order; an empty input gives an empty output.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;

    /// Whether `text` is at most `max_tokens` of the model's tokens (special tokens included)
    /// and the model reads all of it. A longer text is embedded from its beginning only, so its
    /// vector cannot tell it from another text with the same beginning; and the longer the
    /// text, the longer the embedding takes.
    fn fits_within(&self, _text: &str, _max_tokens: usize) -> bool {
        true
    }
}

/// Why an embedder could not be loaded or could not embed.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The model folder does not exist.
    #[error(
        "embedding model folder {} not found: run scripts/fetch-models.sh \
         (or point FRUGAL_MODEL_DIR at a folder it filled)",
        .dir.display()
    )]
    ModelDirMissing {
        /// The folder that was looked for.
        dir: PathBuf,
    },

    /// A file the model needs is missing or unreadable.
    #[error(
        "embedding model file {} is missing or unreadable: run scripts/fetch-models.sh",
        .path.display()
    )]
    ModelFile {
        /// The file that could not be read.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: std::io::Error,
    },

    /// The ONNX Runtime shared library does not exist.
    #[error(
        "ONNX Runtime library {} not found: run scripts/fetch-models.sh \
         (or point ORT_DYLIB_PATH at libonnxruntime.so)",
        .path.display()
    )]
    RuntimeMissing {
        /// The library path that was looked for.
        path: PathBuf,
    },

    /// The ONNX Runtime shared library exists but could not be loaded or initialised.
    #[error("ONNX Runtime library {} failed to load: {reason}", .path.display())]
    RuntimeLoad {
        /// The library path that was tried.
        path: PathBuf,
        /// What went wrong, from the loader or from ONNX Runtime.
        reason: String,
    },

    /// The model or tokenizer files were found but fastembed could not build a session.
    #[error("embedding model in {} failed to load", .dir.display())]
    ModelLoad {
        /// The model folder.
        dir: PathBuf,
        /// fastembed's error.
        #[source]
        source: fastembed::Error,
    },

    /// The model returned vectors of an unexpected length.
    #[error("embedding model returned {actual}-dimensional vectors, expected {expected}")]
    Dimension {
        /// The length the embedder promises.
        expected: usize,
        /// The length it got.
        actual: usize,
    },

    /// Tokenisation or inference failed for a batch.
    #[error("embedding inference failed")]
    Inference(#[source] fastembed::Error),
}

/// Cosine similarity of two L2-normalised vectors (their dot product); 0 when lengths differ.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Where the embedding model and the ONNX Runtime library live on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPaths {
    /// Folder with `model.onnx` and the tokenizer files of all-MiniLM-L6-v2.
    pub embedder_dir: PathBuf,
    /// The ONNX Runtime shared library (`libonnxruntime.so`).
    pub ort_dylib: PathBuf,
    /// Folder with the static word embeddings of the semantic tier's prefilter.
    pub static_dir: PathBuf,
}

impl ModelPaths {
    /// Folder name of the embedding model inside the model folder.
    pub const EMBEDDER_SUBDIR: &'static str = "all-MiniLM-L6-v2-int8";
    /// Path of the ONNX Runtime library relative to the model folder.
    pub const ORT_DYLIB: &'static str = "onnxruntime/libonnxruntime.so";

    /// The layout `scripts/fetch-models.sh` installs under `model_dir`, ignoring the environment.
    pub fn in_dir(model_dir: impl AsRef<Path>) -> Self {
        Self::resolve(None, None, model_dir.as_ref())
    }

    /// Like [`ModelPaths::in_dir`], with `FRUGAL_MODEL_DIR` overriding `default_dir` and
    /// `ORT_DYLIB_PATH` overriding the library path, when set and non-empty.
    pub fn from_env_or(default_dir: impl AsRef<Path>) -> Self {
        Self::resolve(
            std::env::var_os("FRUGAL_MODEL_DIR"),
            std::env::var_os("ORT_DYLIB_PATH"),
            default_dir.as_ref(),
        )
    }

    fn resolve(model_dir: Option<OsString>, ort_dylib: Option<OsString>, default: &Path) -> Self {
        let non_empty = |v: Option<OsString>| v.filter(|s| !s.is_empty()).map(PathBuf::from);
        let root = non_empty(model_dir).unwrap_or_else(|| default.to_path_buf());
        let ort_dylib = non_empty(ort_dylib).unwrap_or_else(|| root.join(Self::ORT_DYLIB));
        Self {
            embedder_dir: root.join(Self::EMBEDDER_SUBDIR),
            ort_dylib,
            static_dir: root.join(crate::StaticEmbedder::SUBDIR),
        }
    }
}

/// Settings for [`MiniLmEmbedder::load`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MiniLmOptions {
    /// ONNX Runtime intra-op threads; `None` leaves it to ONNX Runtime (every physical core of
    /// the machine, whatever the process's CPU quota).
    pub intra_threads: Option<usize>,
    /// Tokens kept per text; longer texts are truncated.
    pub max_tokens: usize,
    /// ONNX Runtime's CPU memory arena: it keeps every buffer it ever allocated for reuse, so
    /// the process holds the memory of its largest batch for good. Off, buffers are freed
    /// after each run.
    pub memory_arena: bool,
    /// ONNX Runtime's intra-op threads spin while they wait for work (its default). Off, one
    /// short question takes ~5 ms instead of ~3 on two cores, and under load the sidecar
    /// served no more requests (`embed_bench … nospin`, and 16 connections of distinct
    /// questions), so it stays on.
    pub spinning: bool,
}

impl Default for MiniLmOptions {
    fn default() -> Self {
        Self {
            intra_threads: None,
            // What sentence-transformers uses for this model (its max_seq_length); fastembed's
            // own default of 512 is past what the model was trained on.
            max_tokens: 256,
            memory_arena: false,
            spinning: true,
        }
    }
}

/// Whether a text is at most so many model tokens (see [`Embedder::fits_within`]).
type FitsWithin = dyn Fn(&str, usize) -> bool + Send + Sync;

/// What the model's BERT tokenizer (lower-casing normaliser, whitespace and punctuation
/// pre-tokeniser, WordPiece) must make of a text's length, told from the text alone: most
/// questions are plainly short or plainly long, and tokenising one costs more than the rest
/// of a cacheable miss's work in the sidecar.
#[derive(Debug, Clone, Copy)]
struct TokenBounds {
    /// Tokens added to every text ([CLS] and [SEP]).
    specials: usize,
    /// Where the tokenizer truncates (what the model reads).
    model_max: usize,
}

impl TokenBounds {
    /// `Some(true)` when `text` is ASCII and short enough that a token per character (the
    /// most an ASCII character can make) still fits `max_tokens`; `Some(false)` when its words
    /// that hold an ASCII letter or digit (at least a token each) are already too many;
    /// `None` when only the tokenizer can tell.
    fn fits_within(self, text: &str, max_tokens: usize) -> Option<bool> {
        let room = max_tokens.min(self.model_max);
        if text.is_ascii() && text.len().saturating_add(self.specials) <= room {
            return Some(true);
        }
        let most_words = max_tokens.saturating_sub(self.specials);
        let words = text
            .split_whitespace()
            .filter(|word| word.bytes().any(|b| b.is_ascii_alphanumeric()))
            .take(most_words + 1)
            .count();
        (words > most_words).then_some(false)
    }
}

/// all-MiniLM-L6-v2 (8-bit ONNX, 384-d, mean pooling) run in-process through fastembed.
pub struct MiniLmEmbedder {
    // fastembed's `embed` takes `&mut self`; one lock serialises batches, which is what a
    // dedicated embedding pool with micro-batching wants anyway.
    model: Mutex<TextEmbedding>,
    /// The model's tokenizer (truncating at `max_tokens`), answering
    /// [`Embedder::fits_within`] without waiting for the model's lock.
    fits: Box<FitsWithin>,
    /// What the text's length alone tells, before `fits` is asked.
    bounds: TokenBounds,
}

impl std::fmt::Debug for MiniLmEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniLmEmbedder")
            .field("dim", &Self::DIM)
            .finish_non_exhaustive()
    }
}

/// Files fastembed needs from the model folder, in the order they are checked.
const MODEL_FILES: [&str; 5] = [
    "model.onnx",
    "tokenizer.json",
    "config.json",
    "special_tokens_map.json",
    "tokenizer_config.json",
];

impl MiniLmEmbedder {
    /// Length of the vectors all-MiniLM-L6-v2 produces.
    pub const DIM: usize = 384;

    /// [`Embedder::fits_within`] as the tokenizer answers it, always tokenizing `text` (the
    /// trait's method tokenizes only a text whose length cannot tell).
    pub fn tokenized_fits_within(&self, text: &str, max_tokens: usize) -> bool {
        (self.fits)(text, max_tokens)
    }

    /// Loads the model and, on first use in the process, the ONNX Runtime library.
    pub fn load(paths: &ModelPaths, options: &MiniLmOptions) -> Result<Self, EmbedError> {
        let dir = &paths.embedder_dir;
        if !dir.is_dir() {
            return Err(EmbedError::ModelDirMissing { dir: dir.clone() });
        }
        let [onnx, tokenizer, config, special_tokens_map, tokenizer_config] =
            MODEL_FILES.map(|name| dir.join(name));
        let read = |path: PathBuf| {
            std::fs::read(&path).map_err(|source| EmbedError::ModelFile { path, source })
        };
        // Read everything before touching the runtime, so a half-installed folder is reported
        // as such rather than as a runtime failure.
        let model = UserDefinedEmbeddingModel::new(
            read(onnx)?,
            TokenizerFiles {
                tokenizer_file: read(tokenizer)?,
                config_file: read(config)?,
                special_tokens_map_file: read(special_tokens_map)?,
                tokenizer_config_file: read(tokenizer_config)?,
            },
        )
        .with_pooling(Pooling::Mean)
        // 8-bit weight blocks (scripts/requantize_minilm.py): activations are quantised per
        // block of each row, so a vector does not depend on the other texts in its batch.
        .with_quantization(QuantizationMode::None);

        let cpu = ort::ep::CPU::default().with_arena_allocator(options.memory_arena);
        let mut init = InitOptionsUserDefined::new()
            .with_environment(ort_environment(&paths.ort_dylib)?)
            .with_execution_providers(vec![cpu.build()])
            .with_max_length(options.max_tokens)
            .with_session_config(
                "session.intra_op.allow_spinning",
                if options.spinning { "1" } else { "0" },
            );
        if let Some(threads) = options.intra_threads {
            init = init.with_intra_threads(threads);
        }
        let model = TextEmbedding::try_new_from_user_defined(model, init).map_err(|source| {
            EmbedError::ModelLoad {
                dir: dir.clone(),
                source,
            }
        })?;

        let tokenizer = model.tokenizer.clone();
        // What the tokenizer itself does: the tokens it adds ([CLS] and [SEP]) and where it
        // truncates (the options' `max_tokens`, or less if the model's files say so).
        let bounds = TokenBounds {
            specials: tokenizer
                .encode("", true)
                .map_or(2, |encoding| encoding.len()),
            model_max: tokenizer
                .get_truncation()
                .map_or(usize::MAX, |truncation| truncation.max_length),
        };
        // The tokenizer truncates at `max_tokens` and keeps what it cut as overflow.
        let fits = move |text: &str, max_tokens: usize| {
            tokenizer.encode(text, true).is_ok_and(|encoding| {
                encoding.get_overflowing().is_empty() && encoding.len() <= max_tokens
            })
        };
        let embedder = Self {
            model: Mutex::new(model),
            fits: Box::new(fits),
            bounds,
        };
        // A wrong model file should fail at start-up, not on the first request.
        embedder.embed(&["frugal"])?;
        Ok(embedder)
    }
}

impl Embedder for MiniLmEmbedder {
    fn dim(&self) -> usize {
        Self::DIM
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        // A panic while holding the lock cannot leave the session half-updated: it keeps no
        // state between runs.
        let mut model = self.model.lock().unwrap_or_else(PoisonError::into_inner);
        // fastembed pools with the attention mask and L2-normalises each vector.
        let vectors = model.embed(texts, None).map_err(EmbedError::Inference)?;
        drop(model);
        if let Some(bad) = vectors.iter().find(|v| v.len() != Self::DIM) {
            return Err(EmbedError::Dimension {
                expected: Self::DIM,
                actual: bad.len(),
            });
        }
        Ok(vectors)
    }

    fn fits_within(&self, text: &str, max_tokens: usize) -> bool {
        self.bounds
            .fits_within(text, max_tokens)
            .unwrap_or_else(|| self.tokenized_fits_within(text, max_tokens))
    }
}

/// The process's one ONNX Runtime environment, loading the library from `dylib` on first use.
///
/// ONNX Runtime allows one environment per process and `ort` loads one library per process, so
/// both are kept for the life of the process and a later request for another library is refused
/// rather than silently served by the first one.
fn ort_environment(dylib: &Path) -> Result<Environment, EmbedError> {
    static LOADED: Mutex<Option<(PathBuf, Environment)>> = Mutex::new(None);

    let mut loaded = LOADED.lock().unwrap_or_else(PoisonError::into_inner);
    // `ort` resolves a relative path against the executable's folder; resolve it against the
    // working directory instead, as every other path here is.
    let dylib = std::path::absolute(dylib).unwrap_or_else(|_| dylib.to_path_buf());
    if let Some((path, environment)) = loaded.as_ref() {
        if *path == dylib {
            return Ok(environment.clone());
        }
        return Err(EmbedError::RuntimeLoad {
            path: dylib,
            reason: format!(
                "this process already loaded ONNX Runtime from {}",
                path.display()
            ),
        });
    }
    if !dylib.is_file() {
        return Err(EmbedError::RuntimeMissing { path: dylib });
    }
    let load_error = |reason: String| EmbedError::RuntimeLoad {
        path: dylib.clone(),
        reason,
    };
    let environment = ort::init_from(&dylib)
        .map_err(|e| load_error(e.to_string()))?
        .with_name("frugal-embed")
        .with_telemetry(false)
        .build()
        .map_err(|e| load_error(e.to_string()))?;
    *loaded = Some((dylib, environment.clone()));
    Ok(environment)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test should panic on the unexpected")]
mod tests {
    use super::*;

    fn scratch_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("frugal-cache-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn missing_model_dir_names_the_fetch_script() {
        let paths = ModelPaths::in_dir("/nonexistent/frugal-models");
        let err = MiniLmEmbedder::load(&paths, &MiniLmOptions::default()).unwrap_err();
        assert!(
            matches!(err, EmbedError::ModelDirMissing { .. }),
            "got {err:?}"
        );
        let message = err.to_string();
        assert!(message.contains("scripts/fetch-models.sh"), "{message}");
        assert!(message.contains("all-MiniLM-L6-v2-int8"), "{message}");
    }

    #[test]
    fn missing_model_file_names_the_file_and_the_fetch_script() {
        let root = scratch_dir("half-installed");
        let dir = root.join(ModelPaths::EMBEDDER_SUBDIR);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("model.onnx"), b"not really").unwrap();

        let err = MiniLmEmbedder::load(&ModelPaths::in_dir(&root), &MiniLmOptions::default())
            .unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, EmbedError::ModelFile { .. }), "got {err:?}");
        assert!(message.contains("tokenizer.json"), "{message}");
        assert!(message.contains("scripts/fetch-models.sh"), "{message}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn missing_runtime_library_names_the_fetch_script() {
        let root = scratch_dir("no-runtime");
        let dir = root.join(ModelPaths::EMBEDDER_SUBDIR);
        std::fs::create_dir_all(&dir).unwrap();
        for name in MODEL_FILES {
            std::fs::write(dir.join(name), b"{}").unwrap();
        }

        let err = MiniLmEmbedder::load(&ModelPaths::in_dir(&root), &MiniLmOptions::default())
            .unwrap_err();
        let message = err.to_string();
        assert!(
            matches!(err, EmbedError::RuntimeMissing { .. }),
            "got {err:?}"
        );
        assert!(message.contains("libonnxruntime.so"), "{message}");
        assert!(message.contains("scripts/fetch-models.sh"), "{message}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn paths_default_to_the_fetch_script_layout() {
        let paths = ModelPaths::resolve(None, None, Path::new("/srv/models"));
        assert_eq!(
            paths.embedder_dir,
            Path::new("/srv/models/all-MiniLM-L6-v2-int8")
        );
        assert_eq!(
            paths.ort_dylib,
            Path::new("/srv/models/onnxruntime/libonnxruntime.so")
        );
    }

    #[test]
    fn env_overrides_model_dir_and_runtime_separately() {
        let paths = ModelPaths::resolve(Some("/m".into()), None, Path::new("/default"));
        assert_eq!(paths.embedder_dir, Path::new("/m/all-MiniLM-L6-v2-int8"));
        assert_eq!(
            paths.ort_dylib,
            Path::new("/m/onnxruntime/libonnxruntime.so")
        );

        let paths = ModelPaths::resolve(
            Some("".into()),
            Some("/usr/lib/libonnxruntime.so".into()),
            Path::new("/default"),
        );
        assert_eq!(
            paths.embedder_dir,
            Path::new("/default/all-MiniLM-L6-v2-int8")
        );
        assert_eq!(paths.ort_dylib, Path::new("/usr/lib/libonnxruntime.so"));
    }

    #[test]
    fn the_length_alone_tells_plainly_short_and_plainly_long_texts() {
        let bounds = TokenBounds {
            specials: 2,
            model_max: 256,
        };
        // ASCII: at most a token a byte, plus [CLS] and [SEP].
        assert_eq!(bounds.fits_within("How do I sort a list?", 128), Some(true));
        assert_eq!(bounds.fits_within(&"x".repeat(126), 128), Some(true));
        assert_eq!(bounds.fits_within(&"x".repeat(127), 128), None);
        // The model's own limit caps what fits however large the budget.
        assert_eq!(bounds.fits_within(&"x".repeat(254), 1000), Some(true));
        assert_eq!(bounds.fits_within(&"x".repeat(255), 1000), None);
        // Words that hold a letter or digit are a token each at least.
        assert_eq!(bounds.fits_within(&"word ".repeat(127), 128), Some(false));
        assert_eq!(bounds.fits_within(&"word ".repeat(126), 128), None);
        // Words of symbols alone, or non-ASCII text, need the tokenizer.
        assert_eq!(bounds.fits_within(&"… ".repeat(200), 128), None);
        assert_eq!(bounds.fits_within("¿Qué hora es?", 128), None);
    }

    #[test]
    fn cosine_of_unit_vectors() {
        let a = [0.6, 0.8];
        assert!((cosine(&a, &a) - 1.0).abs() < 1e-6);
        assert!((cosine(&a, &[-0.6, -0.8]) + 1.0).abs() < 1e-6);
        assert!(cosine(&a, &[0.8, -0.6]).abs() < 1e-6);
        assert_eq!(cosine(&a, &[1.0]), 0.0);
    }
}
