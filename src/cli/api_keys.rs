use anyhow::Context;
use clap::Subcommand;

use crate::auth::generate_api_key;
use crate::sessions::check_id_field;
use crate::time::now_millis;

#[derive(Subcommand, Debug)]
pub enum ApiKeysCommand {
    /// Create a key and print it on stdout. This is the only time it is shown.
    Create {
        /// Organization the key acts for.
        #[arg(long)]
        org: String,
        /// A label for people.
        #[arg(long)]
        name: Option<String>,
        /// A gateway permission the key carries (repeatable).
        #[arg(long = "permission")]
        permissions: Vec<String>,
    },
    /// List keys (never their secrets).
    List {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id; it stops working within 10 seconds.
    Revoke { id: String },
}

pub async fn run(
    database_url: &str,
    options: crate::store::StoreOptions,
    command: ApiKeysCommand,
) -> anyhow::Result<()> {
    let store = crate::store::open_with(database_url, options).await?;
    let result = match command {
        ApiKeysCommand::Create { org, name, permissions } => {
            check_id_field("--org", &org)?;
            for p in &permissions {
                check_id_field("--permission", p)?;
            }
            if name.as_ref().is_some_and(|n| n.len() > 200) {
                anyhow::bail!("--name is longer than 200 characters");
            }
            let key = generate_api_key(&org, name, permissions);
            store.insert_api_key(&key.row).await.context("storing the key")?;
            eprintln!("created api-key {} for {org}; store it now, it is not shown again", key.row.id);
            println!("{}", key.secret);
            Ok(())
        }
        ApiKeysCommand::List { json } => {
            let keys = store.list_api_keys().await?;
            if json {
                for k in keys {
                    let line = serde_json::json!({
                        "id": k.id, "organizationId": k.organization_id, "name": k.name,
                        "permissions": k.permissions, "createdAt": k.created_at,
                        "lastUsedAt": k.last_used_at, "revokedAt": k.revoked_at,
                    });
                    println!("{line}");
                }
            } else {
                println!("{:<30} {:<24} {:<20} {:<8} PERMISSIONS", "ID", "ORGANIZATION", "NAME", "STATE");
                for k in keys {
                    let state = if k.revoked_at.is_some() { "revoked" } else { "active" };
                    println!(
                        "{:<30} {:<24} {:<20} {:<8} {}",
                        k.id,
                        k.organization_id,
                        k.name.as_deref().unwrap_or("-"),
                        state,
                        k.permissions.join(",")
                    );
                }
            }
            Ok(())
        }
        ApiKeysCommand::Revoke { id } => {
            if store.revoke_api_key(&id, now_millis()).await? {
                eprintln!("revoked api-key {id}");
                Ok(())
            } else {
                Err(anyhow::anyhow!("no api-key with id {id:?}"))
            }
        }
    };
    store.close().await;
    result
}
