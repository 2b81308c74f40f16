//! How costly a stored hash may be and still be verified: its parameters come from the
//! database, and a tampered or absurd row must not make one sign-in allocate gigabytes or run
//! for minutes.

use argon2::Params;

use crate::domain::legacy::MAX_BCRYPT_COST;
use crate::domain::HashClass;

/// How much costlier than the configured parameters a stored hash may be and still be
/// verified: a stored hash is refused when any of its parameters is above `LIMIT_FACTOR` times
/// the configured one and above its floor. Room for hashes made before the parameters were
/// lowered, and for imported ones (Spring Security's defaults are far below the floors).
const LIMIT_FACTOR: u32 = 4;
/// Floors of the limits: 256 MiB of memory, 16 passes, 16 lanes.
const LIMIT_FLOOR_M_KIB: u32 = 256 * 1024;
const LIMIT_FLOOR_T: u32 = 16;
const LIMIT_FLOOR_P: u32 = 16;

/// The costliest stored hash that is verified (see [`LIMIT_FACTOR`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredLimits {
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
}

impl StoredLimits {
    pub fn for_params(params: &Params) -> Self {
        let limit = |configured: u32, floor: u32| configured.saturating_mul(LIMIT_FACTOR).max(floor);
        Self {
            m_kib: limit(params.m_cost(), LIMIT_FLOOR_M_KIB),
            t: limit(params.t_cost(), LIMIT_FLOOR_T),
            p: limit(params.p_cost(), LIMIT_FLOOR_P),
        }
    }

    pub(super) fn allow(&self, stored: &Params) -> bool {
        stored.m_cost() <= self.m_kib && stored.t_cost() <= self.t && stored.p_cost() <= self.p
    }

    /// Whether a hash of this class is verified at all: Argon2 within these limits, bcrypt up
    /// to [`MAX_BCRYPT_COST`]. An import refuses the others (they could never sign in).
    pub fn allows(&self, class: &HashClass) -> bool {
        match *class {
            HashClass::Argon2 { m_kib, t, p, .. } => m_kib <= self.m_kib && t <= self.t && p <= self.p,
            HashClass::Bcrypt { cost } => cost <= MAX_BCRYPT_COST,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_four_times_the_configured_cost_with_floors() {
        assert_eq!(
            StoredLimits::for_params(&Params::new(19_456, 2, 1, None).unwrap()),
            StoredLimits {
                m_kib: 256 * 1024,
                t: 16,
                p: 16
            }
        );
        assert_eq!(
            StoredLimits::for_params(&Params::new(128 * 1024, 8, 8, None).unwrap()),
            StoredLimits {
                m_kib: 512 * 1024,
                t: 32,
                p: 32
            }
        );
    }
}
