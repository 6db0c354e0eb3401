//! Event-time windows as Spark writes them: `window(ts, size)` tumbles,
//! `window(ts, size, slide)` hops; starts are multiples of the slide since
//! the epoch and a window is `[start, end)`. Rows are not copied into each
//! window: they are aggregated per pane (the greatest common divisor of
//! size and slide), and a window merges the panes it covers.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StructArray, TimestampNanosecondArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Fields, TimeUnit};
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};

/// The name of the window function in SQL.
pub const NAME: &str = "window";

/// A window's size and slide, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    /// How long a window is, in nanoseconds.
    pub size: i64,
    /// How far apart window starts are, in nanoseconds; `size` for a tumbling window.
    pub slide: i64,
}

impl WindowSpec {
    /// A tumbling (`slide == size`) or hopping window; both positive.
    pub fn new(size: i64, slide: i64) -> std::result::Result<Self, String> {
        if size <= 0 || slide <= 0 {
            return Err("a window's size and slide must be positive".into());
        }
        if slide > size {
            return Err("a window's slide cannot be longer than its size (rows would belong to no window)".into());
        }
        Ok(Self { size, slide })
    }

    /// The pane: the longest span every window boundary is a multiple of.
    pub fn pane(&self) -> i64 {
        gcd(self.size, self.slide)
    }

    /// The start of the pane holding `t`.
    pub fn pane_of(&self, t: i64) -> i64 {
        t.div_euclid(self.pane()) * self.pane()
    }

    /// The starts of every window that covers the pane starting at `pane`,
    /// earliest first.
    pub fn windows_of_pane(&self, pane: i64) -> impl Iterator<Item = i64> + use<> {
        let (size, slide, width) = (self.size, self.slide, self.pane());
        let last = pane.div_euclid(slide) * slide;
        let first_from = pane + width - size;
        let first = first_from.div_euclid(slide) * slide + if first_from.rem_euclid(slide) == 0 { 0 } else { slide };
        (0..).map(move |i| first + i * slide).take_while(move |s| *s <= last)
    }

