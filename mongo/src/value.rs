//! How one BSON value reads as a column value, shared by the two decoders
//! (`decode` for whole documents, `flat` for the flat fast path): why a
//! value is read as null, and the number and ObjectId rules of the spec.

/// Why a value was read as null.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A BSON type the column does not take.
    WrongType = 0,
    /// A number that is not whole, or does not fit the column.
    OutOfRange = 1,
    /// Bytes that are not valid BSON.
    Malformed = 2,
}

impl Reason {
    /// All reasons, in counter order.
    pub const ALL: [Reason; 3] = [Reason::WrongType, Reason::OutOfRange, Reason::Malformed];

    /// The metric label.
    pub fn name(self) -> &'static str {
        match self {
            Reason::WrongType => "wrong_type",
            Reason::OutOfRange => "out_of_range",
            Reason::Malformed => "malformed",
        }
    }
}

/// Rejected values of one column, by reason.
pub type Counts = [u64; 3];

/// A double read as an int32: whole and in range, as the spec says.
pub(crate) fn whole_i32(v: f64) -> Result<i32, Reason> {
    if v.fract() != 0.0 || !(f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(&v) {
        return Err(Reason::OutOfRange);
    }
    Ok(v as i32)
}

/// A double read as an int64: whole and in range.
pub(crate) fn whole_i64(v: f64) -> Result<i64, Reason> {
    // 2^63 is exactly representable; i64::MAX as f64 rounds up to it.
    if v.fract() != 0.0 || !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&v) {
        return Err(Reason::OutOfRange);
    }
    Ok(v as i64)
}

/// An ObjectId as lowercase hex, without allocating.
pub(crate) fn oid_hex(bytes: &[u8; 12]) -> [u8; 24] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = [0u8; 24];
    for (i, byte) in bytes.iter().enumerate() {
        hex[2 * i] = DIGITS[usize::from(byte >> 4)];
        hex[2 * i + 1] = DIGITS[usize::from(byte & 0xf)];
    }
    hex
}
