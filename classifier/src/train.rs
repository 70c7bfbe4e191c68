//! Training the complexity model: L2-regularised logistic regression fitted with L-BFGS, folds
//! by a seeded hash of the prompt (so duplicate prompts share a fold and runs are
//! reproducible), and k-fold cross-validation that yields out-of-fold scores for every row.
//!
//! The label says how much the strong model is worth on a prompt. The default,
//! [`LabelScheme::Gain`], is a soft target `(1 + strong − weak) / 2`: 1 when only the strong
//! model is right, 0 when only the weak one is, ½ when they agree (both right or both wrong:
//! escalating would change nothing). Cross-entropy with that target makes the model estimate
//! `(1 + E[strong − weak]) / 2`, so ranking by score is ranking by expected quality gained per
//! strong call — what a cost/quality router wants. Graded rows (MT-Bench, 1–10) use the grade
//! difference scaled to the same range. The other schemes exist to compare in cross-validation.

use serde::{Deserialize, Serialize};

use crate::data::Outcome;
use crate::features::{self, Features};
use crate::model::{
    nearest_centroid, ComplexityModel, EmbeddingWeights, Thresholds, TopicWeights, FORMAT, VERSION,
};
use crate::topic_prior::{self, PriorSettings};

/// How an outcome becomes a training target in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelScheme {
    /// `(1 + strong − weak) / 2`: ties ½, only-weak-right 0 (the default; see the module doc).
    Gain,
    /// 1 only when the weak model is wrong and the strong one right; everything else 0.
    OnlyStrong,
    /// Like `OnlyStrong`, with both-wrong rows left out of training.
    OnlyStrongDropBothWrong,
    /// 1 whenever the weak model is wrong, whatever the strong one did.
    WeakWrong,
}

impl LabelScheme {
    /// Every scheme, for comparisons.
    pub const ALL: [Self; 4] = [
        Self::Gain,
        Self::OnlyStrong,
        Self::OnlyStrongDropBothWrong,
        Self::WeakWrong,
    ];

    /// The scheme's name as written in reports and weights files.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Gain => "gain",
            Self::OnlyStrong => "only_strong",
            Self::OnlyStrongDropBothWrong => "only_strong_drop_both_wrong",
            Self::WeakWrong => "weak_wrong",
        }
    }

    /// The target for an outcome, or `None` when the row is left out of training.
    pub fn target(self, outcome: Outcome) -> Option<f64> {
        // Grades run 1–10: a difference of 9 is the whole scale, 1 point is "clearly better".
        let graded_gain = |w: f32, s: f32| f64::from((s - w) / 9.0).clamp(-1.0, 1.0);
        match (self, outcome) {
            (Self::Gain, Outcome::Correct { weak, strong }) => {
                Some((1.0 + f64::from(u8::from(strong)) - f64::from(u8::from(weak))) / 2.0)
            }
            (Self::Gain, Outcome::Graded { weak, strong }) => {
                Some((1.0 + graded_gain(weak, strong)) / 2.0)
            }
            (Self::OnlyStrong, Outcome::Correct { weak, strong }) => {
                Some(bool_target(!weak && strong))
            }
            (Self::OnlyStrongDropBothWrong, Outcome::Correct { weak, strong }) => {
                (weak || strong).then(|| bool_target(!weak && strong))
            }
            (Self::WeakWrong, Outcome::Correct { weak, .. }) => Some(bool_target(!weak)),
            (_, Outcome::Graded { weak, strong }) => Some(bool_target(strong - weak >= 1.0)),
        }
    }
}

fn bool_target(b: bool) -> f64 {
    f64::from(u8::from(b))
}

