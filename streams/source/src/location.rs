//! `kafka://HOST:PORT[,HOST:PORT…]/TOPIC`, the `LOCATION` of a source.

/// Why a `LOCATION` names no Kafka topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{location}' is not a Kafka location ({why}; use kafka://HOST:PORT[,HOST:PORT…]/TOPIC)")]
pub struct LocationError {
    /// The location as written.
    pub location: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// The brokers to ask first and the topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaLocation {
    /// `HOST:PORT` of each bootstrap broker.
    pub brokers: Vec<String>,
    /// The topic read or written.
    pub topic: String,
}

impl std::str::FromStr for KafkaLocation {
    type Err = LocationError;

    fn from_str(location: &str) -> Result<Self, Self::Err> {
        let fail = |why| LocationError { location: location.to_string(), why };
        let rest = location.strip_prefix("kafka://").ok_or_else(|| fail("it does not start with kafka://"))?;
        let (hosts, topic) = rest.split_once('/').ok_or_else(|| fail("there is no /TOPIC"))?;
        // Kafka's own rule for topic names.
        if topic.is_empty()
            || topic.len() > 249
            || !topic.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(fail("a topic is 1-249 letters, digits, '.', '_' or '-'"));
        }
        let mut brokers = Vec::new();
        for host in hosts.split(',') {
            let port = host.rsplit_once(':').and_then(|(h, p)| (!h.is_empty()).then_some(p));
            if !port.is_some_and(|p| p.parse::<u16>().is_ok_and(|p| p > 0)) {
                return Err(fail("each broker is HOST:PORT"));
            }
            brokers.push(host.to_string());
        }
        Ok(Self { brokers, topic: topic.to_string() })
    }
}

impl std::fmt::Display for KafkaLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "kafka://{}/{}", self.brokers.join(","), self.topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_or_say_why_not() {
        let l: KafkaLocation = "kafka://a:9092,b:9093/orders".parse().unwrap();
        assert_eq!(l.brokers, vec!["a:9092", "b:9093"]);
        assert_eq!(l.topic, "orders");
        assert_eq!(l.to_string(), "kafka://a:9092,b:9093/orders");
        let e = "kafka://a/orders".parse::<KafkaLocation>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "'kafka://a/orders' is not a Kafka location (each broker is HOST:PORT; use kafka://HOST:PORT[,HOST:PORT…]/TOPIC)"
        );
        assert!("redis://a:1/x".parse::<KafkaLocation>().is_err());
        assert!("kafka://a:1/".parse::<KafkaLocation>().is_err());
        assert!("kafka://a:1/bad topic".parse::<KafkaLocation>().is_err());
    }
}
