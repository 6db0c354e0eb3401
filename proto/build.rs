//! Compiles `proto/stockyard.proto` into the prost messages and the tonic
//! gRPC client and server that `src/lib.rs` includes.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/stockyard.proto");
    tonic_prost_build::configure().compile_protos(&["proto/stockyard.proto"], &["proto"])?;
    Ok(())
}
