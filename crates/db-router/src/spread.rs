//! Pure routing arithmetic: key -> (database, table). No I/O.

use std::fmt;

use crate::error::RouterError;

/// Java's `String.hashCode()`: `h = 31 * h + c` over the UTF-16 code units of
/// `s`, with wrapping 32-bit arithmetic.
///
/// Rows were historically placed by a Java service, so the hash must match it
/// bit for bit, including for characters outside the BMP (which Java sees as
/// two surrogate code units).
#[must_use]
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// A validated `db_count x tb_count` layout.
///
/// The fields are private so that every `Spread` in existence has passed the
/// power-of-two check, which the mask in [`Spread::route`] relies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Spread {
    db_count: u32,
    tb_count: u32,
}

impl Spread {
    /// Validates the layout: both counts at least 1 and their product a power of two.
    ///
    /// # Errors
    /// [`RouterError::NoShards`], [`RouterError::NoTables`] or
    /// [`RouterError::NotPowerOfTwo`].
    pub fn new(db_count: u32, tb_count: u32) -> Result<Self, RouterError> {
        if db_count == 0 {
            return Err(RouterError::NoShards);
        }
        if tb_count == 0 {
            return Err(RouterError::NoTables);
        }
        match db_count.checked_mul(tb_count) {
            Some(size) if size.is_power_of_two() => Ok(Self { db_count, tb_count }),
            _ => Err(RouterError::NotPowerOfTwo { db_count, tb_count }),
        }
    }

    /// Number of databases (shards).
    #[must_use]
    pub fn db_count(&self) -> u32 {
        self.db_count
    }

    /// Number of tables per database.
    #[must_use]
    pub fn tb_count(&self) -> u32 {
        self.tb_count
    }

    /// Total number of tables over all databases.
    #[must_use]
    pub fn size(&self) -> u32 {
        // Cannot overflow: checked in `new`.
        self.db_count * self.tb_count
    }

    /// Routes `key`:
    /// `h = hash(key); idx = (size - 1) & (h ^ (h >>> 16))`,
    /// `db = idx / tb_count + 1`, `table = idx - tb_count * (db - 1)`.
    #[must_use]
    pub fn route(&self, key: &str) -> Route {
        // Reinterpreting the bits as u32 makes `>>` the unsigned `>>>` of Java.
        let h = java_string_hash(key) as u32;
        let idx = (self.size() - 1) & (h ^ (h >> 16));
        let db = idx / self.tb_count + 1;
        let table = idx - self.tb_count * (db - 1);
        Route { db, table }
    }

    /// Every (database, table) pair, database-major: `01/_000, 01/_001, ..., 02/_000, ...`.
    pub fn routes(&self) -> impl Iterator<Item = Route> + use<> {
        let tb_count = self.tb_count;
        (1..=self.db_count).flat_map(move |db| (0..tb_count).map(move |table| Route { db, table }))
    }

    /// Whether `route` addresses a table inside this layout.
    #[must_use]
    pub fn contains(&self, route: &Route) -> bool {
        route.db >= 1 && route.db <= self.db_count && route.table < self.tb_count
    }
}

/// Where a key lives: database `db` (1-based) and table `table` (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route {
    /// 1-based database number, as in `db01`.
    pub db: u32,
    /// 0-based table number, as in `_000`.
    pub table: u32,
}

impl Route {
    /// 0-based database index, for indexing a list of pools.
    #[must_use]
    pub fn db_index(&self) -> usize {
        // Never negative for a route made by `Spread`; saturate instead of
        // panicking on a hand-built `db: 0`, which `Router::pool` then rejects
        // as out of range anyway.
        self.db.saturating_sub(1) as usize
    }

    /// Database label, zero-padded to two digits: `"01"`.
    #[must_use]
    pub fn db_label(&self) -> String {
        format!("{:02}", self.db)
    }

