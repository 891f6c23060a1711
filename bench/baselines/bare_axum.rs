//! Baseline for bench/hot_path.py: axum answering a fixed BackfillJob-shaped
//! JSON body (read from the file given as the first argument) at the path of
//! GET /api/v1/admin/sessions/{session}/backfill, and nothing else.

use axum::routing::get;

#[tokio::main]
async fn main() {
    let body = std::fs::read_to_string(std::env::args().nth(1).expect("a JSON body file")).unwrap();
    let app = axum::Router::new().route(
        "/api/v1/admin/sessions/{session}/backfill",
        get(move || std::future::ready(([(http::header::CONTENT_TYPE, "application/json")], body.clone()))),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("listening: {}", listener.local_addr().unwrap());
    axum::serve(listener, app).await.unwrap();
}