    /// When the last window covering the pane at `pane` ends: the pane's
    /// state is needed until the watermark reaches it.
    pub fn pane_needed_until(&self, pane: i64) -> i64 {
        pane.div_euclid(self.slide) * self.slide + self.size
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// A duration argument of `window(...)`: `'N unit'` (seconds, minutes,
/// hours, days, singular or plural; anything `humantime` reads) or an SQL
/// interval of fixed length, in nanoseconds.
pub fn duration_ns(value: &ScalarValue) -> std::result::Result<i64, String> {
    let ns = match value {
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => {
            humantime::parse_duration(s.trim()).map_err(|e| format!("'{s}' is not a duration ({e})"))?.as_nanos() as i64
        }
        ScalarValue::IntervalMonthDayNano(Some(v)) if v.months == 0 => {
            v.days as i64 * 86_400_000_000_000 + v.nanoseconds
        }
        ScalarValue::IntervalDayTime(Some(v)) => v.days as i64 * 86_400_000_000_000 + v.milliseconds as i64 * 1_000_000,
        other => return Err(format!("{other} is not a duration of fixed length ('5 minutes', INTERVAL '1 hour')")),
    };
    Ok(ns)
}

/// The type of the `window` column: a struct of `start` and `end`.
pub fn struct_type() -> DataType {
    DataType::Struct(fields())
}

fn fields() -> Fields {
    Fields::from(vec![
        Field::new("start", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
        Field::new("end", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
    ])
}

/// A `window` column whose every row is `[start, start + size)`.
pub fn column(rows: usize, start: i64, size: i64) -> ArrayRef {
    let starts = TimestampNanosecondArray::from(vec![start; rows]);
    let ends = TimestampNanosecondArray::from(vec![start + size; rows]);
    Arc::new(StructArray::new(fields(), vec![Arc::new(starts), Arc::new(ends)], None))
}

/// Each row's `start` of a `window` column.
pub fn starts(column: &dyn Array) -> Vec<Option<i64>> {
    let s = column.as_struct();
    let starts = s.column(0).as_primitive::<arrow::datatypes::TimestampNanosecondType>();
    (0..s.len()).map(|i| (!s.is_null(i) && starts.is_valid(i)).then(|| starts.value(i))).collect()
}

/// `window(ts, size[, slide])`, evaluated to the row's *pane*: the stream
/// runtime replaces panes by the windows covering them before the final
/// aggregation, so the query sees windows.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PaneUdf {
    signature: Signature,
}

impl Default for PaneUdf {
    fn default() -> Self {
        Self { signature: Signature::one_of(vec![TypeSignature::Any(2), TypeSignature::Any(3)], Volatility::Immutable) }
    }
}

/// The window of a call's constant arguments.
pub fn spec_of(args: &[ScalarValue]) -> std::result::Result<WindowSpec, String> {
    let size = duration_ns(&args[0])?;
    let slide = match args.get(1) {
        Some(s) => duration_ns(s)?,
        None => size,
    };
    WindowSpec::new(size, slide)
}

impl ScalarUDFImpl for PaneUdf {
    fn name(&self) -> &str {
        NAME
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match &args[0] {
            DataType::Timestamp(_, _) => Ok(struct_type()),
            other => {
                plan_err!("window(...) needs a TIMESTAMP column as its first argument, not a column of type {other}")
            }
        }
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let constants: Vec<ScalarValue> = args.args[1..]
            .iter()
            .map(|a| match a {
                ColumnarValue::Scalar(s) => Ok(s.clone()),
                ColumnarValue::Array(_) => plan_err!("window(...) takes constant durations"),
            })
            .collect::<Result<_>>()?;
        let spec =
            spec_of(&constants).map_err(|e| datafusion::error::DataFusionError::Plan(format!("window(...): {e}")))?;
        let ts = args.args[0].to_array(args.number_rows)?;
        let ns = cast(&ts, &DataType::Timestamp(TimeUnit::Nanosecond, None))?;
        let ns = ns.as_primitive::<arrow::datatypes::TimestampNanosecondType>();
        let pane = spec.pane();
        let starts: TimestampNanosecondArray = ns.iter().map(|t| t.map(|t| spec.pane_of(t))).collect();
        let ends: TimestampNanosecondArray = starts.iter().map(|s| s.map(|s| s + pane)).collect();
        let nulls = starts.nulls().cloned();
        Ok(ColumnarValue::Array(Arc::new(StructArray::new(fields(), vec![Arc::new(starts), Arc::new(ends)], nulls))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000_000;

    #[test]
    fn panes_and_the_windows_covering_them() {
        let hop = WindowSpec::new(5 * MIN, MIN).unwrap();
        assert_eq!(hop.pane(), MIN);
        // The pane [10:00, 10:01) is in the windows starting 09:56 … 10:00.
        let ten = 600 * MIN;
        let starts: Vec<i64> = hop.windows_of_pane(ten).map(|s| (s - ten) / MIN).collect();
        assert_eq!(starts, vec![-4, -3, -2, -1, 0]);
        assert_eq!(hop.pane_needed_until(ten), ten + 5 * MIN);
        // 10 minutes sliding every 4: panes of 2 minutes; the pane
        // [10:02, 10:04) lies in [09:56, 10:06) and [10:00, 10:10).
        let odd = WindowSpec::new(10 * MIN, 4 * MIN).unwrap();
        assert_eq!(odd.pane(), 2 * MIN);
        let starts: Vec<i64> = odd.windows_of_pane(602 * MIN).map(|s| s / MIN).collect();
        assert_eq!(starts, vec![596, 600]);
        let tumble = WindowSpec::new(5 * MIN, 5 * MIN).unwrap();
        assert_eq!(tumble.windows_of_pane(tumble.pane_of(ten + 7)).collect::<Vec<_>>(), vec![ten]);
        // Before the epoch too.
        assert_eq!(tumble.pane_of(-1), -5 * MIN);
        assert!(WindowSpec::new(MIN, 2 * MIN).is_err());
    }

    #[test]
    fn durations_read_as_spark_and_sql_write_them() {
        assert_eq!(duration_ns(&ScalarValue::Utf8(Some("5 minutes".into()))), Ok(5 * MIN));
        assert_eq!(duration_ns(&ScalarValue::Utf8(Some("1 minute".into()))), Ok(MIN));
        assert_eq!(duration_ns(&ScalarValue::Utf8(Some("30 seconds".into()))), Ok(MIN / 2));
        assert_eq!(duration_ns(&ScalarValue::Utf8(Some("2 hours".into()))), Ok(120 * MIN));
        assert!(duration_ns(&ScalarValue::Utf8(Some("soon".into()))).unwrap_err().contains("'soon' is not a duration"));
    }
}