    /// Table suffix, zero-padded to three digits: `"_001"`.
    #[must_use]
    pub fn table_suffix(&self) -> String {
        format!("_{:03}", self.table)
    }

    /// Physical table name: `table("user_take")` -> `"user_take_001"`.
    #[must_use]
    pub fn table(&self, base: &str) -> String {
        format!("{base}{}", self.table_suffix())
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "db {:02} table _{:03}", self.db, self.table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Expected values computed with `String.hashCode()` on Java 17.
    // Non-ASCII inputs are written as escapes so that the exact UTF-16 code
    // units are visible and no editor normalisation can change them.
    const JAVA_VECTORS: &[(&str, i32)] = &[
        ("", 0),
        ("a", 97),
        ("xiaofuge", 265_141_580),
        ("fustack", -504_537_319),
        // Hash is exactly i32::MIN: exercises wrap-around and the sign bit.
        ("polygenelubricants", -2_147_483_648),
        ("The quick brown fox jumps over the lazy dog", -609_428_141),
        // "小傅哥": U+5C0F U+5085 U+54E5.
        ("\u{5c0f}\u{5085}\u{54e5}", 23_308_623),
        // "Ünïcödé" in NFC (precomposed) form.
        ("\u{dc}n\u{ef}c\u{f6}d\u{e9}", 1_055_431_381),
        // U+1F600 is the surrogate pair D83D DE00 in Java.
        ("user\u{1f600}", -834_260_370),
        ("\u{1f600}", 1_772_899),
    ];

    #[test]
    fn java_hash_matches_java() {
        for &(input, expected) in JAVA_VECTORS {
            assert_eq!(java_string_hash(input), expected, "hash of {input:?}");
        }
    }

    #[test]
    fn non_bmp_character_hashes_as_surrogate_pair() {
        // 31 * 0xD83D + 0xDE00: would be 0x1F600 if code points were used.
        assert_eq!(java_string_hash("\u{1f600}"), 31 * 0xd83d + 0xde00);
        assert_ne!(java_string_hash("\u{1f600}"), 0x1f600);
    }

    // (key, db, table) for 2x4 and 4x8, computed with the Java formula on Java 17.
    const ROUTE_VECTORS_2X4: &[(&str, u32, u32)] = &[
        ("xiaofuge", 1, 1),
        ("fustack", 2, 0),
        ("", 1, 0),
        ("polygenelubricants", 1, 0),
        ("\u{5c0f}\u{5085}\u{54e5}", 2, 0),
        ("\u{dc}n\u{ef}c\u{f6}d\u{e9}", 2, 1),
        ("user\u{1f600}", 1, 0),
        ("The quick brown fox jumps over the lazy dog", 2, 3),
    ];
    const ROUTE_VECTORS_4X8: &[(&str, u32, u32)] = &[
        ("xiaofuge", 1, 1),
        ("fustack", 3, 4),
        ("\u{5c0f}\u{5085}\u{54e5}", 2, 4),
        ("\u{dc}n\u{ef}c\u{f6}d\u{e9}", 4, 5),
        ("user\u{1f600}", 2, 0),
        ("\u{1f600}", 4, 0),
        ("The quick brown fox jumps over the lazy dog", 4, 7),
    ];

    fn check_vectors(db_count: u32, tb_count: u32, vectors: &[(&str, u32, u32)]) {
        let spread = Spread::new(db_count, tb_count).unwrap();
        for &(key, db, table) in vectors {
            assert_eq!(
                spread.route(key),
                Route { db, table },
                "{db_count}x{tb_count} route of {key:?}"
            );
        }
    }

    #[test]
    fn routes_match_java_2x4() {
        check_vectors(2, 4, ROUTE_VECTORS_2X4);
    }

    #[test]
    fn routes_match_java_4x8() {
        check_vectors(4, 8, ROUTE_VECTORS_4X8);
    }

    #[test]
    fn reference_examples_and_labels() {
        let spread = Spread::new(2, 4).unwrap();
        let r = spread.route("xiaofuge");
        assert_eq!(
            (r.db_label().as_str(), r.table_suffix().as_str()),
            ("01", "_001")
        );
        assert_eq!(r.table("user_take"), "user_take_001");
        assert_eq!(r.db_index(), 0);
        assert_eq!(r.to_string(), "db 01 table _001");
        let r = spread.route("fustack");
        assert_eq!(
            (r.db_label().as_str(), r.table_suffix().as_str()),
            ("02", "_000")
        );
        assert_eq!(r.db_index(), 1);
    }

    #[test]
    fn rejects_bad_layouts() {
        assert!(matches!(
            Spread::new(3, 4),
            Err(RouterError::NotPowerOfTwo {
                db_count: 3,
                tb_count: 4
            })
        ));
        assert!(matches!(Spread::new(0, 4), Err(RouterError::NoShards)));
        assert!(matches!(Spread::new(2, 0), Err(RouterError::NoTables)));
        // Product overflows u32.
        assert!(matches!(
            Spread::new(1 << 16, 1 << 16),
            Err(RouterError::NotPowerOfTwo { .. })
        ));
        // Any split of a power of two is fine.
        assert!(Spread::new(1, 8).is_ok());
        assert!(Spread::new(8, 1).is_ok());
    }

    #[test]
    fn one_by_one_routes_everything_to_db01_table_000() {
        let spread = Spread::new(1, 1).unwrap();
        for key in ["", "xiaofuge", "fustack", "user\u{1f600}"] {
            assert_eq!(spread.route(key), Route { db: 1, table: 0 });
        }
        assert_eq!(
            spread.routes().collect::<Vec<_>>(),
            vec![Route { db: 1, table: 0 }]
        );
    }

    #[test]
    fn routes_lists_every_pair_once_in_order() {
        let spread = Spread::new(2, 4).unwrap();
        let all: Vec<_> = spread.routes().collect();
        assert_eq!(all.len(), 8);
        let mut sorted = all.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, all, "database-major order, no duplicates");
        assert!(all.iter().all(|r| spread.contains(r)));
        assert_eq!(all.first(), Some(&Route { db: 1, table: 0 }));
        assert_eq!(all.last(), Some(&Route { db: 2, table: 3 }));
        assert!(!spread.contains(&Route { db: 3, table: 0 }));
        assert!(!spread.contains(&Route { db: 0, table: 0 }));
        assert!(!spread.contains(&Route { db: 1, table: 4 }));
    }

