//! The sources of streams: Kafka topics read by offset ranges that the
//! stream owns (no consumer group: the stream commits its offsets with its
//! state, as Spark, Flink and Arroyo do), and JSON record values decoded
//! into Arrow batches of the declared schema, with every record that cannot
//! be read counted by reason instead of failing the stream.

pub mod decode;
pub mod kafka;
pub mod location;

pub use decode::{Decoded, Rejects, decode};
pub use kafka::{Broker, KafkaError, Record};
pub use location::{KafkaLocation, LocationError};
