//! A `sql` run's result as the UI shows it.

use serde_json::{Value, json};

/// Rows of a `sql` run's result kept for the UI.
pub const RESULT_ROWS: usize = 1000;

/// A result as the UI shows it: column names and types, the first
/// [`RESULT_ROWS`] rows as JSON objects, and the row count.
pub(crate) fn result_json(
    schema: &datafusion::arrow::datatypes::Schema,
    batches: &[datafusion::arrow::array::RecordBatch],
) -> Result<Value, String> {
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    use datafusion::arrow::json::{WriterBuilder, writer::JsonArray};
    // Nulls as null, so every row shows every column.
    let mut writer = WriterBuilder::new().with_explicit_nulls(true).build::<_, JsonArray>(Vec::new());
    let mut left = RESULT_ROWS;
    for batch in batches {
        if left == 0 {
            break;
        }
        let batch = batch.slice(0, batch.num_rows().min(left));
        left -= batch.num_rows();
        writer.write(&batch).map_err(|e| format!("cannot show the result: {e}"))?;
    }
    writer.finish().map_err(|e| format!("cannot show the result: {e}"))?;
    let bytes = writer.into_inner();
    let rows: Value = if bytes.is_empty() {
        json!([])
    } else {
        serde_json::from_slice(&bytes).map_err(|e| format!("cannot show the result: {e}"))?
    };
    let columns: Vec<Value> =
        schema.fields().iter().map(|f| json!({"name": f.name(), "type": f.data_type().to_string()})).collect();
    Ok(json!({"columns": columns, "rows": rows, "total_rows": total, "truncated": total > RESULT_ROWS}))
}
