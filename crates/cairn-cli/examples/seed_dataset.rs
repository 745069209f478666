//! Writes the test dataset of every component (`cairn_testkit::dataset`, over 10 000 records
//! with three 1 MiB artifacts per tenant at size `large`) into the storage a configuration
//! file names, to try `cairn stats`, `export`, `copy` and `verify` on realistic data:
//!
//! ```sh
//! cargo run --release -p cairn-cli --example seed_dataset -- sled.toml large acme other
//! ```
//!
//! Arguments: the configuration file, `small` or `large`, then one or more tenant ids.

use cairn::{Error, Result, Storage, TenantId};
use cairn_testkit::dataset::{self, Size};

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || Error::invalid_input("usage: seed_dataset CONFIG small|large TENANT...");
    let (config, size, tenants) = match args.as_slice() {
        [config, size, tenants @ ..] if !tenants.is_empty() => (config, size, tenants),
        _ => return Err(usage()),
    };
    let size = match size.as_str() {
        "small" => Size::small(),
        "large" => Size::large(),
        _ => return Err(usage()),
    };
    let storage = Storage::open(&cairn::load_config(Some(config.as_ref()))?).await?;
    for tenant in tenants {
        let view = storage.tenant(&TenantId::new(tenant.as_str())?);
        let stores = cairn_testkit::stores_of!(view);
        dataset::seed(&stores, size).await?;
        println!("seeded tenant {tenant}");
    }
    Ok(())
}
