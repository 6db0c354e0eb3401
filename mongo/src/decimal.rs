//! BSON Decimal128 (IEEE 754-2008, binary integer decimal) to Arrow
//! `Decimal128(precision, scale)`.

/// A finite decimal: `coefficient × 10^exponent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decimal {
    /// Signed digits, at most 34 of them.
    pub coefficient: i128,
    /// Power of ten, unbiased: `12.50` is 1250 × 10^-2.
    pub exponent: i32,
}

const EXPONENT_BIAS: i32 = 6176;
const MAX_COEFFICIENT: u128 = 10u128.pow(34) - 1;

/// Decodes the 16 little-endian bytes of a BSON Decimal128; `None` for
/// infinities and NaN, which Arrow decimals cannot hold.
pub fn parse(bytes: [u8; 16]) -> Option<Decimal> {
    let bits = u128::from_le_bytes(bytes);
    let negative = bits >> 127 == 1;
    let combination = (bits >> 122) & 0x1f;
    if combination >= 0x1e {
        return None; // 11110: infinity, 11111: NaN
    }
    let (exponent, coefficient) = if (bits >> 125) & 0b11 == 0b11 {
        // The coefficient would exceed 34 digits: non-canonical, reads as 0.
        (((bits >> 111) & 0x3fff) as i32, 0u128)
    } else {
        (((bits >> 113) & 0x3fff) as i32, bits & ((1u128 << 113) - 1))
    };
    let coefficient = if coefficient > MAX_COEFFICIENT { 0 } else { coefficient };
    let coefficient = coefficient as i128;
    Some(Decimal { coefficient: if negative { -coefficient } else { coefficient }, exponent: exponent - EXPONENT_BIAS })
}

/// Digits after the point as written (`12.50` has two; integers none).
pub fn scale_of(d: Decimal) -> i32 {
    (-d.exponent).max(0)
}

/// `d` as an integer at `scale` within `precision` digits, or `None` when it
/// does not fit exactly.
pub fn to_scaled(d: Decimal, precision: u8, scale: i8) -> Option<i128> {
    let shift = d.exponent + i32::from(scale);
    let value = if shift >= 0 {
        let factor = 10i128.checked_pow(shift as u32)?;
        d.coefficient.checked_mul(factor)?
    } else {
        let factor = 10i128.checked_pow((-shift) as u32)?;
        if d.coefficient % factor != 0 {
            return None;
        }
        d.coefficient / factor
    };
    let limit = 10i128.checked_pow(u32::from(precision)).unwrap_or(i128::MAX);
    (value.abs() < limit).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bid(negative: bool, exponent: i32, coefficient: u128) -> [u8; 16] {
        let bits = (u128::from(negative) << 127) | (((exponent + EXPONENT_BIAS) as u128) << 113) | coefficient;
        bits.to_le_bytes()
    }

    #[test]
    fn parses_and_scales() {
        let d = parse(bid(false, -2, 12345)).unwrap(); // 123.45
        assert_eq!(d, Decimal { coefficient: 12345, exponent: -2 });
        assert_eq!(scale_of(d), 2);
        assert_eq!(to_scaled(d, 38, 4), Some(1_234_500));
        assert_eq!(to_scaled(d, 38, 1), None, "123.45 does not fit one decimal place");
        assert_eq!(to_scaled(d, 4, 2), None, "five digits do not fit precision 4");
        let n = parse(bid(true, 3, 7)).unwrap(); // -7000
        assert_eq!(to_scaled(n, 38, 2), Some(-700_000));
        assert_eq!(scale_of(parse(bid(false, -3, 1500)).unwrap()), 3);
        assert_eq!(scale_of(parse(bid(false, 2, 15)).unwrap()), 0);
    }

    #[test]
    fn specials_are_not_numbers() {
        let inf = (0x1eu128 << 122).to_le_bytes();
        let nan = (0x1fu128 << 122).to_le_bytes();
        assert_eq!(parse(inf), None);
        assert_eq!(parse(nan), None);
    }
}
