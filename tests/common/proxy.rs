//! A TCP proxy the tests control, between a replica and PostgreSQL: it
//! forwards, or cuts (connections stay open, nothing passes either way, as
//! on a partitioned network), or slows every chunk, or resets every
//! connection and refuses new ones (a server restarting).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Forward,
    /// Connections stay open; bytes wait in the proxy until the cut heals.
    Cut,
    /// Each chunk waits this long in each direction.
    Slow(Duration),
    /// New connections are closed at once (existing ones were reset).
    Refuse,
}

pub struct FaultProxy {
    pub port: u16,
    mode: watch::Sender<Mode>,
    /// Cancelled to reset every open connection; replaced after each reset.
    connections: Arc<std::sync::Mutex<CancellationToken>>,
    stop: CancellationToken,
}

impl FaultProxy {
    /// Listens on 127.0.0.1:0 and forwards to 127.0.0.1:`upstream`.
    pub async fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (mode, watching) = watch::channel(Mode::Forward);
        let connections = Arc::new(std::sync::Mutex::new(CancellationToken::new()));
        let stop = CancellationToken::new();
        let (all, stopped) = (connections.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    () = stopped.cancelled() => return,
                };
                let Ok((client, _)) = accepted else { continue };
                if *watching.borrow() == Mode::Refuse {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else { continue };
                let reset = all.lock().unwrap().clone();
                tokio::spawn(pipe(client, server, watching.clone(), reset));
            }
        });
        Self { port, mode, connections, stop }
    }

    /// `url` with its port replaced by this proxy's.
    pub fn url(&self, url: &str) -> String {
        let (head, tail) = url.rsplit_once('@').expect("a URL with user@host");
        let (_, path) = tail.split_once('/').expect("a URL with a database");
        format!("{head}@127.0.0.1:{}/{path}", self.port)
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// Resets every open connection (new ones follow the mode).
    pub fn reset(&self) {
        let mut all = self.connections.lock().unwrap();
        all.cancel();
        *all = CancellationToken::new();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.reset();
    }
}

/// Upstream port of a `postgres://…@127.0.0.1:PORT/…` URL.
pub fn port_of(url: &str) -> u16 {
    let (_, tail) = url.rsplit_once('@').unwrap();
    tail.split(['/', ':']).nth(1).unwrap().parse().unwrap()
}

async fn pipe(client: TcpStream, server: TcpStream, mode: watch::Receiver<Mode>, reset: CancellationToken) {
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::select! {
        () = pump(client_read, server_write, mode.clone()) => {}
        () = pump(server_read, client_write, mode) => {}
        () = reset.cancelled() => {}
    }
}

/// Copies one direction, chunk by chunk, as the mode allows.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        loop {
            let current = *mode.borrow_and_update();
            match current {
                Mode::Cut => {
                    if mode.changed().await.is_err() {
                        return;
                    }
                }
                Mode::Slow(delay) => {
                    tokio::time::sleep(delay).await;
                    break;
                }
                Mode::Forward | Mode::Refuse => break,
            }
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}
