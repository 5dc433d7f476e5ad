//! The emulated device's latency model: how long after a command is fetched
//! its completion becomes visible.

use std::time::Duration;

/// Device time per command. Commands are serviced in parallel (no internal
/// queueing), so the model is the device latency an idle device shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Latency {
    /// Completions are visible at the next poll.
    #[default]
    None,
    /// The same time for every command.
    Fixed(Duration),
    /// Time per started 4 KiB of transfer (at least one unit per command).
    Per4K(Duration),
}

impl Latency {
    /// Optane P5800X-class: about 3.2 us per 4 KiB read (what XRP measured).
    pub const OPTANE: Latency = Latency::Per4K(Duration::from_nanos(3200));
    /// TLC NAND-class: about 80 us per 4 KiB read.
    pub const NAND: Latency = Latency::Per4K(Duration::from_micros(80));

    /// Parses `none`, `optane`, `nand`, or a number of microseconds (`3.2`, `10us`).
    pub fn parse(s: &str) -> Result<Latency, String> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "none" | "0" => return Ok(Latency::None),
            "optane" => return Ok(Latency::OPTANE),
            "nand" => return Ok(Latency::NAND),
            _ => {}
        }
        let num = t.trim_end_matches("us");
        match num.parse::<f64>() {
            Ok(us) if us.is_finite() && (0.0..=1e7).contains(&us) => {
                if us == 0.0 {
                    Ok(Latency::None)
                } else {
                    Ok(Latency::Fixed(Duration::from_secs_f64(us / 1e6)))
                }
            }
            _ => Err(format!("device latency {s:?}: expected none, optane, nand, or microseconds such as 3.2")),
        }
    }

    /// Device time for a transfer of `bytes`.
    pub fn for_bytes(self, bytes: u64) -> Duration {
        match self {
            Latency::None => Duration::ZERO,
            Latency::Fixed(d) => d,
            Latency::Per4K(d) => d * u32::try_from(bytes.div_ceil(4096).max(1)).unwrap_or(u32::MAX),
        }
    }

    pub fn is_none(self) -> bool {
        self == Latency::None
    }
}

impl std::fmt::Display for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Latency::None => f.write_str("none"),
            Latency::OPTANE => f.write_str("optane (3.2 us per 4 KiB)"),
            Latency::NAND => f.write_str("nand (80 us per 4 KiB)"),
            Latency::Fixed(d) => write!(f, "{:.1} us", d.as_secs_f64() * 1e6),
            Latency::Per4K(d) => write!(f, "{:.1} us per 4 KiB", d.as_secs_f64() * 1e6),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_and_parsing() {
        assert_eq!(Latency::parse("optane").unwrap().for_bytes(4096), Duration::from_nanos(3200));
        assert_eq!(Latency::parse("nand").unwrap().for_bytes(512), Duration::from_micros(80));
        assert_eq!(Latency::OPTANE.for_bytes(8192), Duration::from_nanos(6400));
        assert_eq!(Latency::parse("10us").unwrap(), Latency::Fixed(Duration::from_micros(10)));
        assert_eq!(Latency::parse("0").unwrap(), Latency::None);
        assert!(Latency::parse("fast").is_err());
        assert!(Latency::parse("-3").is_err());
    }
}
