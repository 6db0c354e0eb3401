//! [`MemoryStore`]: state that ends with the process (tests, throwaway
//! clusters).

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::{StateError, StateStore};

/// Keys and values in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    map: Mutex<BTreeMap<String, Vec<u8>>>,
}

#[async_trait::async_trait]
impl StateStore for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.map.lock().expect("state lock").get(key).cloned())
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), StateError> {
        self.map.lock().expect("state lock").insert(key.to_string(), value);
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), StateError> {
        self.map.lock().expect("state lock").remove(key);
        Ok(())
    }

    async fn put_if(&self, key: &str, expected: Option<&[u8]>, value: Option<Vec<u8>>) -> Result<bool, StateError> {
        let mut map = self.map.lock().expect("state lock");
        if map.get(key).map(Vec::as_slice) != expected {
            return Ok(false);
        }
        match value {
            Some(v) => map.insert(key.to_string(), v),
            None => map.remove(key),
        };
        Ok(true)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StateError> {
        let map = self.map.lock().expect("state lock");
        Ok(map
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}
