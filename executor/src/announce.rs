//! What the executor tells the scheduler about itself.
//!
//! Ballista registers the port its own task server listens on. That server
//! sits on loopback behind the front (see `front`), so the registration and
//! every heartbeat (which registers again after a failover) are changed on
//! their way out to name the front's port instead.

use std::sync::Arc;

use ballista_core::serde::protobuf::{ExecutorRegistration, HeartBeatParams, RegisterExecutorParams};
use prost::Message;

const REGISTER: &str = "/ballista.protobuf.SchedulerGrpc/RegisterExecutor";
const HEARTBEAT: &str = "/ballista.protobuf.SchedulerGrpc/HeartBeatFromExecutor";

/// The gateway rewrite that announces `grpc_port` as the executor's gRPC
/// port.
pub fn public_grpc_port(grpc_port: u16) -> stockyard_gateway::Rewrite {
    let set = move |m: &mut Option<ExecutorRegistration>| {
        if let Some(m) = m {
            m.grpc_port = grpc_port.into();
        }
    };
    Arc::new(move |path, message| match path {
        REGISTER => {
            let mut params = RegisterExecutorParams::decode(message).ok()?;
            set(&mut params.metadata);
            Some(params.encode_to_vec())
        }
        HEARTBEAT => {
            let mut params = HeartBeatParams::decode(message).ok()?;
            set(&mut params.metadata);
            Some(params.encode_to_vec())
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_and_heartbeats_name_the_public_port() {
        let rewrite = public_grpc_port(50052);
        let meta = ExecutorRegistration { id: "e1".into(), grpc_port: 41234, port: 50051, ..Default::default() };
        let register = RegisterExecutorParams { metadata: Some(meta.clone()) }.encode_to_vec();
        let out = RegisterExecutorParams::decode(&rewrite(REGISTER, &register).unwrap()[..]).unwrap();
        assert_eq!(out.metadata.as_ref().map(|m| (m.grpc_port, m.port, m.id.as_str())), Some((50052, 50051, "e1")));
        let beat =
            HeartBeatParams { executor_id: "e1".into(), metadata: Some(meta), ..Default::default() }.encode_to_vec();
        let out = HeartBeatParams::decode(&rewrite(HEARTBEAT, &beat).unwrap()[..]).unwrap();
        assert_eq!(out.metadata.map(|m| m.grpc_port), Some(50052));
        assert!(rewrite("/ballista.protobuf.SchedulerGrpc/UpdateTaskStatus", &register).is_none());
    }
}
