//! Baseline for bench/hot_path.py: tonic answering an empty unary call
//! (grpc.health.v1.Health/Check), and nothing else.

#[tokio::main]
async fn main() {
    let (_reporter, health) = tonic_health::server::health_reporter();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("listening: {}", listener.local_addr().unwrap());
    tonic::transport::Server::builder()
        .add_service(health)
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
        .await
        .unwrap();
}