/// Training settings; [`TrainConfig::default`] is what `frugal train` uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// How outcomes become targets.
    pub label: LabelScheme,
    /// L2 penalty on the standardised text-feature weights.
    pub l2_features: f64,
    /// L2 penalty on the standardised embedding weights.
    pub l2_embedding: f64,
    /// Whether to use the embedding at all.
    pub use_embedding: bool,
    /// Train for what starting strong adds beyond the cascade: rows whose cheap answer the
    /// answer checks would escalate anyway count as ties (the strong answer is reached either
    /// way). The caller applies it when building [`Example`]s; it is recorded here so that
    /// evaluation rebuilds them the same way.
    pub cascade_labels: bool,
    /// Scale each embedding dimension to unit variance (true) or all by one shared factor.
    pub whiten_embedding: bool,
    /// Topics (k-means clusters of the embeddings) with their own offsets; 0 for none.
    pub topics: usize,
    /// Topics from the rows' labelled groups instead (MMLU subjects, MT-Bench categories):
    /// one centroid per group with at least [`MIN_GROUP_ROWS`] training rows. A prompt still
    /// belongs to the topic whose centroid is nearest, in training as at run time.
    pub group_topics: bool,
    /// L2 penalty on the standardised topic-indicator weights.
    pub l2_topics: f64,
    /// Add the soft topic prior ([`crate::topic_prior`]) over the rows' labelled groups as a
    /// fixed log-odds offset.
    pub topic_prior: bool,
    /// Softmax sharpness of topic memberships.
    pub topic_temperature: f64,
    /// Pseudo-rows at the overall mean in each topic's mean target.
    pub topic_shrinkage: f64,
    /// Cross-validation folds.
    pub folds: usize,
    /// Seed of the fold assignment.
    pub seed: u64,
    /// L-BFGS iteration cap.
    pub max_iterations: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            label: LabelScheme::Gain,
            l2_features: 1e-3,
            l2_embedding: 0.3,
            use_embedding: true,
            cascade_labels: true,
            whiten_embedding: true,
            topics: 0,
            group_topics: false,
            l2_topics: 1e-2,
            topic_prior: true,
            topic_temperature: 20.0,
            topic_shrinkage: 10.0,
            folds: 5,
            seed: 7,
            max_iterations: 300,
        }
    }
}

/// One training row: the prompt's features, its embedding, its outcome and its fold key.
#[derive(Debug, Clone)]
pub struct Example<'a> {
    /// Text features of the prompt.
    pub features: Features,
    /// The prompt's embedding (all of one length).
    pub embedding: &'a [f32],
    /// How the two models did.
    pub outcome: Outcome,
    /// Identity of the prompt for fold assignment (e.g. a hash of benchmark and text), so that
    /// duplicates never straddle folds.
    pub key: u64,
    /// The row's labelled group (e.g. `mmlu/anatomy`), for [`TrainConfig::group_topics`].
    pub group: &'a str,
}

/// Fewest training rows a group needs to get its own topic.
pub const MIN_GROUP_ROWS: usize = 20;

/// A labelled group big enough to be a topic: its name, the unit-length mean of its vectors and
/// the indices of its rows.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledGroup<'a> {
    /// The group's label.
    pub name: &'a str,
    /// The unit-length mean of its rows' vectors.
    pub centroid: Vec<f32>,
    /// Indices of its rows, in input order.
    pub members: Vec<usize>,
}

/// Each group with at least [`MIN_GROUP_ROWS`] rows (and a non-zero mean vector), in group
/// name order (deterministic).
pub fn labelled_groups<'a>(vectors: &[&[f32]], groups: &[&'a str]) -> Vec<LabelledGroup<'a>> {
    let mut sums: std::collections::BTreeMap<&str, (Vec<f64>, Vec<usize>)> =
        std::collections::BTreeMap::new();
    for (i, (v, g)) in vectors.iter().zip(groups).enumerate() {
        let (sum, members) = sums
            .entry(g)
            .or_insert_with(|| (vec![0.0; v.len()], Vec::new()));
        for (s, x) in sum.iter_mut().zip(v.iter()) {
            *s += f64::from(*x);
        }
        members.push(i);
    }
    sums.into_iter()
        .filter(|(_, (_, members))| members.len() >= MIN_GROUP_ROWS)
        .filter_map(|(name, (sum, members))| {
            let norm = sum.iter().map(|x| x * x).sum::<f64>().sqrt();
            (norm > 0.0).then(|| LabelledGroup {
                name,
                centroid: sum.iter().map(|x| (x / norm) as f32).collect(),
                members,
            })
        })
        .collect()
}