    #[test]
    fn keys_spread_roughly_evenly_over_2x4() {
        const KEYS: u32 = 100_000;
        let spread = Spread::new(2, 4).unwrap();
        let mut counts = [0u32; 8];
        for i in 0..KEYS {
            // Mix sequential ids with a differently shaped id space so the
            // check is not only about the last character changing.
            let key = if i % 2 == 0 {
                format!("user{i}")
            } else {
                format!("{:x}-\u{5c0f}-{}", i.wrapping_mul(2_654_435_761), i % 97)
            };
            let r = spread.route(&key);
            assert!(r.db_index() < 2 && r.table < 4, "{key:?} -> {r:?}");
            counts[r.db_index() * 4 + r.table as usize] += 1;
        }
        let expected = KEYS / 8;
        for (slot, &n) in counts.iter().enumerate() {
            // Loose bound: within 10% of a perfect 1/8.
            assert!(
                n.abs_diff(expected) < expected / 10,
                "slot {slot} got {n} keys, expected about {expected}: {counts:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn route_is_always_in_range(key in ".*", db_exp in 0u32..6, tb_exp in 0u32..6) {
            let spread = Spread::new(1 << db_exp, 1 << tb_exp).unwrap();
            let r = spread.route(&key);
            prop_assert!(spread.contains(&r));
            prop_assert!(r.db_index() < spread.db_count() as usize);
            prop_assert!(r.table < spread.tb_count());
        }
    }
}
