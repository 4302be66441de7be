//! Zipf-distributed account numbers: account `k` (from 0) is drawn with
//! weight `1 / (k + 1)^alpha`; alpha 0 is uniform.

use rand::Rng;

/// Draws account numbers `0..n` by Zipf's law.
pub struct Zipf {
    /// Cumulative weights, `cumulative[k]` = sum of the weights of `0..=k`;
    /// empty when alpha is 0 (uniform).
    cumulative: Vec<f64>,
    n: u32,
}

impl Zipf {
    /// The distribution over `0..n` with exponent `alpha` (`n` ≥ 1).
    pub fn new(n: u32, alpha: f64) -> Self {
        let cumulative = if alpha == 0.0 {
            Vec::new()
        } else {
            let mut total = 0.0;
            (1..=n)
                .map(|k| {
                    total += f64::from(k).powf(-alpha);
                    total
                })
                .collect()
        };
        Self { cumulative, n }
    }

    /// One account number.
    pub fn sample(&self, rng: &mut impl Rng) -> u32 {
        let Some(&total) = self.cumulative.last() else {
            return rng.random_range(0..self.n);
        };
        let u = rng.random::<f64>() * total;
        let k = self.cumulative.partition_point(|&c| c < u);
        (k as u32).min(self.n - 1)
    }

    /// Two different account numbers (the same one only when `n` is 1).
    pub fn pair(&self, rng: &mut impl Rng) -> (u32, u32) {
        let from = self.sample(rng);
        loop {
            let to = self.sample(rng);
            if to != from || self.n < 2 {
                return (from, to);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::Zipf;

    #[test]
    fn alpha_zero_is_uniform_and_skew_favours_the_first_accounts() {
        let mut rng = StdRng::seed_from_u64(7);
        let count_zero =
            |zipf: &Zipf, rng: &mut StdRng| (0..10_000).filter(|_| zipf.sample(rng) == 0).count();
        let uniform = Zipf::new(100, 0.0);
        assert!(count_zero(&uniform, &mut rng) < 300);
        // At alpha 1.5 account 0 has weight 1 / zeta(1.5) ≈ 0.38 of the total.
        let skewed = Zipf::new(100, 1.5);
        let zeros = count_zero(&skewed, &mut rng);
        assert!((3_500..4_500).contains(&zeros), "{zeros}");
        for _ in 0..1_000 {
            let (from, to) = skewed.pair(&mut rng);
            assert_ne!(from, to);
            assert!(from < 100 && to < 100);
        }
    }
}