/// The centroid of each of [`labelled_groups`], in group name order.
pub fn group_centroids(vectors: &[&[f32]], groups: &[&str]) -> Vec<Vec<f32>> {
    labelled_groups(vectors, groups)
        .into_iter()
        .map(|g| g.centroid)
        .collect()
}

/// Which fold (0..k) a key falls in under a seed: a SplitMix64 hash, stable across platforms.
pub fn fold_of(key: u64, seed: u64, folds: usize) -> usize {
    let mut z = key ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z % folds.max(1) as u64) as usize
}

/// FNV-1a of a string: a stable 64-bit key for [`Example::key`].
pub fn text_key(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What a fit did, for reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FitReport {
    /// Rows that carried a target.
    pub rows: usize,
    /// L-BFGS iterations run.
    pub iterations: usize,
    /// Final regularised mean cross-entropy.
    pub loss: f64,
}

/// Fits a model on the examples. `embedding_model` names the embedder for the weights file;
/// `training` is stored as the model's training summary. Thresholds start at 0.5 for the
/// caller to replace with cross-validated ones.
pub fn fit(
    examples: &[&Example<'_>],
    config: &TrainConfig,
    embedding_model: &str,
    training: serde_json::Value,
) -> (ComplexityModel, FitReport) {
    let rows: Vec<(&Example<'_>, f64)> = examples
        .iter()
        .filter_map(|e| config.label.target(e.outcome).map(|t| (*e, t)))
        .collect();
    let nf = features::COUNT;
    let d = if config.use_embedding {
        rows.first().map_or(0, |(e, _)| e.embedding.len())
    } else {
        0
    };
    let vectors: Vec<&[f32]> = rows.iter().map(|(e, _)| e.embedding).collect();
    let centroids = if d > 0 && config.group_topics {
        let groups: Vec<&str> = rows.iter().map(|(e, _)| e.group).collect();
        group_centroids(&vectors, &groups)
    } else if d > 0 && config.topics > 0 {
        spherical_kmeans(&vectors, config.topics, config.seed)
    } else {
        Vec::new()
    };
    let fitted_prior = (d > 0 && config.topic_prior)
        .then(|| {
            let prior_rows: Vec<(&[f32], &str, f64)> = rows
                .iter()
                .map(|(e, t)| (e.embedding, e.group, *t))
                .collect();
            topic_prior::fit(
                &prior_rows,
                PriorSettings {
                    temperature: config.topic_temperature,
                    shrinkage: config.topic_shrinkage,
                },
            )
        })
        .flatten();
    let (prior, offsets) = match fitted_prior {
        Some(fitted) => (Some(fitted.prior), fitted.offsets),
        None => (None, vec![0.0; rows.len()]),
    };
    let k = centroids.len();
    let topic_of: Vec<usize> = vectors
        .iter()
        .map(|v| nearest_centroid(&centroids, v).unwrap_or(0))
        .collect();
    // Columns: text features, then embedding dimensions, then one indicator per topic.
    let width = nf + d + k;

    // Standardise every column so one penalty fits all and L-BFGS is well conditioned.
    let raw = |r: usize, j: usize| -> f64 {
        let e = rows[r].0;
        if j < nf {
            f64::from(e.features.values[j])
        } else if j < nf + d {
            e.embedding.get(j - nf).map_or(0.0, |x| f64::from(*x))
        } else {
            f64::from(u8::from(topic_of[r] == j - nf - d))
        }
    };
    let n = rows.len().max(1) as f64;
    let mut means = vec![0.0; width];
    let mut stds = vec![0.0; width];
    for r in 0..rows.len() {
        for (j, m) in means.iter_mut().enumerate() {
            *m += raw(r, j) / n;
        }
    }
    for r in 0..rows.len() {
        for (j, s) in stds.iter_mut().enumerate() {
            let dev = raw(r, j) - means[j];
            *s += dev * dev / n;
        }
    }
    for s in &mut stds {
        // A constant column (say, no code in any prompt) gets a unit scale and, by the
        // penalty, a zero weight.
        *s = if s.sqrt() > 1e-8 { s.sqrt() } else { 1.0 };
    }
    if !config.whiten_embedding && d > 0 {
        // One shared scale for every dimension keeps the embedding's own geometry: directions
        // along which prompts differ a lot (topics) stay cheaper to use than quiet ones.
        let shared = (stds[nf..nf + d].iter().map(|s| s * s).sum::<f64>() / d as f64).sqrt();
        stds[nf..nf + d].iter_mut().for_each(|s| *s = shared);
    }
    let mut x: Vec<f32> = Vec::with_capacity(rows.len() * width);
    for r in 0..rows.len() {
        x.extend((0..width).map(|j| ((raw(r, j) - means[j]) / stds[j]) as f32));
    }
    let targets: Vec<f64> = rows.iter().map(|(_, t)| *t).collect();
    let penalty: Vec<f64> = (0..width)
        .map(|j| {
            if j < nf {
                config.l2_features
            } else if j < nf + d {
                config.l2_embedding
            } else {
                config.l2_topics
            }
        })
        .collect();

    let problem = Logistic {
        x: &x,
        targets: &targets,
        offsets: &offsets,
        width,
        penalty: &penalty,
    };
    let (theta, iterations, loss) = lbfgs(&problem, width + 1, config.max_iterations);

    // A topic indicator's standardised term w·(1{topic} − m)/s sums, over all topics, to
    // w_t/s_t − Σ w_j·m_j/s_j for a prompt in topic t: store that per topic.
    let topic_offset: f64 = (nf + d..width).map(|j| theta[j] * means[j] / stds[j]).sum();
    let topics = (k > 0).then(|| TopicWeights {
        centroids: centroids.clone(),
        weights: (nf + d..width)
            .map(|j| (theta[j] / stds[j] - topic_offset) as f32)
            .collect(),
        shares: (nf + d..width).map(|j| means[j] as f32).collect(),
    });

    let f32s = |v: &[f64]| v.iter().map(|x| *x as f32).collect::<Vec<f32>>();
    let model = ComplexityModel {
        format: FORMAT.to_owned(),
        version: VERSION,
        feature_names: features::NAMES.iter().map(|s| (*s).to_owned()).collect(),
        feature_means: f32s(&means[..nf]),
        feature_stds: f32s(&stds[..nf]),
        feature_weights: f32s(&theta[..nf]),
        embedding: (d > 0).then(|| EmbeddingWeights {
            model: embedding_model.to_owned(),
            means: f32s(&means[nf..nf + d]),
            stds: f32s(&stds[nf..nf + d]),
            weights: f32s(&theta[nf..nf + d]),
        }),
        topics,
        // The offsets carried the prior's base log-odds; the stored bias carries it instead.
        bias: (theta[width] + prior.as_ref().map_or(0.0, |p| f64::from(p.base_logit))) as f32,
        topic_prior: prior,
        thresholds: Thresholds {
            mid_above: 0.5,
            strong_above: 0.5,
        },
        training,
    };
    let report = FitReport {
        rows: rows.len(),
        iterations,
        loss,
    };
    (model, report)
}

/// Spherical k-means (cosine) on unit vectors: k-means++ seeding from a seeded SplitMix64
/// stream, then Lloyd iterations with re-normalised centroids. Deterministic for a seed.
pub fn spherical_kmeans(vectors: &[&[f32]], k: usize, seed: u64) -> Vec<Vec<f32>> {
    let n = vectors.len();
    let k = k.min(n);
    if k == 0 {
        return Vec::new();
    }
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let mut state = seed ^ 0x5DEE_CE66_D1CE_4E5B;
    let mut uniform = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    // k-means++: each next centroid drawn with probability ∝ its distance to the nearest one.
    let mut centroids: Vec<Vec<f32>> = vec![vectors[(uniform() * n as f64) as usize % n].to_vec()];
    let mut distance: Vec<f64> = vectors
        .iter()
        .map(|v| f64::from(1.0 - dot(v, &centroids[0])).max(0.0))
        .collect();
    while centroids.len() < k {
        let total: f64 = distance.iter().sum();
        let mut pick = uniform() * total;
        let mut chosen = n - 1;
        for (i, d) in distance.iter().enumerate() {
            if pick < *d {
                chosen = i;
                break;
            }
            pick -= d;
        }
        let c = vectors[chosen].to_vec();
        for (d, v) in distance.iter_mut().zip(vectors) {
            *d = d.min(f64::from(1.0 - dot(v, &c)).max(0.0));
        }
        centroids.push(c);
    }
    let mut assignment = vec![usize::MAX; n];
    for _ in 0..30 {
        let mut changed = false;
        for (a, v) in assignment.iter_mut().zip(vectors) {
            let best = nearest_centroid(&centroids, v).unwrap_or(0);
            changed |= *a != best;
            *a = best;
        }
        if !changed {
            break;
        }
        let dim = centroids[0].len();
        let mut sums = vec![vec![0f64; dim]; k];
        for (a, v) in assignment.iter().zip(vectors) {
            for (s, x) in sums[*a].iter_mut().zip(v.iter()) {
                *s += f64::from(*x);
            }
        }
        for (c, s) in centroids.iter_mut().zip(sums) {
            let norm = s.iter().map(|x| x * x).sum::<f64>().sqrt();
            // An emptied cluster keeps its old centroid.
            if norm > 0.0 {
                *c = s.iter().map(|x| (x / norm) as f32).collect();
            }
        }
    }
    centroids
}

/// Scores one example with a fitted model (features and embedding, no reasons).
pub fn score_example(model: &ComplexityModel, example: &Example<'_>) -> f32 {
    let embedding = model.embedding.as_ref().map(|_| example.embedding);
    model
        .score(&example.features, embedding)
        .map_or(f32::NAN, |s| s.score)
}

/// k-fold cross-validation: for each fold, fits on the others and scores the held-out rows.
/// Returns one out-of-fold score per example (in input order). Folds run on up to `threads`
/// threads; the result does not depend on how many.
pub fn cross_validate(examples: &[Example<'_>], config: &TrainConfig, threads: usize) -> Vec<f32> {
    let k = config.folds.max(2);
    let fold: Vec<usize> = examples
        .iter()
        .map(|e| fold_of(e.key, config.seed, k))
        .collect();
    let run_fold = |f: usize| -> Vec<(usize, f32)> {
        let train: Vec<&Example<'_>> = examples
            .iter()
            .zip(&fold)
            .filter(|(_, g)| **g != f)
            .map(|(e, _)| e)
            .collect();
        let (model, _) = fit(&train, config, "cv", serde_json::Value::Null);
        examples
            .iter()
            .enumerate()
            .filter(|(i, _)| fold[*i] == f)
            .map(|(i, e)| (i, score_example(&model, e)))
            .collect()
    };
    let mut scores = vec![f32::NAN; examples.len()];
    let threads = threads.clamp(1, k);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let run_fold = &run_fold;
                scope.spawn(move || {
                    (t..k)
                        .step_by(threads)
                        .flat_map(run_fold)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for handle in handles {
            // A fold that panicked leaves its rows NaN, which the curve treats as lowest.
            if let Ok(part) = handle.join() {
                for (i, s) in part {
                    scores[i] = s;
                }
            }
        }
    });
    scores
}

/// Mean cross-entropy of soft targets plus an L2 penalty, over row-major standardised rows.
struct Logistic<'a> {
    x: &'a [f32],
    targets: &'a [f64],
    /// A fixed log-odds term per row (the topic prior; zeros without one).
    offsets: &'a [f64],
    width: usize,
    penalty: &'a [f64],
}

impl Logistic<'_> {
    /// Loss and gradient at `theta` (weights, then bias).
    fn eval(&self, theta: &[f64], grad: &mut [f64]) -> f64 {
        grad.iter_mut().for_each(|g| *g = 0.0);
        let n = self.targets.len().max(1) as f64;
        let (w, b) = theta.split_at(self.width);
        let mut loss = 0.0;
        for ((row, t), offset) in self
            .x
            .chunks_exact(self.width)
            .zip(self.targets)
            .zip(self.offsets)
        {
            let z = offset
                + b[0]
                + row
                    .iter()
                    .zip(w)
                    .map(|(x, w)| f64::from(*x) * w)
                    .sum::<f64>();
            // log(1 + e^z) − t·z, computed without overflow.
            loss += z.max(0.0) + (-z.abs()).exp().ln_1p() - t * z;
            let r = sigmoid64(z) - t;
            for (g, x) in grad.iter_mut().zip(row) {
                *g += r * f64::from(*x);
            }
            grad[self.width] += r;
        }
        loss /= n;
        grad.iter_mut().for_each(|g| *g /= n);
        for ((g, w), l) in grad.iter_mut().zip(w).zip(self.penalty) {
            loss += 0.5 * l * w * w;
            *g += l * w;
        }
        loss
    }
}

fn sigmoid64(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// Limited-memory BFGS (10 pairs) with a backtracking Armijo line search, from zero.
/// Returns the parameters, the iterations run and the final loss.
fn lbfgs(problem: &Logistic<'_>, dim: usize, max_iterations: usize) -> (Vec<f64>, usize, f64) {
    const MEMORY: usize = 10;
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let mut theta = vec![0.0; dim];
    let mut grad = vec![0.0; dim];
    let mut loss = problem.eval(&theta, &mut grad);
    let mut history: std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)> =
        std::collections::VecDeque::new();
    let mut iterations = 0;
    while iterations < max_iterations {
        let gnorm = grad.iter().fold(0.0f64, |m, g| m.max(g.abs()));
        if gnorm < 1e-6 {
            break;
        }
        // Two-loop recursion: direction = −H·g.
        let mut q = grad.clone();
        let mut alphas = Vec::with_capacity(history.len());
        for (s, y, rho) in history.iter().rev() {
            let a = rho * dot(s, &q);
            q.iter_mut().zip(y).for_each(|(q, y)| *q -= a * y);
            alphas.push(a);
        }
        let gamma = history
            .back()
            .map_or(1.0 / gnorm.max(1.0), |(s, y, _)| dot(s, y) / dot(y, y));
        q.iter_mut().for_each(|v| *v *= gamma);
        for ((s, y, rho), a) in history.iter().zip(alphas.iter().rev()) {
            let b = rho * dot(y, &q);
            q.iter_mut().zip(s).for_each(|(q, s)| *q += (a - b) * s);
        }
        let mut direction: Vec<f64> = q.iter().map(|v| -v).collect();
        let mut slope = dot(&grad, &direction);
        if slope >= 0.0 {
            // Not a descent direction (curvature went bad): restart from steepest descent.
            history.clear();
            direction = grad.iter().map(|g| -g / gnorm.max(1.0)).collect();
            slope = dot(&grad, &direction);
        }

        let mut step = 1.0;
        let mut next = vec![0.0; dim];
        let mut next_grad = vec![0.0; dim];
        let mut next_loss;
        loop {
            next.iter_mut()
                .zip(&theta)
                .zip(&direction)
                .for_each(|((n, t), d)| *n = t + step * d);
            next_loss = problem.eval(&next, &mut next_grad);
            if next_loss <= loss + 1e-4 * step * slope || step < 1e-10 {
                break;
            }
            step *= 0.5;
        }
        let s: Vec<f64> = next.iter().zip(&theta).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = next_grad.iter().zip(&grad).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        let improvement = loss - next_loss;
        theta = next;
        grad = next_grad;
        loss = next_loss;
        iterations += 1;
        if sy > 1e-12 {
            if history.len() == MEMORY {
                history.pop_front();
            }
            history.push_back((s, y, 1.0 / sy));
        }
        if improvement.abs() < 1e-10 * loss.abs().max(1.0) {
            break;
        }
    }
    (theta, iterations, loss)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(
        values: [f32; features::COUNT],
        weak: bool,
        strong: bool,
        key: u64,
    ) -> Example<'static> {
        Example {
            features: Features { values },
            embedding: &[],
            outcome: Outcome::Correct { weak, strong },
            key,
            group: "toy",
        }
    }

    #[test]
    fn gain_labels_ties_as_one_half() {
        let t = |w, s| LabelScheme::Gain.target(Outcome::Correct { weak: w, strong: s });
        assert_eq!(t(false, true), Some(1.0));
        assert_eq!(t(true, false), Some(0.0));
        assert_eq!(t(true, true), Some(0.5));
        assert_eq!(t(false, false), Some(0.5));
        let both_wrong = Outcome::Correct {
            weak: false,
            strong: false,
        };
        assert_eq!(
            LabelScheme::OnlyStrongDropBothWrong.target(both_wrong),
            None
        );
        let graded = LabelScheme::Gain.target(Outcome::Graded {
            weak: 1.0,
            strong: 10.0,
        });
        assert_eq!(graded, Some(1.0));
    }

    #[test]
    fn folds_are_stable_and_balanced() {
        let counts = (0..10_000u64).fold([0usize; 5], |mut c, k| {
            c[fold_of(text_key(&k.to_string()), 7, 5)] += 1;
            c
        });
        assert!(
            counts.iter().all(|c| (1800..2200).contains(c)),
            "{counts:?}"
        );
        assert_eq!(fold_of(42, 7, 5), fold_of(42, 7, 5));
        assert_eq!(text_key("abc"), text_key("abc"));
    }

    #[test]
    fn learns_a_separable_signal_and_is_deterministic() {
        // Long prompts (feature 0 high) are the ones the weak model fails.
        let examples: Vec<Example<'static>> = (0..400u64)
            .map(|i| {
                let long = i % 2 == 0;
                let mut v = [0.0; features::COUNT];
                v[0] = if long { 5.0 } else { 2.0 } + (i % 7) as f32 * 0.1;
                example(v, !long, true, i)
            })
            .collect();
        let refs: Vec<&Example<'_>> = examples.iter().collect();
        let config = TrainConfig::default();
        let (model, report) = fit(&refs, &config, "none", serde_json::Value::Null);
        assert!(report.iterations > 0);
        let long = score_example(&model, &examples[0]);
        let short = score_example(&model, &examples[1]);
        assert!(long > 0.8 && short < 0.6, "{long} {short}");
        let (again, _) = fit(&refs, &config, "none", serde_json::Value::Null);
        assert_eq!(model, again);

        let oof = cross_validate(&examples, &config, 2);
        assert_eq!(oof, cross_validate(&examples, &config, 1));
        assert!(oof[0] > oof[1]);
    }

    #[test]
    fn kmeans_finds_separated_topics_deterministically() {
        let a = [1.0f32, 0.0, 0.0];
        let b = [0.0f32, 1.0, 0.0];
        let vectors: Vec<&[f32]> = (0..20)
            .map(|i| if i % 2 == 0 { &a[..] } else { &b[..] })
            .collect();
        let centroids = spherical_kmeans(&vectors, 2, 3);
        assert_eq!(centroids, spherical_kmeans(&vectors, 2, 3));
        let ta = nearest_centroid(&centroids, &a).unwrap();
        let tb = nearest_centroid(&centroids, &b).unwrap();
        assert_ne!(ta, tb);
    }

    /// 200 rows with the same features, alternating between topics `a` (where only the strong
    /// model is right) and `b` (both right), each with its embedding.
    fn two_topics<'a>(a: &'a [f32], b: &'a [f32]) -> Vec<Example<'a>> {
        (0..200u64)
            .map(|i| Example {
                features: Features {
                    values: [1.0; features::COUNT],
                },
                embedding: if i % 2 == 0 { a } else { b },
                outcome: Outcome::Correct {
                    weak: i % 2 == 1,
                    strong: true,
                },
                key: i,
                group: if i % 2 == 0 { "a" } else { "b" },
            })
            .collect()
    }

    #[test]
    fn the_topic_prior_is_an_offset_the_model_stores_and_reports() {
        // Same features; a penalty that keeps the linear embedding term out; the weak model
        // fails on topic `a`.
        let a = [0.8f32, 0.6];
        let b = [0.8f32, -0.6];
        let examples = two_topics(&a, &b);
        let refs: Vec<&Example<'_>> = examples.iter().collect();
        let config = TrainConfig {
            l2_embedding: 1e3,
            ..TrainConfig::default()
        };
        assert!(config.topic_prior, "on by default");
        let (model, _) = fit(&refs, &config, "toy", serde_json::Value::Null);
        let prior = model.topic_prior.as_ref().unwrap();
        assert_eq!(prior.groups, ["a", "b"]);
        let on_a = model.predict(&examples[0].features, Some(&a)).unwrap();
        let on_b = model.predict(&examples[1].features, Some(&b)).unwrap();
        assert!(on_a.score > 0.9 && on_b.score < 0.6, "{on_a:?} {on_b:?}");
        assert_eq!(on_a.reasons[0].feature, "topic");
        // Stored and read back, the prior scores the same.
        let again = ComplexityModel::from_json(&model.to_json()).unwrap();
        assert_eq!(score_example(&again, &examples[0]), on_a.score);
        // Without an embedding the prior is silent and the score is the average prompt's.
        let blind = model.predict(&examples[0].features, None).unwrap();
        assert!((blind.score - 0.75).abs() < 0.05, "{blind:?}");
        let without = TrainConfig {
            topic_prior: false,
            ..config
        };
        assert!(fit(&refs, &without, "toy", serde_json::Value::Null)
            .0
            .topic_prior
            .is_none());
    }

    #[test]
    fn topic_offsets_separate_topics_the_features_cannot() {
        // Same features everywhere; the weak model fails only on topic `a`.
        let a = [1.0f32, 0.0];
        let b = [0.0f32, 1.0];
        let examples = two_topics(&a, &b);
        let refs: Vec<&Example<'_>> = examples.iter().collect();
        let kmeans = TrainConfig {
            topics: 2,
            ..TrainConfig::default()
        };
        let groups = TrainConfig {
            group_topics: true,
            ..TrainConfig::default()
        };
        for config in [kmeans, groups] {
            let (model, _) = fit(&refs, &config, "toy", serde_json::Value::Null);
            let topics = model.topics.as_ref().unwrap();
            assert_eq!(topics.centroids.len(), 2, "{config:?}");
            let c = model.predict(&examples[0].features, Some(&a)).unwrap();
            assert!(c.score > score_example(&model, &examples[1]));
            assert!(c
                .reasons
                .iter()
                .any(|r| r.feature == "topic" || r.feature == "embedding"));
        }
    }

    #[test]
    fn group_centroids_skip_small_groups_and_are_unit_length() {
        let (x, y) = ([3.0f32, 4.0], [0.0f32, 2.0]);
        let mut vectors: Vec<&[f32]> = vec![&x[..]; MIN_GROUP_ROWS];
        let mut groups = vec!["big"; MIN_GROUP_ROWS];
        vectors.push(&y[..]);
        groups.push("small");
        let centroids = group_centroids(&vectors, &groups);
        assert_eq!(centroids, vec![vec![0.6, 0.8]]);
    }
}
