use rand::Rng;

/// Walker/Vose alias table over integer weights: O(n) to build, O(1) per sample, and exact:
/// every comparison is on integers, so the sampled distribution is the weights' ratio with
/// no floating-point drift.
#[derive(Debug, Clone)]
pub struct AliasTable {
    /// Threshold in [0, total] for keeping the bucket's own index.
    keep: Vec<u64>,
    alias: Vec<u32>,
    total: u64,
}

impl AliasTable {
    /// Builds a table over `weights`. Returns `None` when there is nothing to draw
    /// (no weights, or all zero).
    pub fn new(weights: &[u64]) -> Option<Self> {
        let n = weights.len();
        let total: u64 = weights.iter().sum();
        if n == 0 || total == 0 {
            return None;
        }
        // Scale each weight by n so that the average bucket holds exactly `total`.
        let n64 = n as u64;
        let mut scaled: Vec<u64> = weights.iter().map(|w| w * n64).collect();
        let mut keep = vec![total; n];
        let mut alias: Vec<u32> = (0..n as u32).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) =
            (0..n).partition(|&i| scaled[i] < total);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            keep[s] = scaled[s];
            alias[s] = l as u32;
            scaled[l] = scaled[l] + scaled[s] - total;
            if scaled[l] < total {
                large.pop();
                small.push(l);
            }
        }
        // Whatever is left holds exactly `total` (integer arithmetic leaves no residue).
        for i in small.into_iter().chain(large) {
            keep[i] = total;
        }
        Some(Self { keep, alias, total })
    }

    pub fn len(&self) -> usize {
        self.keep.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keep.is_empty()
    }

    /// Draws an index with probability `weights[i] / sum(weights)`.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> usize {
        let bucket = rng.random_range(0..self.keep.len());
        let roll = rng.random_range(0..self.total);
        if roll < self.keep[bucket] {
            bucket
        } else {
            self.alias[bucket] as usize
        }
    }

    /// The exact probability of `index` as (numerator, denominator), recomputed from the table;
    /// used to prove the table right without sampling.
    pub fn probability(&self, index: usize) -> (u128, u128) {
        let n = self.keep.len() as u128;
        let total = u128::from(self.total);
        let mut numerator: u128 = 0;
        for (bucket, (&keep, &alias)) in self.keep.iter().zip(&self.alias).enumerate() {
            if bucket == index {
                numerator += u128::from(keep);
            }
            if alias as usize == index {
                numerator += total - u128::from(keep);
            }
        }
        (numerator, n * total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_exact(weights: &[u64]) {
        let table = AliasTable::new(weights).expect("non-empty");
        let sum: u128 = weights.iter().map(|&w| u128::from(w)).sum();
        for (i, &w) in weights.iter().enumerate() {
            let (num, den) = table.probability(i);
            assert_eq!(num * sum, u128::from(w) * den, "index {i} of {weights:?}");
        }
    }

    #[test]
    fn tables_are_exact() {
        assert_exact(&[1]);
        assert_exact(&[5, 15, 20, 25, 35]);
        assert_exact(&[0, 7, 0, 3]);
        assert_exact(&[1, 99_999_999]);
        assert_exact(&[50_000, 0, 99_950_000]);
        assert_exact(&[3, 3, 3, 3, 3, 3, 3]);
    }

    #[test]
    fn empty_or_zero_is_none() {
        assert!(AliasTable::new(&[]).is_none());
        assert!(AliasTable::new(&[0, 0]).is_none());
    }

    proptest::proptest! {
        #[test]
        fn random_tables_are_exact(weights in proptest::collection::vec(0u64..100_000_000, 1..40)) {
            proptest::prop_assume!(weights.iter().any(|&w| w > 0));
            assert_exact(&weights);
        }
    }
}
