//! `wa-gateway host-check`: runs the conformance checks of `hosts::check`
//! against a session host and prints the report; exit 0 only when it conforms.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::hosts::check::{self, CheckOptions};
use crate::tls::ClientTls;

#[derive(Args, Debug)]
pub struct HostCheckArgs {
    /// The session host, e.g. http://10.0.1.10:50061 or https://….
    #[arg(long)]
    pub host: String,
    /// A session the host holds; its contacts and groups are pulled and checked.
    #[arg(long)]
    pub session: String,
    /// CA bundle (PEM) trusted for an https:// host instead of the WebPKI roots.
    #[arg(long, value_name = "PEM")]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM) for mTLS; needs --key.
    #[arg(long, value_name = "PEM", requires = "key")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(long, value_name = "PEM", requires = "cert")]
    pub key: Option<PathBuf>,
    /// A stream silent for this many seconds fails its check (as a backfill would).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub stall_timeout_secs: u64,
    /// After the session feed's snapshot, wait this many seconds for a change
    /// (have the host produce one meanwhile); without it no change is awaited.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub feed_change_wait_secs: Option<u64>,
}

pub async fn run(args: HostCheckArgs) -> anyhow::Result<()> {
    crate::sessions::check_id_field("--session", &args.session)?;
    let tls = ClientTls::load(args.ca.as_deref(), args.cert.as_deref(), args.key.as_deref())?;
    let channel = tls.endpoint(&args.host)?.connect_lazy();
    let options = CheckOptions {
        session: args.session.clone(),
        stall: Duration::from_secs(args.stall_timeout_secs),
        feed_change_wait: args.feed_change_wait_secs.map(Duration::from_secs),
    };
    println!("host-check {} (session {})", args.host, args.session);
    let report = check::run(channel, &options).await;
    print!("{}", report.render());
    anyhow::ensure!(report.conforms(), "the session host does not conform to the SessionHostService contract");
    Ok(())
}
