//! Names for `snmp.get` and `snmp.walk` results, from the tenant's compiled
//! MIBs (`ferro_mibs::names`): each value gets `name` (`IF-MIB::ifDescr.2`)
//! and, where the MIB says more than the value, `display` (an
//! enumeration's label, a display hint applied). OIDs no module knows keep
//! their numbers alone.

use std::collections::{BTreeSet, HashMap};

use ferro_mibs::names::{display, name, prefixes};
use ferro_mibs::{Known, records};
use serde_json::{Value, json};

use super::context::{JobContext, JobError};

/// Names `values` (`{oid, type, value}` each) in place. A failure to read
/// the tree leaves them unnamed and is logged: the SNMP answer stands.
pub async fn name_values(job: &JobContext, values: &mut [Value]) {
    if let Err(e) = annotate(job, values).await {
        tracing::warn!(error = %e, "SNMP results left unnamed: cannot read the MIB tree");
    }
}

async fn annotate(job: &JobContext, values: &mut [Value]) -> Result<(), JobError> {
    let oids: BTreeSet<String> = values
        .iter()
        .filter_map(|v| v["oid"].as_str())
        .flat_map(prefixes)
        .collect();
    if oids.is_empty() {
        return Ok(());
    }
    let mut tx = job.db.begin(job.ctx).await?;
    let oids: Vec<String> = oids.into_iter().collect();
    let mut known: HashMap<String, Known> = records::known_at(&mut tx, &oids)
        .await?
        .into_iter()
        .map(|k| (k.oid.clone(), k))
        .collect();
    let index_names: Vec<String> = known
        .values()
        .flat_map(|k| k.indexes.iter().map(|i| i.name.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !index_names.is_empty() {
        for k in records::known_named(&mut tx, &index_names).await? {
            known.entry(k.oid.clone()).or_insert(k);
        }
    }
    tx.end_read_only();
    if known.is_empty() {
        return Ok(());
    }
    for v in values.iter_mut() {
        let Some(oid) = v["oid"].as_str().map(str::to_owned) else {
            continue;
        };
        if let Some(name) = name(&oid, &known) {
            v["name"] = json!(name);
        }
        let kind = v["type"].as_str().unwrap_or_default().to_owned();
        if let Some(shown) = display(&oid, &kind, &v["value"], &known) {
            v["display"] = json!(shown);
        }
    }
    Ok(())
}
