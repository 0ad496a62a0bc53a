use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use lottery_domain::AwardId;
use rand::Rng;

use crate::alias::AliasTable;
use crate::model::{DrawMode, Strategy};
use crate::rate::RATE_UNITS;

/// The set of a strategy's awards that are out of stock, by position in the strategy.
///
/// Kept as a bit set so the stock layer can maintain it incrementally and a draw reads it in
/// O(1), whatever the number of awards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct OutOfStock(u128);

impl OutOfStock {
    pub const NONE: OutOfStock = OutOfStock(0);

    /// Builds the set from award ids; ids not in the strategy are ignored.
    pub fn of(strategy: &Strategy, awards: impl IntoIterator<Item = AwardId>) -> Self {
        let mut set = Self::NONE;
        for id in awards {
            if let Some(pos) = strategy.position(id) {
                set.insert(pos);
            }
        }
        set
    }

    pub fn insert(&mut self, position: usize) {
        if position < 128 {
            self.0 |= 1u128 << position;
        }
    }

    pub fn contains(self, position: usize) -> bool {
        position < 128 && self.0 & (1u128 << position) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// The result of one draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Draw {
    /// The award was drawn and was in stock when the draw looked.
    Award(AwardId),
    /// Single mode drew an award that is out of stock (a miss, unless a fallback applies).
    OutOfStock(AwardId),
    /// No prize: the remainder of the rates, or nothing left to draw.
    Nothing,
}

/// Entirety tables kept per availability set. Awards run out one by one, so a strategy sees
/// few distinct sets; the cap only guards memory against pathological churn.
const ENTIRETY_CACHE_CAP: usize = 64;

/// Draws from one strategy in O(1) per draw after one-time precomputation.
#[derive(Debug)]
pub struct Drawer {
    strategy: Arc<Strategy>,
    /// Single mode: the awards plus a trailing "no prize" slot for the rates' remainder.
    single: Option<AliasTable>,
    /// Entirety mode: one table per out-of-stock set, built on first use.
    entirety: RwLock<HashMap<OutOfStock, Option<Arc<EntiretyTable>>>>,
}

#[derive(Debug)]
struct EntiretyTable {
    table: AliasTable,
    /// Maps a table index back to the award position.
    positions: Vec<usize>,
}

impl Drawer {
    pub fn new(strategy: impl Into<Arc<Strategy>>) -> Self {
        let strategy = strategy.into();
        let single = match strategy.mode() {
            DrawMode::Single => {
                let mut weights: Vec<u64> =
                    strategy.awards().iter().map(|a| a.rate.units()).collect();
                let sum: u64 = weights.iter().sum();
                weights.push(RATE_UNITS.saturating_sub(sum));
                AliasTable::new(&weights)
            }
            DrawMode::Entirety => None,
        };
        let drawer = Self {
            strategy,
            single,
            entirety: RwLock::new(HashMap::new()),
        };
        if drawer.strategy.mode() == DrawMode::Entirety {
            // Warm the common case so the first draw pays nothing extra.
            drawer.entirety_table(OutOfStock::NONE);
        }
        drawer
    }

    pub fn strategy(&self) -> &Arc<Strategy> {
        &self.strategy
    }

    /// Draws once. `out_of_stock` is the set of the strategy's awards that have no stock left.
    pub fn draw<R: Rng + ?Sized>(&self, rng: &mut R, out_of_stock: OutOfStock) -> Draw {
        let awards = self.strategy.awards();
        match self.strategy.mode() {
            DrawMode::Single => {
                let Some(table) = &self.single else {
                    return Draw::Nothing;
                };
                let index = table.sample(rng);
                match awards.get(index) {
                    None => Draw::Nothing,
                    Some(a) if out_of_stock.contains(index) => Draw::OutOfStock(a.award_id),
                    Some(a) => Draw::Award(a.award_id),
                }
            }
            DrawMode::Entirety => match self.entirety_table(out_of_stock) {
                None => Draw::Nothing,
                Some(t) => {
                    let position = t.positions[t.table.sample(rng)];
                    Draw::Award(awards[position].award_id)
                }
            },
        }
    }

    /// The exact probability of drawing each award given `out_of_stock`, as fractions
    /// (numerator, denominator) in award order. Used by tests and by simulations.
    pub fn probabilities(&self, out_of_stock: OutOfStock) -> Vec<(AwardId, u128, u128)> {
        let awards = self.strategy.awards();
        match self.strategy.mode() {
            DrawMode::Single => awards
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    let (num, den) = self.single.as_ref().map_or((0, 1), |t| t.probability(i));
                    let num = if out_of_stock.contains(i) { 0 } else { num };
                    (a.award_id, num, den)
                })
                .collect(),
            DrawMode::Entirety => {
                let table = self.entirety_table(out_of_stock);
                awards
                    .iter()
                    .enumerate()
                    .map(|(i, a)| match &table {
                        Some(t) => match t.positions.iter().position(|&p| p == i) {
                            Some(k) => {
                                let (num, den) = t.table.probability(k);
                                (a.award_id, num, den)
                            }
                            None => (a.award_id, 0, 1),
                        },
                        None => (a.award_id, 0, 1),
                    })
                    .collect()
            }
        }
    }

    fn entirety_table(&self, out_of_stock: OutOfStock) -> Option<Arc<EntiretyTable>> {
        if let Some(hit) = self
            .entirety
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&out_of_stock)
        {
            return hit.clone();
        }
        let (positions, weights): (Vec<usize>, Vec<u64>) = self
            .strategy
            .awards()
            .iter()
            .enumerate()
            .filter(|(i, a)| !out_of_stock.contains(*i) && a.rate.units() > 0)
            .map(|(i, a)| (i, a.rate.units()))
            .unzip();
        let built =
            AliasTable::new(&weights).map(|table| Arc::new(EntiretyTable { table, positions }));
        let mut cache = self
            .entirety
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= ENTIRETY_CACHE_CAP {
            cache.clear();
        }
        cache.insert(out_of_stock, built.clone());
        built
    }
}
