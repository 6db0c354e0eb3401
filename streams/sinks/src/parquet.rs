//! Append-only Parquet under a directory or an object-store prefix. Batch N
//! writes `part-N.parquet` (or one per hive partition,
//! `col=value/part-N.parquet`); the object store puts each file whole (a
//! local store writes a staging file and renames it), so `*.parquet` under
//! the location is always whole files, and a redone batch overwrites its
//! own files with the same rows.

use std::collections::BTreeMap;

use arrow::array::{BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::error::ArrowError;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use object_store::ObjectStoreExt;
use object_store::path::Path;
use parquet::arrow::ArrowWriter;
use stockyard_plan::store::Destination;

use crate::SinkError;

/// A Parquet sink.
#[derive(Debug, Clone)]
pub struct ParquetSink {
    location: String,
    dest: Destination,
    partition_by: Vec<String>,
}

impl ParquetSink {
    /// Opens `location` (a local directory, `file://` or `s3://`), with
    /// hive partitions on `partition_by`.
    pub fn open(location: &str, partition_by: Vec<String>) -> Result<Self, SinkError> {
        let dest = stockyard_plan::store::open(location).map_err(|e| SinkError::write(location, &e))?;
        Ok(Self { location: location.to_string(), dest, partition_by })
    }

    /// Writes and removes a probe file: whether the location takes files.
    pub async fn check(&self) -> Result<(), SinkError> {
        let probe = self.dest.path([".stockyard-probe"]);
        self.dest
            .store
            .put(&probe, b"probe".to_vec().into())
            .await
            .map_err(|e| SinkError::write(&self.location, &e))?;
        self.dest.store.delete(&probe).await.map_err(|e| SinkError::write(&self.location, &e))?;
        Ok(())
    }

    /// Writes batch `batch_id`'s rows; nothing when there are none.
    pub async fn write(&self, batch_id: u64, batches: &[RecordBatch]) -> Result<(), SinkError> {
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if rows == 0 {
            return Ok(());
        }
        let fail = |e: &(dyn std::error::Error + 'static)| SinkError::write(&self.location, e);
        let file = format!("part-{batch_id:012}.parquet");
        for (dirs, parts) in self.split(batches).map_err(|e| fail(&e))? {
            let mut buffer = Vec::new();
            let schema = parts[0].schema();
            let mut writer = ArrowWriter::try_new(&mut buffer, schema, None).map_err(|e| fail(&e))?;
            for part in &parts {
                writer.write(part).map_err(|e| fail(&e))?;
            }
            writer.close().map_err(|e| fail(&e))?;
            let path: Path = self.dest.path(dirs.iter().map(String::as_str).chain([file.as_str()]));
            self.dest.store.put(&path, buffer.into()).await.map_err(|e| fail(&e))?;
        }
        Ok(())
    }

    /// The rows of each hive partition (`col=value` directories), without
    /// the partition columns; all rows under no directory when unpartitioned.
    fn split(&self, batches: &[RecordBatch]) -> Result<BTreeMap<Vec<String>, Vec<RecordBatch>>, ArrowError> {
        let mut out: BTreeMap<Vec<String>, Vec<RecordBatch>> = BTreeMap::new();
        for batch in batches.iter().filter(|b| b.num_rows() > 0) {
            if self.partition_by.is_empty() {
                out.entry(vec![]).or_default().push(batch.clone());
                continue;
            }
            let schema = batch.schema();
            let mut indices = Vec::new();
            for name in &self.partition_by {
                indices.push(
                    schema
                        .index_of(name)
                        .map_err(|_| ArrowError::SchemaError(format!("no column '{name}' to partition by")))?,
                );
            }
            let options = FormatOptions::default().with_null("__HIVE_DEFAULT_PARTITION__");
            let formatters = indices
                .iter()
                .map(|&i| ArrayFormatter::try_new(batch.column(i).as_ref(), &options))
                .collect::<Result<Vec<_>, _>>()?;
            let mut keys: BTreeMap<Vec<String>, Vec<bool>> = BTreeMap::new();
            for row in 0..batch.num_rows() {
                let key: Vec<String> = self
                    .partition_by
                    .iter()
                    .zip(&formatters)
                    .map(|(name, f)| format!("{name}={}", hive_escape(&f.value(row).to_string())))
                    .collect();
                keys.entry(key).or_insert_with(|| vec![false; batch.num_rows()])[row] = true;
            }
            let keep: Vec<usize> = (0..batch.num_columns()).filter(|i| !indices.contains(i)).collect();
            let projected = batch.project(&keep)?;
            for (key, mask) in keys {
                let part = filter_record_batch(&projected, &BooleanArray::from(mask))?;
                out.entry(key).or_default().push(part);
            }
        }
        Ok(out)
    }
}

/// A value as a directory name: what Hive escapes, percent-encoded.
fn hive_escape(value: &str) -> String {
    value
        .chars()
        .map(|c| match c {
            '/' | '\\' | '=' | ':' | '%' | '#' | '?' | '*' | '"' | '\'' | '<' | '>' | '|' | '\n' | '\t' => {
                format!("%{:02X}", c as u32)
            }
            c => c.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[tokio::test]
    async fn batches_land_whole_under_hive_directories_and_redo_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let sink = ParquetSink::open(dir.path().to_str().unwrap(), vec!["day".into()]).unwrap();
        sink.check().await.unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("day", DataType::Utf8, true),
            Field::new("n", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![Some("2026-12-01"), None, Some("2026-12-01")])),
                Arc::new(Int64Array::from(vec![1, 2, 3])),
            ],
        )
        .unwrap();
        sink.write(7, std::slice::from_ref(&batch)).await.unwrap();
        sink.write(7, &[batch]).await.unwrap();
        let mut files: Vec<String> = walk(dir.path());
        files.sort();
        assert_eq!(
            files,
            vec![
                "day=2026-12-01/part-000000000007.parquet",
                "day=__HIVE_DEFAULT_PARTITION__/part-000000000007.parquet"
            ]
        );
        let file = std::fs::File::open(dir.path().join("day=2026-12-01/part-000000000007.parquet")).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 100).unwrap();
        let read: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        let n = read[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(n.values().to_vec(), vec![1, 3]);
        assert_eq!(read[0].num_columns(), 1);
    }

    fn walk(root: &std::path::Path) -> Vec<String> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(root).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                for f in walk(&path) {
                    out.push(format!("{}/{f}", path.file_name().unwrap().to_str().unwrap()));
                }
            } else {
                out.push(path.file_name().unwrap().to_str().unwrap().to_string());
            }
        }
        out
    }
}
