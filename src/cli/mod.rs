//! The `wa-gateway` binary: one file per command. Every flag also reads
//! `WA_GATEWAY_<FLAG>` from the environment.

mod admin;
mod api_keys;
mod backup;
mod demo;
mod events;
mod gateways;
mod host_check;
mod host_sim;
mod listen;
mod rest;
mod serve;
mod sessions;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "wa-gateway",
    version,
    about = "Admin control plane of a multi-tenant WhatsApp gateway",
    long_about = "Admin control plane of a multi-tenant WhatsApp gateway: platform super_admins list \
                  every session across organizations and backfill a session's contacts and groups \
                  from the session host that holds it.\n\nEvery flag can also be set through the \
                  environment as WA_GATEWAY_<FLAG> (for example --jwks-url as WA_GATEWAY_JWKS_URL)."
)]
pub struct Cli {
    /// Database: a SQLite file path or sqlite:// URL (created if missing), or
    /// postgres://USER:PASSWORD@HOST/DB for PostgreSQL (several `serve`
    /// replicas may share it).
    #[arg(
        long,
        env = "WA_GATEWAY_DATABASE_URL",
        default_value = "wa-gateway.db",
        global = true,
        hide_env_values = true
    )]
    pub database_url: String,

    /// SQLite: seconds a writer (an import, the session feed, a backfill,
    /// an api-key command) waits for the database's write lock before it
    /// fails with a busy error naming the lock.
    #[arg(long, env = "WA_GATEWAY_BUSY_TIMEOUT_SECS", default_value_t = 5, global = true, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub busy_timeout_secs: u64,

    /// PostgreSQL: connections this process keeps to the database at most.
    #[arg(long, env = "WA_GATEWAY_DB_POOL_SIZE", default_value_t = 16, global = true, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub db_pool_size: u32,

    /// PostgreSQL: seconds a call waits for a free pooled connection before
    /// it is answered 503 (the database is busy).
    #[arg(long, env = "WA_GATEWAY_DB_ACQUIRE_TIMEOUT_SECS", default_value_t = 10, global = true, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub db_acquire_timeout_secs: u64,

    /// Log line format (logs go to stderr).
    #[arg(long, env = "WA_GATEWAY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty, global = true)]
    pub log_format: LogFormat,

    /// Log filter, in tracing's EnvFilter syntax (e.g. `info,wa_gateway=debug`).
    #[arg(long, env = "WA_GATEWAY_LOG", default_value = "info", global = true)]
    pub log: String,

    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    fn store_options(&self) -> crate::store::StoreOptions {
        crate::store::StoreOptions {
            busy_timeout: std::time::Duration::from_secs(self.busy_timeout_secs),
            pool_size: self.db_pool_size,
            acquire_timeout: std::time::Duration::from_secs(self.db_acquire_timeout_secs),
            idle_in_transaction: None,
            statement_timeout: None,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve gRPC and REST (applies migrations first).
    Serve(serve::ServeArgs),
    /// Apply database migrations and exit.
    Migrate,
    /// Manage sessions in the database.
    #[command(subcommand)]
    Sessions(sessions::SessionsCommand),
    /// Manage api-keys for scripts and services.
    #[command(subcommand, name = "api-keys")]
    ApiKeys(api_keys::ApiKeysCommand),
    /// Run a simulated session host with deterministic data.
    HostSim(host_sim::HostSimArgs),
    /// Check a session host against the SessionHostService contract and print
    /// a report; exit 0 only when it conforms.
    HostCheck(host_check::HostCheckArgs),
    /// Serve only the REST layer, in front of a remote `wa-gateway serve`.
    Rest(rest::RestArgs),
    /// Operator commands against a running server (gRPC).
    Admin(admin::AdminArgs),
    /// Write a consistent copy of a SQLite store to a new file, while
    /// `serve` runs and writes go on (PostgreSQL: use pg_dump).
    ///
    /// To restore: stop `serve`, move the database file and its `-wal` and
    /// `-shm` files aside, copy the backup to the database's path, and start
    /// `serve` again.
    Backup(backup::BackupArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = match cli.log_format {
        LogFormat::Pretty => crate::telemetry::logs::Format::Pretty,
        LogFormat::Json => crate::telemetry::logs::Format::Json,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let traces = match &cli.command {
        Command::Serve(args) => args.traces(),
        _ => None,
    };
    let logs = {
        // The trace exporter's task lives on the runtime.
        let _runtime = runtime.enter();
        match crate::telemetry::logs::init(&cli.log, format, traces.as_ref()) {
            Ok(logs) => logs,
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::FAILURE;
            }
        }
    };
    let store = cli.store_options();
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(&cli.database_url, store, args).await,
            Command::Migrate => {
                crate::store::open_with(&cli.database_url, store).await?.close().await;
                eprintln!("migrations applied to {}", crate::store::redact_url(&cli.database_url));
                Ok(())
            }
            Command::Sessions(cmd) => sessions::run(&cli.database_url, store, cmd).await,
            Command::ApiKeys(cmd) => api_keys::run(&cli.database_url, store, cmd).await,
            Command::HostSim(args) => host_sim::run(args).await,
            Command::HostCheck(args) => host_check::run(args).await,
            Command::Rest(args) => rest::run(args).await,
            Command::Admin(args) => admin::run(args).await,
            Command::Backup(args) => backup::run(&cli.database_url, args).await,
        }
    });
    runtime.block_on(logs.finish());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
