//! One topic on a Kafka-protocol broker, read by offset. The stream owns
//! its offsets; the end of a partition is the high watermark of a fetch
//! response (some brokers answer ListOffsets "latest" wrongly after
//! multi-record batches).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rskafka::BackoffConfig;
use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use tokio::sync::Mutex;

use crate::location::KafkaLocation;

/// How long one broker operation may retry before the stream says the
/// broker is away (the next batch tries again).
const DEADLINE: Duration = Duration::from_secs(10);

/// Bytes one fetch asks for.
const FETCH_BYTES: i32 = 8 * 1024 * 1024;

/// Why the broker could not be read (rskafka's errors boxed: they are
/// large and every batch returns this).
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// The brokers could not be reached.
    #[error("cannot reach the Kafka broker at {brokers}: {source}")]
    Connect {
        /// The bootstrap brokers, `HOST:PORT` joined by commas.
        brokers: String,
        /// rskafka's error.
        source: Box<rskafka::client::error::Error>,
    },
    /// The topic is not on the broker.
    #[error("topic '{topic}' does not exist on {location} (create it first)")]
    NoTopic {
        /// The topic asked for.
        topic: String,
        /// The location, `kafka://…/TOPIC`.
        location: String,
    },
    /// A call to the broker failed.
    #[error("{what} on {location}: {source}")]
    Call {
        /// What was being done, such as `reading partition 0 at offset 42`.
        what: String,
        /// The location it was done on.
        location: String,
        /// rskafka's error.
        source: Box<rskafka::client::error::Error>,
    },
}

/// A record as the stream reads it.
#[derive(Debug, Clone)]
pub struct Record {
    /// Its offset in the partition.
    pub offset: i64,
    /// Its value; `None` for a record without one (counted as not JSON).
    pub value: Option<Vec<u8>>,
    /// The producer's (or broker's) timestamp, not the event time.
    pub timestamp: DateTime<Utc>,
}

/// A connection to the topic of one location.
pub struct Broker {
    location: KafkaLocation,
    client: Client,
    partitions: Mutex<BTreeMap<i32, Arc<PartitionClient>>>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker").field("location", &self.location.to_string()).finish()
    }
}

impl Broker {
    /// Connects to the location's brokers (giving up after a few seconds).
    pub async fn connect(location: &KafkaLocation) -> Result<Self, KafkaError> {
        let backoff = BackoffConfig { deadline: Some(DEADLINE), ..Default::default() };
        let client = ClientBuilder::new(location.brokers.clone())
            .client_id("stockyard")
            .backoff_config(backoff)
            .build()
            .await
            .map_err(|source| KafkaError::Connect { brokers: location.brokers.join(","), source: Box::new(source) })?;
        Ok(Self { location: location.clone(), client, partitions: Mutex::default() })
    }

    /// The location this broker reads.
    pub fn location(&self) -> &KafkaLocation {
        &self.location
    }

    fn call(&self, what: impl Into<String>, source: rskafka::client::error::Error) -> KafkaError {
        KafkaError::Call { what: what.into(), location: self.location.to_string(), source: Box::new(source) }
    }

    /// The topic's partitions, in order; an error when the topic is missing.
    pub async fn partitions(&self) -> Result<Vec<i32>, KafkaError> {
        let topics = self.client.list_topics().await.map_err(|e| self.call("listing topics", e))?;
        let topic = topics.into_iter().find(|t| t.name == self.location.topic).ok_or_else(|| KafkaError::NoTopic {
            topic: self.location.topic.clone(),
            location: self.location.to_string(),
        })?;
        Ok(topic.partitions.into_iter().collect())
    }

    /// Creates the topic (an error when it exists).
    pub async fn create_topic(&self, partitions: i32) -> Result<(), KafkaError> {
        let controller = self.client.controller_client().map_err(|e| self.call("finding the controller", e))?;
        controller
            .create_topic(self.location.topic.clone(), partitions, 1, 5_000)
            .await
            .map_err(|e| self.call(format!("creating topic '{}'", self.location.topic), e))
    }

    async fn partition(&self, partition: i32) -> Result<Arc<PartitionClient>, KafkaError> {
        let mut clients = self.partitions.lock().await;
        if let Some(c) = clients.get(&partition) {
            return Ok(c.clone());
        }
        let client = self
            .client
            .partition_client(self.location.topic.clone(), partition, UnknownTopicHandling::Error)
            .await
            .map_err(|e| self.call(format!("opening partition {partition}"), e))?;
        let client = Arc::new(client);
        clients.insert(partition, client.clone());
        Ok(client)
    }

    /// The partition's end (the offset the next record will get), asked at
    /// `from`, an offset the stream has read up to.
    pub async fn end(&self, partition: i32, from: i64) -> Result<i64, KafkaError> {
        let client = self.partition(partition).await?;
        let (_, high) = client
            .fetch_records(from, 1..1024, 0)
            .await
            .map_err(|e| self.call(format!("reading the end of partition {partition}"), e))?;
        Ok(high)
    }

    /// Every record with an offset in `from..to`, in offset order.
    pub async fn read(&self, partition: i32, from: i64, to: i64) -> Result<Vec<Record>, KafkaError> {
        let client = self.partition(partition).await?;
        let mut out = Vec::with_capacity((to - from).max(0) as usize);
        let mut next = from;
        while next < to {
            let (records, high) = client
                .fetch_records(next, 1..FETCH_BYTES, 100)
                .await
                .map_err(|e| self.call(format!("reading partition {partition} at offset {next}"), e))?;
            if records.is_empty() {
                if high <= next {
                    // Fewer records than the range promised (a compacted
                    // or truncated topic): what is there is all there is.
                    break;
                }
                continue;
            }
            for r in records {
                if r.offset >= to {
                    break;
                }
                next = r.offset + 1;
                out.push(Record { offset: r.offset, value: r.record.value, timestamp: r.record.timestamp });
            }
        }
        Ok(out)
    }

    /// Appends `values` to a partition, in order (for the generator and the
    /// tests).
    pub async fn produce(&self, partition: i32, values: Vec<Vec<u8>>) -> Result<(), KafkaError> {
        let client = self.partition(partition).await?;
        let now = Utc::now();
        let records = values
            .into_iter()
            .map(|v| rskafka::record::Record { key: None, value: Some(v), headers: BTreeMap::new(), timestamp: now })
            .collect();
        client
            .produce(records, Compression::NoCompression)
            .await
            .map_err(|e| self.call(format!("writing to partition {partition}"), e))?;
        Ok(())
    }
}
