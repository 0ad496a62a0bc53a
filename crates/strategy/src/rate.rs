use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Decimal places a rate may carry. Eight places express a one-in-a-hundred-million prize,
/// far past the 1/100 of the platforms this one replaces.
pub const RATE_SCALE: u32 = 8;
/// The number of rate units in a probability of 1.
pub const RATE_UNITS: u64 = 100_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    #[error("rate {0} is not a decimal number")]
    NotANumber(String),
    #[error("rate {0} is negative")]
    Negative(Decimal),
    #[error("rate {0} is above 1")]
    AboveOne(Decimal),
    #[error("rate {0} has more than {RATE_SCALE} decimal places")]
    TooPrecise(Decimal),
}

/// A probability in [0, 1], held exactly as an integer count of 1e-8 units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Rate(u64);

impl Rate {
    pub const ZERO: Rate = Rate(0);
    pub const ONE: Rate = Rate(RATE_UNITS);

    /// Builds a rate from a count of 1e-8 units.
    pub fn from_units(units: u64) -> Result<Self, RateError> {
        if units > RATE_UNITS {
            return Err(RateError::AboveOne(Decimal::new(units as i64, RATE_SCALE)));
        }
        Ok(Self(units))
    }

    pub fn from_decimal(value: Decimal) -> Result<Self, RateError> {
        if value.is_sign_negative() && !value.is_zero() {
            return Err(RateError::Negative(value));
        }
        if value > Decimal::ONE {
            return Err(RateError::AboveOne(value));
        }
        let normalized = value.normalize();
        if normalized.scale() > RATE_SCALE {
            return Err(RateError::TooPrecise(value));
        }
        let mut scaled = normalized;
        scaled.rescale(RATE_SCALE);
        // `mantissa` is exact after rescaling to RATE_SCALE, and bounded by RATE_UNITS.
        let units = u64::try_from(scaled.mantissa()).map_err(|_| RateError::Negative(value))?;
        Ok(Self(units))
    }

    pub const fn units(self) -> u64 {
        self.0
    }

    pub fn to_decimal(self) -> Decimal {
        Decimal::new(self.0 as i64, RATE_SCALE).normalize()
    }

    pub fn as_f64(self) -> f64 {
        self.0 as f64 / RATE_UNITS as f64
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.to_decimal().fmt(f)
    }
}

impl FromStr for Rate {
    type Err = RateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let value = Decimal::from_str_exact(s.trim())
            .or_else(|_| Decimal::from_scientific(s.trim()))
            .map_err(|_| RateError::NotANumber(s.to_owned()))?;
        Self::from_decimal(value)
    }
}

impl TryFrom<Decimal> for Rate {
    type Error = RateError;

    fn try_from(value: Decimal) -> Result<Self, Self::Error> {
        Self::from_decimal(value)
    }
}

impl Serialize for Rate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Decimal strings are canonical ("0.0005"); a JSON number is accepted for
        // convenience and parsed from its textual form, never through a float.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Str(String),
            Num(serde_json_number::Number),
        }
        mod serde_json_number {
            // A number kept as the text serde saw, to avoid float rounding.
            #[derive(Debug)]
            pub struct Number(pub String);
            impl<'de> serde::Deserialize<'de> for Number {
                fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                    struct V;
                    impl serde::de::Visitor<'_> for V {
                        type Value = Number;
                        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                            f.write_str("a decimal rate")
                        }
                        fn visit_u64<E>(self, v: u64) -> Result<Number, E> {
                            Ok(Number(v.to_string()))
                        }
                        fn visit_i64<E>(self, v: i64) -> Result<Number, E> {
                            Ok(Number(v.to_string()))
                        }
                        fn visit_f64<E>(self, v: f64) -> Result<Number, E> {
                            // Shortest representation that round-trips: "0.05" stays "0.05".
                            Ok(Number(format!("{v}")))
                        }
                    }
                    d.deserialize_any(V)
                }
            }
        }
        let text = match Raw::deserialize(d)? {
            Raw::Str(s) => s,
            Raw::Num(n) => n.0,
        };
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_rates() {
        assert_eq!("0.0005".parse::<Rate>().map(Rate::units), Ok(50_000));
        assert_eq!("1".parse::<Rate>(), Ok(Rate::ONE));
        assert_eq!("0".parse::<Rate>(), Ok(Rate::ZERO));
        assert_eq!("0.00000001".parse::<Rate>().map(Rate::units), Ok(1));
        assert_eq!(
            "0.25000000000".parse::<Rate>().map(Rate::units),
            Ok(25_000_000)
        );
    }

    #[test]
    fn rejects_bad_rates() {
        assert!(matches!(
            "-0.1".parse::<Rate>(),
            Err(RateError::Negative(_))
        ));
        assert!(matches!(
            "1.0001".parse::<Rate>(),
            Err(RateError::AboveOne(_))
        ));
        assert!(matches!(
            "0.000000001".parse::<Rate>(),
            Err(RateError::TooPrecise(_))
        ));
        assert!(matches!(
            "abc".parse::<Rate>(),
            Err(RateError::NotANumber(_))
        ));
    }

    #[test]
    fn serde_round_trip_keeps_text() {
        let r: Rate = serde_json::from_str("\"0.0005\"").expect("string rate");
        assert_eq!(serde_json::to_string(&r).expect("ser"), "\"0.0005\"");
        let n: Rate = serde_json::from_str("0.05").expect("numeric rate");
        assert_eq!(n.units(), 5_000_000);
        assert!(serde_json::from_str::<Rate>("\"2\"").is_err());
    }
}
