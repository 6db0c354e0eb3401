//! The harness's real services start, answer and stop: later tests build on
//! them, and this is where a missing install shows first.

use stockyard_tests::{Etcd, Mongo, Redis};

#[test]
fn redis_etcd_and_secantusdb_start_on_free_ports_and_stop() {
    let redis = Redis::start();
    assert_eq!(redis.command("PING"), "+PONG\r\n");
    assert_eq!(redis.command("SET k v"), "+OK\r\n");
    assert_eq!(redis.command("GET k"), "$1\r\nv\r\n");

    let etcd = Etcd::start();
    let health = etcd.http_get("/health");
    assert!(health.contains("\"health\":\"true\""), "{health}");

    let mut mongo = Mongo::start();
    assert!(mongo.proc.is_running(), "{}", mongo.proc.output());
    let pid = mongo.proc.pid();
    mongo.proc.kill();
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "secantusdb {pid} still runs after kill");
}
