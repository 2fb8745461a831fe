//! Bit rates as operators write them: `"200Mbit"`, `"1.5 Gbit/s"`, `"500kbit"`, or a
//! plain number of bits per second.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A rate in bits per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rate(pub u64);

/// Why a rate does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a rate; write e.g. \"200Mbit\", \"1.5Gbit\", \"500kbit\" or a number of bits/s"
)]
pub struct RateError(String);

impl Rate {
    /// Bits per second.
    pub fn bps(self) -> u64 {
        self.0
    }
}

impl FromStr for Rate {
    type Err = RateError;

    fn from_str(s: &str) -> Result<Rate, RateError> {
        let bad = || RateError(s.to_string());
        let t = s.trim();
        let t = t
            .strip_suffix("/s")
            .or_else(|| t.strip_suffix("ps"))
            .unwrap_or(t);
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let value: f64 = num.parse().map_err(|_| bad())?;
        let scale = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "bit" | "b" => 1.0,
            "k" | "kbit" => 1e3,
            "m" | "mbit" => 1e6,
            "g" | "gbit" => 1e9,
            "t" | "tbit" => 1e12,
            _ => return Err(bad()),
        };
        let bps = value * scale;
        if !bps.is_finite() || !(0.0..=1.8e19).contains(&bps) {
            return Err(bad());
        }
        Ok(Rate(bps.round() as u64))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (scale, unit) in [
            (1_000_000_000, "Gbit"),
            (1_000_000, "Mbit"),
            (1_000, "kbit"),
        ] {
            if self.0 >= scale && self.0.is_multiple_of(scale) {
                return write!(f, "{}{unit}", self.0 / scale);
            }
        }
        write!(f, "{}bit", self.0)
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Rate, D::Error> {
        struct RateVisitor;
        impl Visitor<'_> for RateVisitor {
            type Value = Rate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a rate such as \"200Mbit\" or a number of bits/s")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Rate, E> {
                Ok(Rate(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Rate, E> {
                u64::try_from(v)
                    .map(Rate)
                    .map_err(|_| E::custom("a rate cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Rate, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(RateVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_operators_write() {
        for (s, bps) in [
            ("200Mbit", 200_000_000),
            ("200 Mbit/s", 200_000_000),
            ("1.5Gbit", 1_500_000_000),
            ("500kbit", 500_000),
            ("20M", 20_000_000),
            ("12345", 12_345),
        ] {
            assert_eq!(s.parse::<Rate>(), Ok(Rate(bps)), "{s}");
        }
        for s in ["", "fast", "200 Mbyte", "200mbps", "-5Mbit", "1..2Mbit"] {
            assert!(s.parse::<Rate>().is_err(), "{s}");
        }
    }

    #[test]
    fn displays_in_the_largest_exact_unit_and_round_trips() {
        for bps in [200_000_000, 1_500_000_000, 500_000, 12_345, 0] {
            let r = Rate(bps);
            assert_eq!(r.to_string().parse::<Rate>(), Ok(r));
        }
        assert_eq!(Rate(200_000_000).to_string(), "200Mbit");
        assert_eq!(Rate(1_500_000_000).to_string(), "1500Mbit");
    }
}
