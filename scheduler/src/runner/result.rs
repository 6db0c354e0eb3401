//! A `sql` run's result as the UI shows it, kept as it streams in: the
//! first [`RESULT_ROWS`] rows, and the count of all of them.

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::json::{WriterBuilder, writer::JsonArray};
use serde_json::{Value, json};

/// Rows of a `sql` run's result kept for the UI.
pub const RESULT_ROWS: usize = 1000;

/// The bytes of JSON a `sql` run may keep for the UI by default
/// (`--max-result-bytes`), as Spark's `spark.driver.maxResultSize` bounds
/// what a driver collects.
pub const MAX_RESULT_BYTES: usize = 64 << 20;

/// Why a result cannot be kept.
#[derive(Debug, thiserror::Error)]
pub enum ResultError {
    /// The rows to show do not render as JSON.
    #[error("cannot show the result: {0}")]
    Render(#[from] ArrowError),
    /// The rows to show are larger than the limit.
    #[error(
        "the result's first {rows} rows take over {limit} bytes as JSON, more than a sql run may keep \
         (--max-result-bytes); select fewer or narrower columns"
    )]
    TooLarge {
        /// Rows kept when the limit was passed.
        rows: usize,
        /// The limit, in bytes.
        limit: usize,
    },
}

/// A result streaming in: the JSON of its first rows and its row count.
pub(crate) struct Kept {
    schema: SchemaRef,
    writer: datafusion::arrow::json::Writer<Vec<u8>, JsonArray>,
    kept: usize,
    total: usize,
    limit: usize,
}

impl Kept {
    /// An empty result of `schema` that may keep `limit` bytes of JSON.
    pub(crate) fn new(schema: SchemaRef, limit: usize) -> Self {
        // Nulls as null, so every row shows every column.
        let writer = WriterBuilder::new().with_explicit_nulls(true).build::<_, JsonArray>(Vec::new());
        Kept { schema, writer, kept: 0, total: 0, limit }
    }

    /// Counts `batch`, and keeps its rows while fewer than [`RESULT_ROWS`]
    /// are kept.
    pub(crate) fn add(&mut self, batch: &RecordBatch) -> Result<(), ResultError> {
        self.total += batch.num_rows();
        let take = batch.num_rows().min(RESULT_ROWS - self.kept);
        if take == 0 {
            return Ok(());
        }
        self.writer.write(&batch.slice(0, take))?;
        self.kept += take;
        if self.writer.get_ref().len() > self.limit {
            return Err(ResultError::TooLarge { rows: self.kept, limit: self.limit });
        }
        Ok(())
    }

    /// The result as the UI shows it: column names and types, the kept
    /// rows as JSON objects, the row count and whether rows were left out.
    pub(crate) fn into_json(mut self) -> Value {
        let rows: Value = match self.writer.finish() {
            Ok(()) if !self.writer.get_ref().is_empty() => {
                serde_json::from_slice(self.writer.get_ref()).unwrap_or_else(|_| json!([]))
            }
            _ => json!([]),
        };
        let columns: Vec<Value> =
            self.schema.fields().iter().map(|f| json!({"name": f.name(), "type": f.data_type().to_string()})).collect();
        json!({"columns": columns, "rows": rows, "total_rows": self.total, "truncated": self.total > RESULT_ROWS})
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn batch(from: i64, n: i64, text: &str) -> RecordBatch {
        let schema =
            Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false), Field::new("s", DataType::Utf8, true)]));
        let numbers = Int64Array::from_iter_values(from..from + n);
        let texts = StringArray::from_iter_values((0..n).map(|_| text));
        RecordBatch::try_new(schema, vec![Arc::new(numbers), Arc::new(texts)]).unwrap()
    }

    #[test]
    fn the_first_rows_are_kept_and_all_are_counted() {
        let mut kept = Kept::new(batch(0, 1, "").schema(), MAX_RESULT_BYTES);
        kept.add(&batch(0, 600, "a")).unwrap();
        kept.add(&batch(600, 600, "b")).unwrap();
        kept.add(&batch(1200, 5000, "c")).unwrap();
        let json = kept.into_json();
        assert_eq!(json["total_rows"], 6200);
        assert_eq!(json["truncated"], true);
        let rows = json["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 1000);
        assert_eq!(rows[0], json!({"n": 0, "s": "a"}));
        assert_eq!(rows[999], json!({"n": 999, "s": "b"}));
        assert_eq!(json["columns"], json!([{"name": "n", "type": "Int64"}, {"name": "s", "type": "Utf8"}]));
    }

    #[test]
    fn shown_rows_over_the_limit_fail_the_run() {
        // 10 rows of {"n":0,"s":"xxxx…"} with 100-byte strings: over 1,000 bytes.
        let mut kept = Kept::new(batch(0, 1, "").schema(), 1000);
        let e = kept.add(&batch(0, 10, &"x".repeat(100))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the result's first 10 rows take over 1000 bytes as JSON, more than a sql run may keep \
             (--max-result-bytes); select fewer or narrower columns"
        );
    }

    #[test]
    fn an_empty_result_has_its_columns_and_no_rows() {
        let json = Kept::new(batch(0, 1, "").schema(), MAX_RESULT_BYTES).into_json();
        assert_eq!(json["rows"], json!([]));
        assert_eq!(json["total_rows"], 0);
        assert_eq!(json["truncated"], false);
    }
}
