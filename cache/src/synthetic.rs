//! Deterministic synthetic vectors for tests and benchmarks of the index, which should not
//! need the embedding model: an xorshift generator and random unit vectors drawn from it.

/// A xorshift64 pseudo-random generator: fast, seedable, not for anything secret.
#[derive(Debug, Clone)]
pub struct Xorshift(u64);

impl Xorshift {
    /// A generator from `seed` (any value; zero is nudged, as xorshift would stay at zero).
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// The next value, uniform in [-0.5, 0.5).
    pub fn next_centered(&mut self) -> f32 {
        let state = &mut self.0;
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        (*state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }

    /// A random unit vector of `dim` components.
    pub fn unit_vector(&mut self, dim: usize) -> Vec<f32> {
        normalised((0..dim).map(|_| self.next_centered()).collect())
    }
}

/// `n` random unit vectors of `dim` components from `seed`.
pub fn random_units(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Xorshift::new(seed);
    (0..n).map(|_| rng.unit_vector(dim)).collect()
}

/// `v` scaled to unit length (unchanged when it is all zeros).
pub fn normalised(v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm == 0.0 {
        return v;
    }
    v.into_iter().map(|x| x / norm).collect()
}
