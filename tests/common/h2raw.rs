//! A deliberately rude HTTP/2 client: raw frames over TCP, HPACK literals
//! written by hand, and no respect for the server's advertised limits.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const SETTINGS: u8 = 0x4;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const GOAWAY: u8 = 0x7;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;
pub const REFUSED_STREAM: u32 = 0x7;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HPACK "literal header field without indexing, new name" (short strings only).
fn literal(block: &mut Vec<u8>, name: &str, value: &str) {
    assert!(name.len() < 127 && value.len() < 127);
    block.push(0x00);
    block.push(name.len() as u8);
    block.extend_from_slice(name.as_bytes());
    block.push(value.len() as u8);
    block.extend_from_slice(value.as_bytes());
}

/// What the server did with the flood.
#[derive(Debug, Default)]
pub struct Outcome {
    /// SETTINGS_MAX_CONCURRENT_STREAMS the server advertised.
    pub advertised: Option<u32>,
    /// Streams reset with REFUSED_STREAM.
    pub refused: Vec<u32>,
    /// The GOAWAY error code, if the server closed the connection.
    pub goaway: Option<u32>,
    /// Streams the server answered (response HEADERS).
    pub answered: u32,
}

/// Opens `streams` gRPC streams (HEADERS, never a body) on one connection.
pub async fn flood(addr: &str, path: &str, streams: u32) -> Outcome {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(PREFACE).await.unwrap();
    tcp.write_all(&frame(SETTINGS, 0, 0, &[])).await.unwrap();
    let mut out = Outcome::default();
    let mut sent = Vec::new();
    for i in 0..streams {
        let mut block = Vec::new();
        for (name, value) in [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", "localhost"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ] {
            literal(&mut block, name, value);
        }
        sent.extend(frame(HEADERS, END_HEADERS, 2 * i + 1, &block));
    }
    tcp.write_all(&sent).await.unwrap();
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        while buffer.len() >= 9 {
            let len = (usize::from(buffer[0]) << 16) | (usize::from(buffer[1]) << 8) | usize::from(buffer[2]);
            if buffer.len() < 9 + len {
                break;
            }
            let (kind, flags) = (buffer[3], buffer[4]);
            let stream = u32::from_be_bytes([buffer[5], buffer[6], buffer[7], buffer[8]]) & 0x7fff_ffff;
            let payload = buffer[9..9 + len].to_vec();
            buffer.drain(..9 + len);
            match kind {
                SETTINGS if flags & ACK == 0 => {
                    for setting in payload.chunks(6) {
                        if setting[..2] == [0, 3] {
                            out.advertised = Some(u32::from_be_bytes([setting[2], setting[3], setting[4], setting[5]]));
                        }
                    }
                    let _ = tcp.write_all(&frame(SETTINGS, ACK, 0, &[])).await;
                }
                RST_STREAM
                    if u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) == REFUSED_STREAM =>
                {
                    out.refused.push(stream)
                }
                GOAWAY => out.goaway = Some(u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]])),
                HEADERS if stream % 2 == 1 => out.answered += 1,
                _ => {}
            }
            if out.goaway.is_some() || out.answered + out.refused.len() as u32 >= streams {
                return out;
            }
        }
        match tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buffer.extend_from_slice(&chunk[..n]),
            _ => return out,
        }
    }
}

/// Opens one stream (HEADERS, never a body) and keeps the connection open
/// for as long as the returned socket lives.
pub async fn hold(addr: &str, path: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(PREFACE).await.unwrap();
    tcp.write_all(&frame(SETTINGS, 0, 0, &[])).await.unwrap();
    let mut block = Vec::new();
    for (name, value) in [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "localhost")] {
        literal(&mut block, name, value);
    }
    literal(&mut block, "content-type", "application/grpc");
    tcp.write_all(&frame(HEADERS, END_HEADERS, 1, &block)).await.unwrap();
    // Read the server's SETTINGS so the stream is surely open.
    let mut first = [0u8; 9];
    tcp.read_exact(&mut first).await.unwrap();
    tcp
}
